"""Typed, read-only views of FlowRun and Flow bodies as the API and kopf hand them over.

Why views and not the pydantic models: the operator sees every watch event of every run, and a
FlowRun's status carries up to 48 KiB of node states; parsing all of it into models on each event
would cost more than the operator's own work. A view reads only the fields asked for, by the wire
names the models define (``StatusKey``, ``SpecKey``), so no key is spelled twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowlib_api.resources import READY, SUCCEEDED, SpecKey, StatusKey
from flowlib_api.runstatus import FINISHED_PHASES


class ObjectView:
    """Metadata, spec and status of any Kubernetes object body."""

    __slots__ = ("body",)

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "")

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def uid(self) -> str | None:
        return self.meta.get("uid")

    @property
    def generation(self) -> int | None:
        return self.meta.get("generation")

    @property
    def creation_timestamp(self) -> str | None:
        return self.meta.get("creationTimestamp")

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.body.get("spec") or {}

    @property
    def status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.status.get(StatusKey.CONDITIONS) or [])

    def condition(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == kind), None)

    @property
    def observed_generation(self) -> int | None:
        return self.status.get(StatusKey.OBSERVED_GENERATION)


class FlowRunView(ObjectView):
    """A FlowRun: what it asks for (spec) and what is known of it (status)."""

    __slots__ = ()

    # -- spec ---------------------------------------------------------------------------------

    @property
    def cancel_requested(self) -> bool:
        return bool(self.spec.get(SpecKey.CANCEL))

    @property
    def approvals(self) -> list[dict[str, Any]]:
        """``spec.approvals``: decisions for approval nodes, in the order they are taken."""
        given = self.spec.get(SpecKey.APPROVALS) or []
        return [a for a in given if isinstance(a, dict)]

    @property
    def suspended(self) -> dict[str, Any] | None:
        """``status.suspended`` while the run waits at an approval node."""
        value = self.status.get(StatusKey.SUSPENDED)
        return value if isinstance(value, dict) and self.phase == "Suspended" else None

    @property
    def segment(self) -> int:
        """Which Job of the run starts next: 1, then one more after each suspension."""
        suspended = self.suspended
        return 1 if suspended is None else int(suspended.get("count") or 1) + 1

    def decision_waiting(self) -> bool:
        """Whether the approval node the run is Suspended at has a decision it has not taken yet:
        more ``spec.approvals`` entries name that node than the run took for it before."""
        suspended = self.suspended
        if suspended is None:
            return False
        node = suspended.get("node")
        taken = int(suspended.get("taken") or 0)
        return sum(1 for a in self.approvals if a.get("node") == node) > taken

    @property
    def flow_ref(self) -> str | None:
        return (self.spec.get(SpecKey.FLOW_REF) or {}).get("name") or None

    @property
    def inline_flow(self) -> Mapping[str, Any] | None:
        return self.spec.get(SpecKey.FLOW)

    @property
    def retry_of(self) -> str | None:
        """The FlowRun this run retries (``spec.retryOf``), or None."""
        value = self.spec.get(SpecKey.RETRY_OF)
        return value if isinstance(value, str) and value else None

    @property
    def resubmit(self) -> bool:
        """A retry that starts over from the start instead of from its source's last checkpoint."""
        return bool(self.spec.get(SpecKey.RESUBMIT))

    @property
    def own_definition(self) -> bool:
        """Whether the run names its definition (``flowRef`` or ``flow``); a retry may leave both out."""
        return self.spec.get(SpecKey.FLOW_REF) is not None or self.spec.get(SpecKey.FLOW) is not None

    @property
    def store_spec(self) -> Mapping[str, Any] | None:
        """``spec.store`` as written (the operator lays it over its default store), or None."""
        value = self.spec.get(SpecKey.STORE)
        return value if isinstance(value, Mapping) else None

    @property
    def input(self) -> dict[str, Any]:
        return dict(self.spec.get(SpecKey.INPUT) or {})

    @property
    def params(self) -> dict[str, Any] | None:
        return self.spec.get(SpecKey.PARAMS)

    @property
    def outputs(self) -> list[str]:
        return list(self.spec.get(SpecKey.OUTPUTS) or [])

    @property
    def timeout(self) -> str | None:
        """``spec.timeout``, else the one the namespace's defaults gave the run (``status.defaults``)."""
        value = self.spec.get(SpecKey.TIMEOUT)
        if value is None or value == "":
            value = self._defaulted(SpecKey.TIMEOUT)
        return None if value is None or value == "" else str(value)

    @property
    def retries(self) -> int:
        return int(self.spec.get(SpecKey.RETRIES) or 0)

    @property
    def image(self) -> str | None:
        return self.spec.get(SpecKey.IMAGE) or None

    @property
    def service_account_name(self) -> str | None:
        return self.spec.get(SpecKey.SERVICE_ACCOUNT_NAME) or None

    @property
    def env(self) -> list[dict[str, Any]]:
        return list(self.spec.get(SpecKey.ENV) or [])

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.spec.get(SpecKey.RESOURCES) or {}

    @property
    def ttl_seconds_after_finished(self) -> int | None:
        """``spec.ttlSecondsAfterFinished``, else the namespace defaults' (``status.defaults``)."""
        value = self.spec.get(SpecKey.TTL_SECONDS_AFTER_FINISHED)
        if value is None:
            value = self._defaulted(SpecKey.TTL_SECONDS_AFTER_FINISHED)
        return None if value is None else int(value)

    @property
    def pod(self) -> Mapping[str, Any]:
        """``spec.pod``: the run's own pod controls (``flowlib_api.podcontrols``)."""
        value = self.spec.get(SpecKey.POD)
        return value if isinstance(value, Mapping) else {}

    def _defaulted(self, key: str) -> Any:
        applied = self.status.get(StatusKey.DEFAULTS)
        return applied.get(key) if isinstance(applied, Mapping) else None

    # -- status -------------------------------------------------------------------------------

    @property
    def phase(self) -> str | None:
        return self.status.get(StatusKey.PHASE)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def job_name(self) -> str | None:
        return self.status.get(StatusKey.JOB_NAME)

    @property
    def pod_name(self) -> str | None:
        return self.status.get(StatusKey.POD_NAME)

    @property
    def attempt(self) -> int:
        return int(self.status.get(StatusKey.ATTEMPT) or 0)

    @property
    def flow(self) -> str | None:
        return self.status.get(StatusKey.FLOW)

    @property
    def message(self) -> str | None:
        return self.status.get(StatusKey.MESSAGE)

    @property
    def store(self) -> Mapping[str, Any] | None:
        """``status.store`` (``type``, ``location``, ``ref``): where the run keeps its store, or None."""
        value = self.status.get(StatusKey.STORE)
        return value if isinstance(value, Mapping) else None

    @property
    def store_ref(self) -> str | None:
        """The run's resolved store location as JSON (``storespec.StoreLocation.from_json`` reads it)."""
        ref = (self.store or {}).get("ref")
        return ref if isinstance(ref, str) and ref else None

    @property
    def start_time(self) -> str | None:
        return self.status.get(StatusKey.START_TIME)

    @property
    def completion_time(self) -> str | None:
        return self.status.get(StatusKey.COMPLETION_TIME)

    @property
    def duration(self) -> str | None:
        return self.status.get(StatusKey.DURATION)

    @property
    def succeeded(self) -> dict[str, Any] | None:
        return self.condition(SUCCEEDED)


class FlowView(ObjectView):
    """A Flow: its definition (spec) and what validation found (status)."""

    __slots__ = ()

    @property
    def ready(self) -> dict[str, Any] | None:
        return self.condition(READY)

    @property
    def validated(self) -> bool:
        """Whether status speaks of the current generation (not of an earlier edit)."""
        return self.observed_generation == self.generation
