"""Namespace defaults for FlowRuns: the ``FlowRunDefaults`` resource a platform team sets once.

Every team otherwise repeats the same image, resources, tolerations and store on every FlowRun. A
``FlowRunDefaults`` named ``default`` (``DEFAULTS_NAME``) in a namespace supplies them to every run
of that namespace that leaves them out; a run's own value always wins (``apply``). The operator reads
it when it creates the run's Job and records what it applied in the run's ``status.defaults``
(``DefaultsApplied``), so ``kubectl get fr -o wide`` shows which defaults a run got, and the
values that matter after the start (timeout, TTL) are read from there.

Whatever a namespace's defaults name (a pull secret, a Secret volume, an S3 credentials Secret) is
lent to every run of the namespace by whoever may write the ``FlowRunDefaults`` -- a namespace
admin, by RBAC -- like the operator's ``--default-store`` is lent by the operator's administrator:
a run's author does not borrow it (``flowlib_operator.access``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flowlib_api.podcontrols import KEYED_LIST_FIELDS, MAP_FIELDS, PodControls, layer
from flowlib_api.storespec import StoreSpec
from flowlib_api.times import DURATION_PATTERN, MAX_DURATION_TEXT, timeout_problem

DEFAULTS_NAME = "default"
"""The one ``FlowRunDefaults`` of a namespace that applies to its runs."""

DEFAULTED_FIELDS = ("image", "resources", "pod", "store", "timeout", "ttlSecondsAfterFinished")
"""The FlowRun spec fields a namespace's defaults may supply, by their wire names."""


class _Model(BaseModel):
    # defer_build: validators are built at the first validation, not at import; the in-cluster
    # runner imports these models (for their wire names) but validates none before its first node.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)


class FlowRunDefaultsSpec(_Model):
    """What every FlowRun of the namespace gets unless it sets the field itself."""

    image: str | None = Field(None, max_length=1024, description="Runner image (FlowRun spec.image).")
    resources: dict[str, Any] | None = Field(
        None, description="CPU and memory requests and limits of the runner container (FlowRun spec.resources)."
    )
    pod: PodControls | None = Field(
        None,
        description="Runner pod controls (FlowRun spec.pod): under the Flow's and the FlowRun's own, which "
        "merge over these field by field (maps by key, volumes and pull secrets by name).",
    )
    store: StoreSpec | None = Field(
        None,
        description="The store of runs that set no spec.store, instead of the operator's --default-store; "
        "without type, laid over the operator's. A run's spec.store without type is laid over this one.",
    )
    timeout: str | None = Field(
        None,
        description=f"Longest time a run may take (FlowRun spec.timeout), at most {MAX_DURATION_TEXT}.",
        json_schema_extra={"pattern": DURATION_PATTERN},
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        ge=0,
        description="Delete finished FlowRuns after this many seconds (FlowRun spec.ttlSecondsAfterFinished).",
    )

    @model_validator(mode="after")
    def _timeout_fits(self) -> FlowRunDefaultsSpec:
        problem = timeout_problem(self.timeout)
        if problem is not None:
            raise ValueError(problem)
        return self


class DefaultsApplied(_Model):
    """Which namespace defaults a run got (written by the operator when it creates the run's Job)."""

    name: str = Field(description="The FlowRunDefaults object (always default).")
    generation: int | None = Field(None, description="Its metadata.generation at the time.")
    fields: list[str] = Field(description="The spec fields the defaults supplied, e.g. image, pod.tolerations.")
    timeout: str | None = Field(None, description="The timeout the run got from the defaults.")
    ttl_seconds_after_finished: int | None = Field(
        None, description="The ttlSecondsAfterFinished the run got from the defaults."
    )


def _supplied_pod_fields(defaults: Mapping[str, Any], above: Mapping[str, Any]) -> list[str]:
    """The pod fields to which ``defaults`` contribute under the levels ``above`` them: a map or named
    list when one of its keys is not overridden, any other field when no level above sets it."""
    supplied = []
    for field, value in defaults.items():
        if value is None:
            continue
        higher = above.get(field)
        if field in MAP_FIELDS and isinstance(value, Mapping):
            contributes = any(key not in (higher or {}) for key in value)
        elif field in KEYED_LIST_FIELDS and isinstance(value, list):
            key = KEYED_LIST_FIELDS[field]
            overridden = {entry.get(key) for entry in higher or [] if isinstance(entry, Mapping)}
            contributes = any(isinstance(e, Mapping) and e.get(key) not in overridden for e in value)
        else:
            contributes = higher is None
        if contributes:
            supplied.append(f"pod.{field}")
    return supplied


def apply(
    spec: Mapping[str, Any], defaults: Mapping[str, Any], flow_pod: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A FlowRun spec with the namespace's ``defaults`` (a ``FlowRunDefaults`` spec) and its Flow's
    pod controls (``flow_pod``) filled in, and the names of the fields the defaults supplied.

    The run's own values win; ``spec.pod`` is layered (``podcontrols.layer``): defaults, then the
    Flow's, then the run's. ``spec.store`` is not merged here: the defaults' store takes the place of
    the operator's default (``flowlib_operator.stores``), since a run's store without type is laid
    over it.
    """
    merged = dict(spec)
    supplied: list[str] = []
    for field in ("image", "resources", "timeout", "ttlSecondsAfterFinished"):
        if merged.get(field) is None and defaults.get(field) is not None:
            merged[field] = defaults[field]
            supplied.append(field)
    own_pod = spec.get("pod") or {}
    pod_defaults = defaults.get("pod") or {}
    pod = layer(pod_defaults, flow_pod, own_pod)
    if pod:
        merged["pod"] = pod
    supplied += _supplied_pod_fields(pod_defaults, layer(flow_pod, own_pod))
    if defaults.get("store") is not None and spec.get("store") is None:
        supplied.append("store")
    return merged, supplied
