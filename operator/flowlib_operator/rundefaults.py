"""What a run gets besides its own spec: its namespace's ``FlowRunDefaults`` and its Flow's pod
controls, merged under its own values before its Job is built (``flowlib_api.defaults``).

The operator reads the namespace's defaults once, when it creates the run's Job, and writes what
they supplied into the run's ``status.defaults``: a later change of the defaults never changes a
run that started, and ``kubectl get fr -o wide`` shows which runs got them. Invalid defaults fail
the run, naming the object and the field (a run is never started without what the platform team
meant it to get).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_runner.kube.client import KubeClient
from pydantic import ValidationError

from flowlib_api.defaults import DEFAULTS_NAME, DefaultsApplied, FlowRunDefaultsSpec, apply
from flowlib_api.flowspec import FlowSpec
from flowlib_api.meta import FLOWRUNDEFAULTS
from flowlib_api.podcontrols import layered_problems, pod_problems, validation_problems
from flowlib_api.resources import SpecKey, field_key
from flowlib_api.storespec import StoreSpec
from flowlib_api.views import FlowRunView
from flowlib_operator.stores import Refusal, laid_over

INVALID_DEFAULTS_REASON = "InvalidDefaults"
INVALID_SPEC_REASON = "InvalidSpec"
FLOW_POD_KEY = field_key(FlowSpec, "pod")


@dataclass(frozen=True)
class NamespaceDefaults:
    """A namespace's ``FlowRunDefaults`` (empty when it has none)."""

    spec: Mapping[str, Any] = field(default_factory=dict)
    generation: int | None = None

    def store(self, operator_default: StoreSpec) -> StoreSpec:
        """The store of runs that name none: the defaults' own, laid over the operator's when it has
        no type; ``StoreProblem`` when the result is not a store."""
        written = self.spec.get("store")
        if not isinstance(written, Mapping):
            return operator_default
        return laid_over(operator_default, written, f"FlowRunDefaults '{DEFAULTS_NAME}' spec.store")

    def applied(self, supplied: list[str], effective: Mapping[str, Any]) -> dict[str, Any] | None:
        """``status.defaults`` for a run the defaults supplied ``supplied`` to (None: nothing)."""
        if not supplied:
            return None
        applied = DefaultsApplied(
            name=DEFAULTS_NAME,
            generation=self.generation,
            fields=supplied,
            timeout=effective.get(SpecKey.TIMEOUT) if "timeout" in supplied else None,
            ttl_seconds_after_finished=(
                effective.get(SpecKey.TTL_SECONDS_AFTER_FINISHED) if "ttlSecondsAfterFinished" in supplied else None
            ),
        )
        return applied.model_dump(by_alias=True, exclude_none=True)


async def namespace_defaults(client: KubeClient, namespace: str) -> NamespaceDefaults | Refusal:
    """The namespace's defaults, or why they cannot be used."""
    found = await client.get_or_none(FLOWRUNDEFAULTS, DEFAULTS_NAME, namespace)
    if found is None:
        return NamespaceDefaults()
    try:
        spec = FlowRunDefaultsSpec.model_validate(found.get("spec") or {})
    except ValidationError as error:
        problems = validation_problems(error, "spec.")
        return Refusal(
            INVALID_DEFAULTS_REASON,
            f"the namespace's FlowRunDefaults '{DEFAULTS_NAME}' is invalid: {'; '.join(problems)}; fix it "
            f"(kubectl edit flowrundefaults {DEFAULTS_NAME} -n {namespace}) and create the run again",
        )
    return NamespaceDefaults(
        spec.model_dump(by_alias=True, exclude_none=True, exclude_unset=True),
        found["metadata"].get("generation"),
    )


def own_pod_refusal(run: FlowRunView) -> Refusal | None:
    """Why the run's own ``spec.pod`` (and an inline flow's ``spec.flow.pod``) cannot be used."""
    problems = [f"spec.pod.{p}" for p in pod_problems(run.spec.get(SpecKey.POD))]
    inline = run.inline_flow
    if isinstance(inline, Mapping):
        problems += [f"spec.flow.pod.{p}" for p in pod_problems(inline.get("pod"))]
    return Refusal(INVALID_SPEC_REASON, "invalid FlowRun: " + "; ".join(problems)) if problems else None


@dataclass(frozen=True)
class Effective:
    """The body the run's Job is built from, and its ``status.defaults``."""

    body: dict[str, Any]
    defaults_status: dict[str, Any] | None


def effective_run(
    body: Mapping[str, Any], defaults: NamespaceDefaults, flow_pod: Mapping[str, Any] | None
) -> Effective | Refusal:
    """The run with its defaults and its Flow's pod controls filled in (``flowlib_api.defaults``)."""
    run = FlowRunView(body)
    spec, supplied = apply(run.spec, defaults.spec, flow_pod)
    problems = layered_problems(spec.get(SpecKey.POD) or {})
    if problems:
        return Refusal(INVALID_SPEC_REASON, "invalid FlowRun: " + "; ".join(f"spec.pod.{p}" for p in problems))
    return Effective({**body, "spec": spec}, defaults.applied(supplied, spec))


def flow_pod_of(spec: object) -> Mapping[str, Any] | None:
    """A Flow spec's ``pod`` (its pod controls), when it sets one."""
    pod = spec.get(FLOW_POD_KEY) if isinstance(spec, Mapping) else None
    return pod if isinstance(pod, Mapping) else None
