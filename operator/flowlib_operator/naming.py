"""Names and labels of what the operator creates for a FlowRun, derived so that a restarted
operator finds (never duplicates) what it created before."""

from __future__ import annotations

import hashlib

from flowlib_api.meta import LABEL_FLOW, LABEL_FLOWRUN, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, RUNNER_NAME

MAX_NAME = 63  # a Job's name ends up in its pods' job-name label, which allows 63 characters


def _bounded(prefix: str, name: str, suffix: str = "") -> str:
    candidate = f"{prefix}{name}{suffix}"
    if len(candidate) <= MAX_NAME:
        return candidate
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(prefix) - len(suffix) - len(digest) - 1
    return f"{prefix}{name[:keep].rstrip('-.')}-{digest}{suffix}"


def job_name(flowrun: str, segment: int = 1) -> str:
    """The runner Job of a FlowRun: stable, unique per FlowRun name, at most 63 characters.

    A run that stopped at an approval node goes on in a new Job (``segment`` 2, 3...): its own name,
    so the Job that ran before can never be taken for it, however late its deletion is seen."""
    return _bounded("", flowrun, "-run" if segment <= 1 else f"-run-{segment}")


def snapshot_name(flowrun: str) -> str:
    """The ConfigMap holding the run's resolved definition."""
    return _bounded("", flowrun, "-flow")


def identity_name(flowrun: str) -> str:
    """The run's own identity: its ServiceAccount (unless the run names one), Role and RoleBinding."""
    return _bounded("", flowrun, "-runner")


def label_value(value: str) -> str:
    """A label value for ``value`` (63 characters at most, alphanumeric at both ends)."""
    if len(value) <= MAX_NAME:
        return value
    return _bounded("", value)


def run_labels(flowrun: str, flow: str | None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NAME: RUNNER_NAME, LABEL_FLOWRUN: label_value(flowrun)}
    if flow:
        labels[LABEL_FLOW] = label_value(flow)
    return labels
