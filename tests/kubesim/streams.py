"""Long-running responses: watches and pod log streams.

Watch semantics follow https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
and #watch-bookmarks / #streaming-lists: no resourceVersion (or "0") starts with synthetic ADDED
events for the current state; a given resourceVersion replays history after it, or reports
410 Gone in an ERROR event when that history was compacted.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import tables
from .errors import ApiError, bad_request
from .selectors import parse_field_selector, parse_label_selector
from .store import Watcher

if TYPE_CHECKING:
    from .resources import ResourceType
    from .server import ApiServer

JSON = dict[str, Any]


def _flag(value: str | None) -> bool:
    return value in ("true", "1", "True")


async def watch(
    server: ApiServer, request: web.Request, rt: ResourceType, namespace: str | None, as_table: bool
) -> web.StreamResponse:
    q = request.query
    store = server.api.store
    lmatch = parse_label_selector(q.get("labelSelector"))
    fmatch = parse_field_selector(q.get("fieldSelector"), rt)

    def match(obj: JSON) -> bool:
        return lmatch(obj) and fmatch(obj)

    rv_text = q.get("resourceVersion", "")
    send_initial = _flag(q.get("sendInitialEvents"))
    bookmarks = _flag(q.get("allowWatchBookmarks"))
    if send_initial and not bookmarks:
        raise ApiError(
            422,
            "Invalid",
            "sendInitialEvents is forbidden for watch unless the WatchBookmarks feature gate is enabled "
            "and allowWatchBookmarks is true",
        )
    timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
    watcher = Watcher(rt.key, namespace, match)
    initial: list[tuple[str, JSON]] = []
    gone = False
    if rv_text in ("", "0") or send_initial:
        for obj in store.items(rt.key, namespace):
            if match(obj):
                initial.append(("ADDED", obj))
    else:
        try:
            since = int(rv_text)
        except ValueError as exc:
            raise bad_request(f"invalid resource version: {rv_text!r}") from exc
        history = store.events_since(since)
        if history is None:
            gone = True
        else:
            replay = Watcher(rt.key, namespace, match)
            for event in history:
                replay.offer(event)
            while not replay.queue.empty():
                item = replay.queue.get_nowait()
                if item is not None:
                    initial.append(item)
    if not gone:
        # Registered before anything is awaited, so no event between the initial state and the
        # stream can be missed, whether or not preparing the response yields to the event loop.
        store.watchers.add(watcher)
        server.open_watches.add(watcher)
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
    except BaseException:
        store.watchers.discard(watcher)
        server.open_watches.discard(watcher)
        raise
    sent_columns = False

    def encode(kind: str, obj: JSON) -> bytes:
        nonlocal sent_columns
        if kind not in ("ERROR", "BOOKMARK"):
            obj = server.api.present(rt, obj)
            if as_table:
                obj = tables.table(
                    rt,
                    [obj],
                    obj["metadata"].get("resourceVersion", ""),
                    q.get("includeObject", "Metadata"),
                    not sent_columns,
                )
                sent_columns = True
        return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()

    if gone:
        status = ApiError(410, "Expired", f"too old resource version: {rv_text} ({store.oldest_available()})").status()
        await response.write(encode("ERROR", status))
        await response.write_eof()
        return response
    try:
        for kind, obj in initial:
            await response.write(encode(kind, obj))
        if send_initial:
            mark = {
                "kind": rt.kind,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(store.rv), "annotations": {"k8s.io/initial-events-end": "true"}},
            }
            await response.write(encode("BOOKMARK", mark))
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            wait = server.bookmark_interval
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            try:
                item = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if bookmarks and (deadline is None or deadline - time.monotonic() > 0):
                    mark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(store.rv)},
                    }
                    await response.write(encode("BOOKMARK", mark))
                continue
            if item is None:
                break
            await response.write(encode(*item))
        await response.write_eof()
    except ConnectionResetError:
        # The client went away: nothing more to send to it.
        return response
    finally:
        store.watchers.discard(watcher)
        server.open_watches.discard(watcher)
    return response


async def pod_log(server: ApiServer, request: web.Request, pod: JSON) -> web.StreamResponse:
    q = request.query
    meta = pod["metadata"]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    name = q.get("container")
    if not name:
        if len(containers) != 1:
            raise bad_request(
                f"a container name must be specified for pod {meta['name']}, choose one of: [{' '.join(containers)}]"
            )
        name = containers[0]
    elif name not in containers and name not in init:
        raise bad_request(f"container {name} is not valid for pod {meta['name']}")
    log = server.kubelet.log_for(meta["namespace"], meta["name"], meta["uid"], name, _flag(q.get("previous")))
    if log is None:
        if _flag(q.get("previous")):
            raise bad_request(f'previous terminated container "{name}" in pod "{meta["name"]}" not found')
        reason = server.kubelet.waiting_reason(pod, name)
        raise bad_request(f'container "{name}" in pod "{meta["name"]}" is waiting to start: {reason}')
    since = None
    if q.get("sinceSeconds"):
        since = time.time() - int(q["sinceSeconds"])
    elif q.get("sinceTime"):
        from .meta import parse_time

        since = parse_time(q["sinceTime"]).timestamp()
    tail = int(q["tailLines"]) if q.get("tailLines") else None
    limit = int(q["limitBytes"]) if q.get("limitBytes") else None
    stamps = _flag(q.get("timestamps"))
    follow = _flag(q.get("follow"))
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    if follow:
        response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0
    lines = [ln for ln in log.lines if since is None or ln[0] >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    cursor = len(log.lines)

    async def emit(batch: list[tuple[float, bytes]]) -> bool:
        nonlocal sent
        for when, data in batch:
            chunk = (log.format_time(when).encode() + b" " + data) if stamps else data
            if limit is not None and sent + len(chunk) > limit:
                await response.write(chunk[: limit - sent])
                return False
            sent += len(chunk)
            await response.write(chunk)
        return True

    try:
        going = await emit(lines)
        while follow and going and not log.finished:
            await log.wait_change()
            going = await emit(log.lines[cursor:])
            cursor = len(log.lines)
        if follow and going:
            await emit(log.lines[cursor:])
        await response.write_eof()
    except ConnectionResetError:
        # The client stopped reading (kubectl logs -f interrupted): the stream simply ends.
        return response
    return response
