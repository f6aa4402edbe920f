"""The operator's Events about Flows and FlowRuns: a courtesy copy of what status already says."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowlib_runner.kube.client import ApiError, KubeClient
from flowlib_runner.kube.events import post_event

from flowlib_api.meta import GROUP_VERSION, KIND_FLOWRUN

log = logging.getLogger("flowlib.operator")


@dataclass
class EventRecorder:
    client: KubeClient

    async def record(self, body: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Post an Event about ``body``; a lost Event is logged, never retried forever."""
        involved = {"apiVersion": GROUP_VERSION, "kind": body.get("kind", KIND_FLOWRUN), **body}
        try:
            await post_event(self.client, involved, event_type, reason, message, component="operator")
        except ApiError as error:
            log.warning("could not post %s event %s on %s: %s", event_type, reason, body["metadata"]["name"], error)
