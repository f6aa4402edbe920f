"""Kubernetes Events about our objects, as ``kubectl describe`` shows them."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from flowlib_runner.kube.client import EVENTS, KubeClient
from flowlib_runner.status import shorten

MAX_MESSAGE = 1024  # bytes; Events are for people; the full story is in status and logs


def event_body(involved: dict[str, Any], event_type: str, reason: str, message: str, component: str) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (any object with apiVersion, kind and metadata)."""
    meta = involved["metadata"]
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = shorten(message, MAX_MESSAGE)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": f"flowlib.dev/{component}",
        "reportingInstance": os.environ.get("FLOWLIB_POD_NAME") or socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": reason,
        "count": 1,
    }


async def post_event(
    client: KubeClient, involved: dict[str, Any], event_type: str, reason: str, message: str, *, component: str
) -> None:
    """Post an Event; raises like any other API call (callers decide whether it may be lost)."""
    await client.create(
        EVENTS,
        event_body(involved, event_type, reason, message, component=component),
        involved["metadata"]["namespace"],
    )
