"""What a checkpoint is in a run store, and reading one back.

Layout (blobs compressed unless the store does not want it, ``store.base.compresses``; a reader
tells by the first byte): ``checkpoint/meta`` (the position, the blob holding each shared key or the
encoded value itself for a small one, the batch segments of the position, whether the run ended),
``shared/<n>`` (one top-level shared key each) and ``items/<n>`` (one or more segments, one after
the other: ``[index, result, index, result, ...]`` of one batch visit, a failed item's result as
``(FAILED_ITEM, type, message)``; format 1 had ``[(index, result), ...]`` and no inline values, and
is still read). Blob numbers only grow, so a blob is never rewritten in place: a reader of an older
meta never sees a newer value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from flowlib_runner.definition.factories.durable import Path, RecordedFailure
from flowlib_runner.execution.checkpoints.codec import decode, unpack, unpack_sequence
from flowlib_runner.store import RunStore

META = "checkpoint/meta"
INVOCATION = "run/invocation"
"""What the run was started with (``{"params", "outputs", "input"}``), written once with its first
checkpoint: a retry or resubmit that names none of its own inputs takes its source's."""
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, FORMAT_VERSION)
FAILED_ITEM = "__flowlib_failed_item__"

ResumeMode = Literal["resume", "retry"]


def path_key(path: Path) -> str:
    """A batch node's path as the key of its segments."""
    return "/".join(path)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used (another flow, a newer format, unreadable blobs)."""


@dataclass
class Checkpoint:
    """A checkpoint read back: where to resume and with what."""

    position: list[tuple[Path, str | None, int]]
    shared: dict[Any, Any]
    items: dict[str, dict[int, Any]]
    meta: dict[str, Any]
    store_location: str
    blobs: dict[Any, tuple[str, bytes]] = field(default_factory=dict)
    segments: dict[str, list[str]] = field(default_factory=dict)
    counter: int = 0

    @property
    def ended(self) -> str | None:
        ended: str | None = self.meta.get("ended")
        return ended

    @property
    def resumed_at(self) -> str:
        """The innermost node the run resumes at, as a path (``-`` past the end)."""
        if not self.position:
            return "-"
        path, node, _ = self.position[-1]
        return "/".join((*path, node)) if node is not None else "/".join(path) or "(end)"

    @property
    def items_count(self) -> int:
        return sum(len(results) for results in self.items.values())


async def read_meta(store: RunStore) -> dict[str, Any] | None:
    data = await store.get(META)
    if data is None:
        return None
    try:
        meta = unpack(data)
    except ValueError as error:
        raise CheckpointError(f"the checkpoint in {store.location} is unreadable: {error}") from error
    if not isinstance(meta, dict) or meta.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"the checkpoint in {store.location} has an unknown format")
    return meta


async def read_invocation(store: RunStore) -> dict[str, Any] | None:
    """The params, outputs and input the run in ``store`` was started with (None: not recorded)."""
    data = await store.get(INVOCATION)
    if data is None:
        return None
    try:
        invocation = unpack(data)
    except ValueError as error:
        raise CheckpointError(f"the invocation recorded in {store.location} is unreadable: {error}") from error
    if not isinstance(invocation, dict):
        raise CheckpointError(f"the invocation recorded in {store.location} has an unknown format")
    return invocation


async def load_checkpoint(
    store: RunStore, *, definition_digest: str | None, mode: ResumeMode = "resume"
) -> Checkpoint | None:
    """The latest checkpoint in ``store``, or None when there is none or it is not resumable.

    ``mode`` ``retry`` (a new run from a finished one) leaves failed items out, so they run again;
    ``resume`` (a new pod of the same run) keeps them, as the lost pod had finished them.
    ``definition_digest`` (when given) must match the checkpoint's, or ``CheckpointError`` says so.
    """
    meta = await read_meta(store)
    if meta is None or not meta.get("resumable"):
        return None
    if definition_digest is not None and meta.get("definition") != definition_digest:
        raise CheckpointError(
            f"the checkpoint in {store.location} was taken for another definition of the flow; "
            "resubmit the run instead of retrying it"
        )
    shared_names: dict[Any, str | None] = meta.get("shared") or {}
    inline: dict[Any, bytes] = meta.get("inline") or {}
    digests: dict[Any, bytes] = meta.get("digests") or {}
    segments: dict[str, list[str]] = meta.get("segments") or {}
    flat = meta.get("version") != 1
    in_blobs = {key: name for key, name in shared_names.items() if name is not None}
    values = dict(zip(in_blobs, await asyncio.gather(*(_read(store, name) for name in in_blobs.values())), strict=True))
    shared = {key: values[key] if key in values else _inline(store, inline, key) for key in shared_names}
    items: dict[str, dict[int, Any]] = {}
    for key, names in segments.items():
        results: dict[int, Any] = {}
        for blob in await asyncio.gather(*(_read(store, name, sequence=True) for name in names)):
            for index, result in _records(blob, flat=flat):
                if type(result) is tuple and len(result) == 3 and result[0] == FAILED_ITEM:
                    if mode == "retry":
                        results.pop(index, None)
                        continue
                    results[index] = RecordedFailure(result[1], result[2])
                else:
                    results[index] = result
        items[key] = results
    position = [(tuple(path), node, int(steps)) for path, node, steps in meta.get("position") or []]
    return Checkpoint(
        position=position,
        shared=shared,
        items=items,
        meta=meta,
        store_location=store.location,
        blobs={key: (name, digests.get(key, b"")) for key, name in in_blobs.items()},
        segments={key: list(names) for key, names in segments.items()},
        counter=int(meta.get("counter") or 0),
    )


async def _read(store: RunStore, name: str, *, sequence: bool = False) -> Any:
    data = await store.get(name)
    if data is None:
        raise CheckpointError(f"the checkpoint in {store.location} names blob {name!r}, which is missing")
    try:
        return unpack_sequence(data) if sequence else unpack(data)
    except ValueError as error:
        raise CheckpointError(f"blob {name!r} of the checkpoint in {store.location} is unreadable: {error}") from error


def _inline(store: RunStore, inline: dict[Any, bytes], key: Any) -> Any:
    """The value of shared key ``key`` kept in the meta blob itself."""
    if key not in inline:
        raise CheckpointError(f"the checkpoint in {store.location} names shared key {key!r} without its value")
    try:
        return decode(inline[key])
    except ValueError as error:
        where = f"the checkpoint in {store.location}"
        raise CheckpointError(f"shared key {key!r} of {where} is unreadable: {error}") from error


def _records(segments: list[Any], *, flat: bool) -> Iterator[tuple[int, Any]]:
    """The ``(index, result)`` records of a blob's segments (flat, or pairs in format 1)."""
    for records in segments:
        if flat:
            yield from zip(records[::2], records[1::2], strict=True)
        else:
            yield from records
