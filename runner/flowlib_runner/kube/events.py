"""Kubernetes Events about our objects, as ``kubectl describe`` shows them."""

from __future__ import annotations

import os
import socket
from typing import Any

from flowlib_api.meta import API_GROUP, EVENTS
from flowlib_api.runnerpod import ENV_POD_NAME
from flowlib_api.text import EVENT_MESSAGE_BYTES, shorten
from flowlib_api.times import now_utc, rfc3339, rfc3339_micros
from flowlib_runner.kube.client import KubeClient


def event_body(involved: dict[str, Any], event_type: str, reason: str, message: str, component: str) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (any object with apiVersion, kind and metadata)."""
    meta = involved["metadata"]
    now = now_utc()
    stamp = rfc3339(now)
    message = shorten(message, EVENT_MESSAGE_BYTES)
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
        "reportingComponent": f"{API_GROUP}/{component}",
        "reportingInstance": os.environ.get(ENV_POD_NAME) or socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": rfc3339_micros(now),
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
