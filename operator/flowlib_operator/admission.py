"""Validation at the door: the admission webhook for Flow and FlowRun (served by kopf).

An invalid definition is refused at ``kubectl apply`` with the same messages ``flowctl lint``
prints. Only the definition's own problems are refused; a sub-flow or ``flowRef`` naming a Flow
that does not exist yet is accepted (it may be created next, as GitOps tools apply in any order)
and is reported in status if it is still missing when it matters. A run's params are checked against
its flow's ``spec.paramSchema`` (inline, or the ``flowRef`` Flow when it exists). Without the webhook
the operator reports every problem in status just the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowlib_runner.definition.loader import flow_refs

from flowlib_api.podcontrols import pod_problems
from flowlib_api.resources import SpecKey, flow_source_problem
from flowlib_api.runnerpod import Snapshot, snapshot_size_problem
from flowlib_api.times import timeout_problem
from flowlib_api.views import FlowRunView
from flowlib_operator.resolve import ADMISSION_VALIDATION_SECONDS, INLINE_NAME, lint, params_problems


def definition_problems(name: str, spec: Mapping[str, Any]) -> list[str]:
    """``flowctl lint``'s errors for one Flow spec, except references to other Flows.

    Bounded like the operator's validation (``resolve.lint``), within a time limit under the API
    server's timeout for the webhook: a definition too big to check in time is refused as such.
    """
    # Stand-ins for the referenced Flows: their existence is the operator's business later.
    library: dict[str, Mapping[str, Any]] = {
        ref: {"nodes": {"placeholder": {}}} for _, ref in flow_refs(spec) if ref != name
    }
    _, problems = lint(name, spec, library, time_limit=ADMISSION_VALIDATION_SECONDS)
    return problems


def size_problem(name: str, spec: Mapping[str, Any]) -> str | None:
    """Why a valid definition can never run: its compressed snapshot is over what a ConfigMap holds.

    The operator's own check (``snapshot_size_problem``), made at the door so that such an object is
    refused rather than accepted and failing every run later. Its sub-flows are left out (they may
    not exist yet): a lower bound, and the operator still checks the whole snapshot of each run.
    """
    return snapshot_size_problem(Snapshot(name, spec).to_bytes())


def flow_problems(body: Mapping[str, Any]) -> list[str]:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    flow_name = name if isinstance(name, str) and name else "flow"
    spec = body.get("spec") or {}
    problems = definition_problems(flow_name, spec)
    too_big = size_problem(flow_name, spec) if not problems and isinstance(spec, Mapping) else None
    return [too_big] if too_big is not None else problems


def flowrun_problems(body: Mapping[str, Any]) -> list[str]:
    run = FlowRunView(body)
    problem = flow_source_problem(run.spec) or timeout_problem(run.spec.get("timeout"))
    if problem is not None:
        return [problem]
    bad_pod = [f"spec.pod.{p}" for p in pod_problems(run.spec.get(SpecKey.POD))]
    if bad_pod:
        return bad_pod
    if run.inline_flow is None:
        return []
    problems = [f"spec.flow.{p}" for p in definition_problems(INLINE_NAME, run.inline_flow)]
    too_big = size_problem(INLINE_NAME, run.inline_flow) if not problems else None
    if too_big is not None:
        return [f"spec.flow: {too_big}"]
    if problems or run.retry_of:  # a retry that sets no params has its source's: the operator checks it
        return problems
    return params_problems(run.inline_flow, run.spec)


def flowref_params_problems(body: Mapping[str, Any], flow: Mapping[str, Any] | None) -> list[str]:
    """A ``flowRef`` run's params against the Flow it names, when the webhook found that Flow.

    A Flow that does not exist yet is accepted (GitOps applies in any order); the operator checks
    the params when the run starts. So does it for a retry, whose params may be its source's.
    """
    run = FlowRunView(body)
    if flow is None or run.retry_of or not isinstance(flow.get("spec"), Mapping):
        return []
    return params_problems(flow["spec"], run.spec)


def spec_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Updates that leave the spec alone (kopf's annotations, status, ``cancel``) are never refused."""
    return old is None or (old.get("spec") or {}) != (new.get("spec") or {})
