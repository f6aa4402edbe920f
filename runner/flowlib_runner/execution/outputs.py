"""Output values too big for the status, kept whole in the run's store (``status.outputRefs``).

Why: the status must stay small (``flowlib_api.runstatus.bounded``), so a node returning 5 MB left a
256-byte preview in ``status.output`` and the value was gone. A run with a store (every cluster run
by default; ``flowctl run --store DIR`` locally) now writes such values whole to it, and the status
says where; ``flowctl output RUN KEY`` reads them back.

Which values: every output value whose JSON (compact, UTF-8) is over ``OUTPUT_REF_BYTES`` (4 KiB),
and any smaller one that ``bounded()`` would still shorten or leave out of this run's final status
(many mid-sized values). The second set is found by asking ``bounded()`` itself, with
``_MARGIN`` bytes less budget than the final status gets, about the status the run is about to end
with; keeping a value costs its ref in the status, so that is asked again until nothing new is cut.
``status.output`` is what it was without a store (a value that fits stays whole, a shortened one is a
preview); ``status.outputRefs`` lists every kept value (at most ``MAX_OUTPUT_REFS``; all of them are
in the store's ``run/outputs`` blob, which ``flowctl output`` also reads).

Where: the value's JSON, zlib-compressed, in the folder ``outputs/<name>`` (``store.parts``: split
into parts a configmap store can hold); ``<name>`` is the key, with characters a blob name cannot
have written ``_xx`` (hex of their UTF-8 bytes). Kept values are the JSON of the status (objects JSON
cannot hold are their ``repr``), unmasked, as the run's checkpoints are.

When: the checkpoint writer writes them on its own store, after the run's last checkpoint
(``Checkpointer.last_writes``), so nothing else writes to the store meanwhile and a configmap store
needs no second reader. A run that is interrupted (its pod stopped, to be resumed) or suspended keeps
nothing: it has not ended. A value the store could not take (full, unreachable) gets a note in the
status saying so; its preview stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_api.runstatus import FINISHED_PHASES, STATUS_LIMIT, RunStatus, bounded, json_safe
from flowlib_runner.execution.checkpoints import Checkpointer
from flowlib_runner.execution.reporting.tracker import StatusTracker
from flowlib_runner.store import MAX_NAME_LENGTH, RunStore, StoreError
from flowlib_runner.store.parts import COMPRESSION_LEVEL, keep

OUTPUT_REF_BYTES = 4 * 1024
"""An output value whose JSON is over this many bytes is kept whole in the run's store."""
MAX_OUTPUT_REFS = 100
"""At most this many kept values are listed in ``status.outputRefs`` (all of them in ``INDEX_BLOB``)."""
FOLDER = "outputs"
INDEX_BLOB = "run/outputs"
"""Every kept value's ref, by key (compressed JSON): what ``flowctl output`` reads without a status."""
_MARGIN = 1024
"""Bytes of budget fewer than the final status gets, when asking ``bounded()`` what it would cut."""
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_NAME_CHARS = MAX_NAME_LENGTH - len(FOLDER) - len("/") - len("/99999")


def json_bytes(value: Any) -> bytes:
    """The compact JSON of a JSON-safe value, as status sizes are counted."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def folder_for(key: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """The store folder of output ``key``: ``outputs/<name>``, unique among ``taken``."""
    name = "".join(c if c in _SAFE else "".join(f"_{b:02x}" for b in c.encode()) for c in key) or "_"
    if name in (".", ".."):
        name = name.replace(".", "_2e")
    if len(name) > _NAME_CHARS:
        name = f"{name[: _NAME_CHARS - 17]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    folder, n = f"{FOLDER}/{name}", 1
    while folder in taken:
        n += 1
        folder = f"{FOLDER}/{name[: _NAME_CHARS - 8]}-{n}"
    return folder


def ref(folder: str, size: int, *, parts: int = 1, stored: int | None = None) -> dict[str, Any]:
    """A ``status.outputRefs`` entry."""
    entry: dict[str, Any] = {"blob": folder, "parts": parts, "bytes": size}
    if stored is not None:
        entry["storedBytes"] = stored
    return entry


def encoded(value: Any) -> bytes:
    """The compact JSON of an output value as the status shows it (``json_safe``: objects JSON cannot
    hold become their ``repr``), in one serialisation when the value is plain JSON data already."""
    try:
        return json_bytes(value)
    except (TypeError, ValueError):
        return json_bytes(json_safe(value))


def encode_outputs(output: Mapping[str, Any]) -> dict[str, bytes] | None:
    """Every output value's JSON (``encoded``), made once at the end of a run with a store: what to
    keep is chosen from it, kept values are written from it and the status reads its output back
    from it (``StatusTracker.finish``). None when a value cannot be encoded (the status then makes
    its output itself, and nothing is kept)."""
    try:
        return {key: encoded(value) for key, value in output.items()}
    except (TypeError, ValueError, RecursionError):
        return None


def choose(
    status: RunStatus, output: Mapping[str, Any], *, budget: int, data: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """The output values to keep (key -> JSON bytes) of a run ending with ``status`` (unbounded, its
    ``output`` not set yet) and ``output`` (whose JSON is ``data`` when the caller has it): see the
    module docstring."""
    data = {key: encoded(value) for key, value in output.items()} if data is None else data
    chosen = {key for key, text in data.items() if len(text) > OUTPUT_REF_BYTES}
    # What bounded() sees of a value bigger than a whole status: only that it is too big (it becomes a
    # preview whatever it holds), so a placeholder of about its size saves handling it again.
    seen = {
        key: "x" * (STATUS_LIMIT + 1) if len(text) > STATUS_LIMIT else json.loads(text) for key, text in data.items()
    }
    for _ in range(len(output) + 1):
        folders: set[str] = set()
        refs = {}
        for key in sorted(chosen)[:MAX_OUTPUT_REFS]:
            folders.add(folder := folder_for(key, folders))
            refs[key] = ref(folder, len(data[key]), parts=99, stored=len(data[key]))
        prospective = status.model_copy(update={"output": seen, "output_refs": refs or None})
        shown = bounded(prospective, budget - _MARGIN).output or {}
        cut = {key for key in output if key not in chosen and (key not in shown or shown[key] != seen[key])}
        if not cut:
            break
        chosen |= cut
    return {key: data[key] for key in output if key in chosen}


@dataclass
class KeptOutputs:
    """The values one run keeps and, once the writer has run, what became of each."""

    values: dict[str, bytes]
    location: str
    folders: dict[str, str] = field(default_factory=dict)
    refs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for key in self.values:
            self.folders[key] = folder_for(key, set(self.folders.values()))

    async def write(self, store: RunStore) -> None:
        """Write every value, then the index, and delete what an earlier attempt kept that this one
        does not (on the checkpoint writer's thread; never raises)."""
        refs: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        # Compressed side by side on worker threads (zlib lets go of the GIL): the end of the run
        # waits for this, and the run's own thread has nothing left to do meanwhile.
        keys = list(self.values)
        packed = await asyncio.gather(*(asyncio.to_thread(_compress, self.values[key]) for key in keys))
        for key, compressed in zip(keys, packed, strict=True):
            data = self.values[key]
            try:
                kept = await keep(store, self.folders[key], data, compressed=compressed)
            except (StoreError, OSError, ValueError) as error:
                failed[key] = str(error)
                continue
            refs[key] = ref(kept.folder, kept.size, parts=kept.parts, stored=kept.stored)
        try:
            ours = tuple(folder + "/" for folder in self.folders.values())
            stale = [name for name in await store.names(FOLDER + "/") if not name.startswith(ours)]
            index = json_bytes(refs)
            await store.put_many({INDEX_BLOB: _compress(index), **dict.fromkeys(stale)})
        except (StoreError, OSError, ValueError) as error:
            if refs:  # the values are there; only `flowctl output DIR` (no status) would miss the index
                failed.setdefault("", f"the index {INDEX_BLOB} was not written: {error}")
        with self._lock:
            self.refs, self.failed, self.done = refs, failed, True

    def settle(self, tracker: StatusTracker) -> None:
        """Put the refs of what was written, and notes about what was not, in the run's status."""
        with self._lock:
            done, refs, failed = self.done, dict(self.refs), dict(self.failed)
        notes: list[str] = []
        if not done:
            refs, failed = {}, {}
            keys = ", ".join(sorted(self.values))
            notes.append(
                f"output value(s) {keys} could not be kept in the run store {self.location}: the store was not "
                "written at the end of the run (see the log); status.output holds at most a preview"
            )
        index_note = failed.pop("", None)
        if failed:
            first = next(iter(failed.values()))
            notes.append(
                f"output value(s) {', '.join(sorted(failed))} could not be kept in the run store {self.location} "
                f"({first}); status.output holds at most a preview"
            )
        if index_note:
            notes.append(index_note)
        if len(refs) > MAX_OUTPUT_REFS:
            notes.append(
                f"outputRefs lists {MAX_OUTPUT_REFS} of the {len(refs)} output values kept in the run store; "
                "flowctl output RUN lists them all"
            )
            refs = {key: refs[key] for key in sorted(refs)[:MAX_OUTPUT_REFS]}
        tracker.output_refs = refs or None
        tracker.notes.extend(notes)


def keep_outputs(
    checkpointer: Checkpointer | None,
    tracker: StatusTracker,
    output: Mapping[str, Any],
    *,
    phase: str,
    message: str | None,
    encoded: Mapping[str, bytes] | None = None,
) -> KeptOutputs | None:
    """Choose the output values to keep and hand them to the checkpoint writer, to be written after
    the run's last checkpoint; call ``settle(tracker)`` after ``checkpointer.finish()``. None when
    there is nothing to keep: no store, a run that has not ended (interrupted, suspended), or no
    value worth it. ``encoded``: the values' JSON (``encode_outputs``), when the caller made it.
    Never raises: what goes wrong becomes a note in the status."""
    if checkpointer is None or checkpointer.interrupted or phase not in FINISHED_PHASES or not output:
        return None
    try:
        ending = tracker.snapshot(bound=False).model_copy(
            update={
                "phase": phase,
                "message": message if message is not None else (None if phase == "Succeeded" else tracker.message),
                "current_node": None,
                "completion_time": "2000-01-01T00:00:00.000Z",
            }
        )
        values = choose(ending, output, budget=tracker.budget, data=encoded)
    except (TypeError, ValueError, RecursionError) as error:
        tracker.notes.append(f"output values were not kept in the run store: {type(error).__name__}: {error}")
        return None
    if not values:
        return None
    kept = KeptOutputs(values, checkpointer.location)
    checkpointer.last_writes.append(kept.write)
    return kept


def _compress(data: bytes) -> bytes:
    return zlib.compress(data, COMPRESSION_LEVEL)


def read_index(data: bytes) -> dict[str, dict[str, Any]]:
    """The refs an ``INDEX_BLOB`` holds; ValueError when it holds none."""
    try:
        found = json.loads(zlib.decompress(data))
    except zlib.error as error:
        raise ValueError(f"not a compressed index: {error}") from error
    if not isinstance(found, dict):
        raise ValueError("not an index of output refs")
    return found
