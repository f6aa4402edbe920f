"""The configmap store's bookkeeping, without I/O: blob names as ConfigMap keys, what each chunk
holds, and which chunk each write of a ``put_many`` goes to (``plan``).

Keys. A ConfigMap key is ``[-._a-zA-Z0-9]+``, at most 253 characters, not ``.``/``..`` and not
starting with ``..``; a blob name also has ``/``. ``_`` is the escape character: ``/`` is written
``__``, ``_`` is written ``_-``, and a leading ``.`` is written ``_.`` (so ``..x`` becomes the valid
``_..x``). Every ``_`` of a key starts a two-character escape, so decoding is unambiguous and
``decode_key(encode_key(name)) == name``; a key that is not the encoding of a valid name (written by
somebody else) is not a blob and is left alone. A key is at most twice as long as its name, which
is why names have at most 120 characters (``base.MAX_NAME_LENGTH``).

Room. A chunk holds at most ``storespec.CONFIGMAP_CHUNK_BYTES`` (read at call time, so tests can
shrink it). Kubernetes counts the decoded bytes of the values against its 1 MiB per ConfigMap, while
etcd (1.5 MiB a request) sees the stored object, where values are base64 (4/3 of their size) and
keys take room too. So a blob costs its key, its bytes and ``ENTRY_OVERHEAD``: with 1000 KiB of
that in a chunk, neither limit is reached, however small or large the blobs.

Order. ``get`` answers with the copy in the highest chunk when a name is in several (only a write
interrupted half-way leaves two). A write stays in the chunk that holds the blob when it fits there,
else goes to the first chunk with room; a blob that moves is written first and removed from its old
chunk after (in the same patch when the old chunk is patched later, else in a second round), so at
every moment the highest copy is the old value or the new one, and an interrupted move never loses
the blob.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowlib_api import storespec
from flowlib_runner.store.base import StoreFull, check_name

ENTRY_OVERHEAD = 8
"""Bytes counted per blob besides its key and value: the JSON punctuation of the stored entry."""

_ESCAPES = {"_": "/", "-": "_", ".": "."}


def encode_key(name: str) -> str:
    """The ConfigMap key of blob ``name`` (a valid name)."""
    key = name.replace("_", "_-").replace("/", "__")
    return "_." + key[1:] if key.startswith(".") else key


def decode_key(key: str) -> str | None:
    """The blob name whose key is ``key``, or None when ``key`` is not one of ours."""
    out: list[str] = []
    i = 0
    while i < len(key):
        if key[i] != "_":
            out.append(key[i])
            i += 1
            continue
        mapped = _ESCAPES.get(key[i + 1 : i + 2])
        if mapped is None:
            return None
        out.append(mapped)
        i += 2
    name = "".join(out)
    try:
        check_name(name)
    except ValueError:
        return None
    return name if encode_key(name) == key else None


def blob_cost(name: str, data: bytes) -> int:
    """What a blob takes of a chunk's room."""
    return len(encode_key(name)) + len(data) + ENTRY_OVERHEAD


def capacity() -> int:
    return storespec.CONFIGMAP_CHUNK_BYTES


@dataclass
class Chunk:
    """One ConfigMap of the store as last seen: its blobs, and the room the rest of it takes
    (entries that are not blobs of ours, ``data``)."""

    name: str
    exists: bool = False
    blobs: dict[str, bytes] = field(default_factory=dict)
    foreign: int = 0

    @property
    def used(self) -> int:
        return self.foreign + sum(blob_cost(name, data) for name, data in self.blobs.items())

    def load(self, obj: Mapping[str, Any] | None) -> None:
        """Take the ConfigMap ``obj`` as the chunk's content (None: it does not exist)."""
        self.exists = obj is not None
        self.blobs, self.foreign = {}, 0
        if obj is None:
            return
        for key, value in (obj.get("binaryData") or {}).items():
            name = decode_key(key)
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError, TypeError):
                name, data = None, str(value).encode()
            if name is None:
                self.foreign += len(key) + len(data) + ENTRY_OVERHEAD
            else:
                self.blobs[name] = data
        for key, value in (obj.get("data") or {}).items():
            self.foreign += len(key) + len(str(value).encode()) + ENTRY_OVERHEAD


def current(chunks: Sequence[Chunk], name: str) -> bytes | None:
    """The blob's bytes: the copy in the highest chunk that has one."""
    for chunk in reversed(chunks):
        data = chunk.blobs.get(name)
        if data is not None:
            return data
    return None


Changes = dict[str, bytes | None]


@dataclass
class Plan:
    """The patches of one ``put_many``: ``first`` in chunk order, then ``after`` (removals of the
    old copies of blobs that moved to a higher chunk, once their new copy is in)."""

    first: dict[int, Changes] = field(default_factory=dict)
    after: dict[int, Changes] = field(default_factory=dict)


def plan(chunks: Sequence[Chunk], items: Sequence[tuple[str, bytes | None]], *, location: str) -> Plan:
    """Where each write goes; ``StoreFull`` (before anything is written) when one does not fit."""
    room = capacity()
    used = [chunk.used for chunk in chunks]
    result = Plan()
    for name, data in items:
        holders = [i for i, chunk in enumerate(chunks) if name in chunk.blobs]
        for i in holders:
            used[i] -= blob_cost(name, chunks[i].blobs[name])
        if data is None:
            for i in holders:
                result.first.setdefault(i, {})[name] = None
            continue
        need = blob_cost(name, data)
        if need > room:
            raise StoreFull(
                f"{location}: blob {name} takes {need} bytes, more than one store ConfigMap holds "
                f"({_size(room)}); {_advice()}"
            )
        target = holders[-1] if holders and used[holders[-1]] + need <= room else None
        if target is None:
            target = next((i for i in range(len(chunks)) if used[i] + need <= room), None)
        if target is None:
            raise StoreFull(f"{location} is full: writing {name} needs {need} bytes more; {_advice()}")
        used[target] += need
        result.first.setdefault(target, {})[name] = data
        for i in holders:
            if i > target:
                result.first.setdefault(i, {})[name] = None  # patched after the target: same round
            elif i < target:
                result.after.setdefault(i, {})[name] = None
                used[i] += blob_cost(name, chunks[i].blobs[name])  # still there while the first round runs
    return result


def _advice() -> str:
    chunks, room = storespec.CONFIGMAP_CHUNKS, capacity()
    return (
        f"a configmap store holds about {_size(chunks * room)} ({chunks} ConfigMaps of {_size(room)}); "
        "give runs that keep more an s3 or pvc store (spec.store.type)"
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"
