"""Resources served as views of another resource's objects (one store, two shapes).

core/v1 Events and events.k8s.io/v1 Events are the same objects in Kubernetes: an Event written
through one API is read through the other, with ``message``↔``note``, ``involvedObject``↔
``regarding``, ``source``↔``deprecatedSource`` and so on
(https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/, the field docs of
each ``deprecated*`` field, and the conversion in pkg/apis/events/v1). The simulator stores the
core/v1 shape and converts on the way in and out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# core/v1 field -> events.k8s.io/v1 field
_EVENT_FIELDS = (
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)


def _rename(obj: JSON, pairs: tuple[tuple[str, str], ...], api_version: str) -> JSON:
    out: JSON = {"apiVersion": api_version, "kind": obj.get("kind", "Event"), "metadata": obj.get("metadata", {})}
    for source, target in pairs:
        if source in obj and obj[source] is not None:
            out[target] = obj[source]
    return out


def core_event_to_events_v1(obj: JSON) -> JSON:
    return _rename(obj, _EVENT_FIELDS, "events.k8s.io/v1")


def events_v1_to_core_event(obj: JSON) -> JSON:
    return _rename(obj, tuple((b, a) for a, b in _EVENT_FIELDS), "v1")


@dataclass(frozen=True)
class View:
    """How a resource type maps onto the objects of another (its ``storage`` group and plural)."""

    storage: tuple[str, str]
    to_view: Callable[[JSON], JSON]
    from_view: Callable[[JSON], JSON]
    fields: dict[str, str] = field(default_factory=dict)  # view field selector label -> stored path


EVENTS_V1 = View(
    storage=("", "events"),
    to_view=core_event_to_events_v1,
    from_view=events_v1_to_core_event,
    fields={
        "regarding.kind": "involvedObject.kind",
        "regarding.name": "involvedObject.name",
        "regarding.namespace": "involvedObject.namespace",
        "regarding.uid": "involvedObject.uid",
        "reason": "reason",
        "type": "type",
        "reportingController": "reportingComponent",
    },
)
