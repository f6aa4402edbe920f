"""Flow validation: a Flow's ``Ready`` condition says whether its definition (with the sub-flows it
names) is valid, with its problems and their fixes in ``status.problems``.

Validation runs in a worker thread under a time limit (``resolve.validate_in_thread``), and what it
writes is bounded (a few dozen problems within ``STATUS_PROBLEMS_BYTES``, a condition message within
``STATUS_MESSAGE_BYTES``), so no definition can stall the operator or make a status etcd refuses."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from flowlib_runner.kube.client import KubeClient

from flowlib_api.meta import KIND_FLOW
from flowlib_api.resources import READY, ConditionStatus, StatusKey, condition, transition_time
from flowlib_api.text import STATUS_MESSAGE_BYTES, shorten
from flowlib_api.times import now_utc, rfc3339
from flowlib_api.views import FlowView
from flowlib_operator import metrics
from flowlib_operator.events import EventRecorder
from flowlib_operator.resolve import resolve_definition


@dataclass
class FlowValidation:
    client: KubeClient
    events: EventRecorder

    async def validate(self, body: dict[str, Any], status_patch: MutableMapping[str, Any]) -> None:
        """Validate the Flow in ``body`` and put its status into ``status_patch``."""
        flow = FlowView(body)
        result = await resolve_definition(self.client, flow.namespace, flow.name, flow.spec)
        ready = not result.problems
        message = "the definition is valid" if ready else "; ".join(result.problems)
        status: ConditionStatus = "True" if ready else "False"
        previous = flow.ready
        moment = transition_time([previous] if previous else None, READY, status, rfc3339(now_utc()))
        found = {
            StatusKey.OBSERVED_GENERATION: flow.generation,
            StatusKey.CONDITIONS: [
                condition(
                    READY,
                    status,
                    "Valid" if ready else "InvalidFlow",
                    shorten(message, STATUS_MESSAGE_BYTES),
                    generation=flow.generation,
                    moment=moment,
                )
            ],
            StatusKey.NODE_COUNT: result.node_count,
            StatusKey.PROBLEMS: result.problems or None,
        }
        written = body.get("status") or {}
        if all(written.get(key) == value for key, value in found.items()):
            return  # validated again at a restart, and found as before: nothing to write or say
        status_patch.update(found)
        if not ready:
            metrics.INVALID_DEFINITIONS.labels(kind="Flow").inc()
            await self.events.record({"kind": KIND_FLOW, **body}, "Warning", "InvalidFlow", message)
