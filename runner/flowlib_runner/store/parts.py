"""Keeping one large value whole in a run store: compressed, and split into parts every backend holds.

What uses it: output values too big for the FlowRun's status (``outputs/<name>``) and each
attempt's run log (``logs/attempt-<n>``). Such a value can outgrow what one blob of a backend may
be (a configmap store's blob must fit in one ConfigMap, about 1000 KiB), so it is kept as the folder
``<folder>/0``, ``<folder>/1``, ...: the zlib-compressed bytes cut into parts of ``part_bytes(store)``,
read back by concatenating them in order. A configmap store gets parts of a quarter of a ConfigMap,
so four fill one and a value may spread over all of them (about 7.8 MiB compressed in all); the
other backends get parts of ``PART_BYTES`` (one part for most values).

A write replaces the folder: its parts first, then it deletes the parts of an older, longer version.
A reader checks that the parts make one whole zlib stream (and, when told, that there are as many
as written), so a half-written or half-deleted value is an error, never silently short.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from flowlib_api import storespec
from flowlib_runner.store.base import RunStore, StoreError, check_name
from flowlib_runner.store.configmap import ConfigMapStore

PART_BYTES = 64 * 2**20
"""The size of a part in a store other than a configmap store (S3 objects, files)."""
COMPRESSION_LEVEL = 1
"""zlib's fastest, as for checkpoints: the end of a run waits for the write, and JSON and logs still
shrink 2-10x (level 6 gains a few percent on them at four times the time)."""


@dataclass(frozen=True)
class Kept:
    """What ``keep`` wrote: the folder, how many parts, and the bytes before and after compression."""

    folder: str
    parts: int
    size: int
    stored: int


def part_bytes(store: RunStore) -> int:
    """The largest part ``store`` is given: a quarter of a store ConfigMap, or ``PART_BYTES``."""
    if isinstance(store, ConfigMapStore):
        return max(4096, storespec.CONFIGMAP_CHUNK_BYTES // 4 - 1024)  # room for the key and the entry
    return PART_BYTES


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (one empty piece for empty data)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def part_names(folder: str, parts: int) -> list[str]:
    return [check_name(f"{folder}/{i}") for i in range(parts)]


async def keep(store: RunStore, folder: str, data: bytes, *, compressed: bytes | None = None) -> Kept:
    """Write ``data`` (compressed here unless ``compressed`` is given) as the parts of ``folder``,
    replacing what the folder held. Raises the store's ``StoreError``/``StoreFull``."""
    packed = zlib.compress(data, COMPRESSION_LEVEL) if compressed is None else compressed
    pieces = split(packed, part_bytes(store))
    names = part_names(folder, len(pieces))
    blobs: dict[str, bytes | None] = dict(zip(names, pieces, strict=True))
    await store.put_many(blobs)
    stale = [name for name in await store.names(folder + "/") if name not in blobs and _is_part(folder, name)]
    if stale:
        await store.put_many(dict.fromkeys(stale))
    return Kept(folder, len(pieces), len(data), len(packed))


async def read(store: RunStore, folder: str, *, parts: int | None = None) -> bytes | None:
    """The value kept in ``folder`` (None when it holds no part); ``StoreError`` when its parts are
    missing, fewer than ``parts``, or do not decompress."""
    found = sorted(
        (int(name.rsplit("/", 1)[1]), name) for name in await store.names(folder + "/") if _is_part(folder, name)
    )
    if not found:
        return None
    names = [name for _, name in found]
    expected = parts if parts is not None else len(found)
    if [index for index, _ in found][:expected] != list(range(expected)):
        raise StoreError(
            f"{store.location}: {folder} is incomplete: {expected} part(s) expected, found {[i for i, _ in found]}"
        )
    pieces = await asyncio.gather(*(store.get(name) for name in names[:expected]))
    if any(piece is None for piece in pieces):
        raise StoreError(f"{store.location}: a part of {folder} disappeared while it was read")
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(b"".join(piece or b"" for piece in pieces)) + decompressor.flush()
    except zlib.error as error:
        raise StoreError(f"{store.location}: {folder} does not decompress: {error}") from error
    if not decompressor.eof:
        raise StoreError(f"{store.location}: {folder} is cut short (a part is missing or was not written whole)")
    return data


def _is_part(folder: str, name: str) -> bool:
    rest = name[len(folder) + 1 :]
    return name.startswith(folder + "/") and rest.isdigit() and "/" not in rest
