"""Run stores for tests that change one thing about a directory store (how it writes, whether it
wants compression) and forward the rest to it."""

from __future__ import annotations

from collections.abc import Mapping

from flowlib_runner.store import DirectoryStore


class ForwardingStore:
    """A run store that forwards every call to ``inner``; subclasses override what they change."""

    def __init__(self, inner: DirectoryStore) -> None:
        self.inner = inner

    @property
    def location(self) -> str:
        return self.inner.location

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        await self.inner.put_many(blobs)

    async def get(self, name: str) -> bytes | None:
        return await self.inner.get(name)

    async def names(self, prefix: str = "") -> list[str]:
        return await self.inner.names(prefix)

    async def delete_all(self) -> None:
        await self.inner.delete_all()
