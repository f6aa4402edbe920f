"""The run store's interface: named blobs of one run, kept outside etcd's status.

Why a store at all: a FlowRun is one pod, and what it did must outlive that pod. The runner keeps
its checkpoints (the shared store, the position in the graph, finished batch items), the output
values too big for status and the run's log there, so a new pod can resume, a retry can start where
a failed run stopped, and ``flowctl output``/``flowctl logs`` work after the pods are gone.

A store holds the blobs of exactly one run. Names are short relative paths of ``[A-Za-z0-9._-]``
segments separated by ``/`` (``checkpoint/meta``, ``items/n3/00012``), at most ``MAX_NAME_LENGTH``
characters (so that every backend can spell them: a ConfigMap key, 253 characters at most, takes up
to two characters per character of a name). As with git's refs, a name is never also the folder of
other names (``items/n3`` and ``items/n3/00012`` cannot both be blobs): the directory store keeps
blobs as files along their names and refuses that write. Values are bytes (callers compress and
encode; ``compresses(store)`` says whether compressing pays: a backend whose bytes are cheap, a
local or mounted disk, sets ``compress_blobs = False``, and the checkpoint writer then spends no CPU
on it). Every backend gives the same answers:

- ``put_many`` writes several blobs (``None`` deletes one) in as few round trips as the backend
  allows; a reader sees each blob either old or new, never torn. Callers that need an atomic
  commit write the blobs first and then the small blob that points to them.
- ``get`` returns ``None`` for a blob that is not there (never raises for that).
- ``names(prefix)`` lists the names that start with ``prefix``, sorted.
- ``delete_all`` removes every blob of the run (idempotent).
- A backend past its size bound raises ``StoreFull`` naming the bound and what to do; any other
  failure raises ``StoreError`` with the backend's location in the message. Transient API or
  network errors are retried inside the backend before either is raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

MAX_NAME_LENGTH = 120
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class StoreError(RuntimeError):
    """A store could not read or write (after its retries)."""


class StoreFull(StoreError):
    """A write would take the store past its size bound."""


def check_name(name: str) -> str:
    """``name`` if it is a valid blob name; else ValueError saying what is allowed."""
    if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.match(name) or any(p in (".", "..") for p in name.split("/")):
        raise ValueError(
            f"invalid store blob name {name!r}: use '/'-separated segments of letters, digits, '.', '_' and '-' "
            f"(not '.' or '..'), at most {MAX_NAME_LENGTH} characters"
        )
    return name


class RunStore(Protocol):
    """The blobs of one run (see the module's docstring for what every backend guarantees)."""

    @property
    def location(self) -> str:
        """Where the blobs are, for people: ``configmap ns/run-store-*``, ``s3://bucket/prefix/``, ``/dir``."""
        ...

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        """Write (bytes) or delete (None) each named blob."""
        ...

    async def get(self, name: str) -> bytes | None:
        """The blob's bytes, or None when there is no such blob."""
        ...

    async def names(self, prefix: str = "") -> list[str]:
        """The sorted names of the blobs that start with ``prefix``."""
        ...

    async def delete_all(self) -> None:
        """Remove every blob of the run."""
        ...


async def put(store: RunStore, name: str, data: bytes) -> None:
    """Write one blob."""
    await store.put_many({name: data})


def compresses(store: RunStore) -> bool:
    """Whether blobs written to ``store`` are worth compressing (its ``compress_blobs``; yes unless
    the backend says otherwise: API objects and network requests are where bytes cost)."""
    return bool(getattr(store, "compress_blobs", True))
