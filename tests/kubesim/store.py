"""In-memory object storage with one global resourceVersion counter and a bounded event history.

The history is what watches resume from (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
a resourceVersion older than the oldest retained event is answered with 410 Gone, as etcd compaction
makes a real server do. ``compact()`` lets tests force that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
GroupResource = tuple[str, str]


@dataclass(frozen=True)
class Event:
    rv: int
    key: GroupResource
    type: str  # ADDED, MODIFIED, DELETED
    obj: JSON
    old: JSON | None


class Watcher:
    """One open watch: filters store events and queues them, translating selector transitions
    (an object that stops matching is reported DELETED, one that starts matching ADDED)."""

    def __init__(
        self,
        key: GroupResource,
        namespace: str | None,
        match: Callable[[JSON], bool],
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[tuple[str, JSON] | None] = asyncio.Queue()

    def offer(self, event: Event) -> None:
        if event.key != self.key:
            return
        if self.namespace is not None and event.obj.get("metadata", {}).get("namespace") != self.namespace:
            return
        now_matches = self.match(event.obj)
        if event.type == "MODIFIED":
            was = event.old is not None and self.match(event.old)
            if was and not now_matches:
                self.queue.put_nowait(("DELETED", event.obj))
            elif now_matches:
                self.queue.put_nowait(("MODIFIED" if was else "ADDED", event.obj))
        elif now_matches:
            self.queue.put_nowait((event.type, event.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


class Store:
    def __init__(self, history: int = 20000) -> None:
        self.rv = 1
        self._objects: dict[GroupResource, dict[tuple[str, str], JSON]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted = 1  # events with rv <= this are gone
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Event], None]] = []

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def get(self, key: GroupResource, namespace: str, name: str) -> JSON | None:
        return self._objects.get(key, {}).get((namespace, name))

    def items(self, key: GroupResource, namespace: str | None = None) -> list[JSON]:
        objs = self._objects.get(key, {})
        if namespace is None:
            return [objs[k] for k in sorted(objs)]
        return [objs[k] for k in sorted(objs) if k[0] == namespace]

    def all_items(self) -> list[tuple[GroupResource, JSON]]:
        return [(key, obj) for key, objs in self._objects.items() for obj in objs.values()]

    def put(self, key: GroupResource, obj: JSON, old: JSON | None) -> JSON:
        """Store ``obj`` (a fresh dict, never mutated afterwards) with a new resourceVersion."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        meta = obj["metadata"]
        self._objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
        self._emit(Event(rv, key, "MODIFIED" if old is not None else "ADDED", obj, old))
        return obj

    def remove(self, key: GroupResource, obj: JSON) -> JSON:
        rv = self.next_rv()
        meta = obj["metadata"]
        self._objects.get(key, {}).pop((meta.get("namespace", ""), meta["name"]), None)
        final = {**obj, "metadata": {**meta, "resourceVersion": str(rv)}}
        self._emit(Event(rv, key, "DELETED", final, obj))
        return final

    def drop_resource(self, key: GroupResource) -> list[JSON]:
        """Forget every object of a resource (its CRD is gone); watchers see them deleted."""
        gone = list(self._objects.get(key, {}).values())
        for obj in gone:
            self.remove(key, obj)
        self._objects.pop(key, None)
        return gone

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event)
        for listener in list(self.listeners):
            listener(event)

    def compact(self) -> None:
        """Forget all history, as an etcd compaction at the current revision would."""
        self._history.clear()
        self._compacted = self.rv

    def oldest_available(self) -> int:
        return self._compacted

    def events_since(self, rv: int) -> list[Event] | None:
        """Events after ``rv``, or None when that part of history is gone."""
        if rv < self._compacted:
            return None
        return [e for e in self._history if e.rv > rv]
