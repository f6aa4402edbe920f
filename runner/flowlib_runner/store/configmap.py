"""The configmap store: a run's blobs as ``binaryData`` entries of a few ConfigMaps it owns.

Nothing to set up, and nothing left behind: the ConfigMaps (``configmap_chunk_names(root)``,
``<run>-store-0`` ...) carry an owner reference to the FlowRun, so Kubernetes deletes them with it.
The price is a bound of about ``CONFIGMAP_CHUNKS`` MiB; past it writes raise ``StoreFull``.

What the runner may do decides how this works. Its Role may ``create`` ConfigMaps (RBAC cannot
restrict a create by name) and ``get``/``patch``/``update``/``delete`` exactly the chunk names, and
nothing else: no ``list``. So the store finds its chunks by GETting each name (a 404 means the chunk
is not there yet) once, on first use, and from then on keeps what it learnt: each chunk's content,
refreshed from the answer to every patch (and read again after a write that failed or was
cancelled half-way). That makes ``get`` and ``names`` free of API calls, and assumes the store is
the run's only writer while it is open (a run has one runner pod at a time; a
new pod, or ``flowctl``, opens a new store and reads the chunks afresh).

A ``put_many`` sends one merge patch per chunk it changes (``{"binaryData": {key: value|null}}``;
a chunk that does not exist yet is created with its first blobs); only a blob that grows out of its
chunk costs a second patch of its old chunk (see ``chunks.py`` for where blobs go and why that order
is safe). Calls are serialised per store, so concurrent writers never fill the same room twice. The
client retries 429/5xx and dropped connections itself; what is left becomes a ``StoreError``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from flowlib_api import storespec
from flowlib_api.meta import CONFIGMAPS, GROUP_VERSION, KIND_FLOWRUN, LABEL_COMPONENT, LABEL_FLOWRUN
from flowlib_runner.kube.client import ApiError, KubeClient
from flowlib_runner.store.base import StoreError, check_name
from flowlib_runner.store.chunks import Changes, Chunk, current, encode_key, plan

COMPONENT = "run-store"
"""``app.kubernetes.io/component`` of the store's ConfigMaps."""


class ConfigMapStore:
    """The blobs of one run in the ConfigMaps ``<root>-<i>`` of ``namespace``.

    ``owner`` is the FlowRun (the object as read from the API, or a reference with ``apiVersion``,
    ``kind``, ``name`` and ``uid``); without it the ConfigMaps are created unowned and unlabelled
    by run (for tests and tools that only read). ``fresh`` takes the chunks not to exist yet (a
    run's first attempt), saving the reads.
    """

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        root: str,
        owner: Mapping[str, Any] | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.root = root
        self.owner = dict(owner) if owner is not None else None
        # fresh: a run's first attempt, whose chunks cannot be its own yet, skips reading them. One
        # that exists anyway was made by someone else (another run may create ConfigMaps of any
        # name: ``identity``): its create fails, and it is replaced whole, never trusted or merged.
        self.fresh = fresh
        self._chunks: list[Chunk] | None = (
            [Chunk(name) for name in storespec.configmap_chunk_names(root)] if fresh else None
        )
        self._load_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    @property
    def location(self) -> str:
        return f"configmap {self.namespace}/{self.root}-*"

    def __repr__(self) -> str:
        return f"ConfigMapStore({self.location!r})"

    # -- the protocol ----------------------------------------------------------------------------

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        items = [(check_name(name), data) for name, data in blobs.items()]
        if not items:
            return
        async with self._write_lock:
            chunks = await self._loaded()
            steps = plan(chunks, items, location=self.location)
            try:
                for index in sorted(steps.first):
                    await self._apply(chunks[index], steps.first[index])
                for index in sorted(steps.after):
                    await self._apply(chunks[index], steps.after[index])
            except BaseException:
                self._chunks = None  # a patch may have landed unseen (error, cancellation): read them again
                raise

    async def get(self, name: str) -> bytes | None:
        check_name(name)
        return current(await self._loaded(), name)

    async def names(self, prefix: str = "") -> list[str]:
        found = {name for chunk in await self._loaded() for name in chunk.blobs if name.startswith(prefix)}
        return sorted(found)

    async def delete_all(self) -> None:
        async with self._write_lock:
            names = storespec.configmap_chunk_names(self.root)
            self._chunks = None  # until every delete is known to have happened
            async with self._api("delete the store's ConfigMaps"):
                await asyncio.gather(*(self.client.delete(CONFIGMAPS, name, self.namespace) for name in names))
            self._chunks = [Chunk(name) for name in names]

    # -- chunks ----------------------------------------------------------------------------------

    async def _loaded(self) -> list[Chunk]:
        """The chunks, read from the API on first use (one GET per name, all at once)."""
        if self._chunks is None:
            async with self._load_lock:
                if self._chunks is None:
                    chunks = [Chunk(name) for name in storespec.configmap_chunk_names(self.root)]
                    async with self._api("read the store's ConfigMaps"):
                        found = await asyncio.gather(
                            *(self.client.get_or_none(CONFIGMAPS, chunk.name, self.namespace) for chunk in chunks)
                        )
                    for chunk, obj in zip(chunks, found, strict=True):
                        chunk.load(obj)
                        if obj is not None and not self._trusted(obj):
                            chunk.blobs, chunk.foreign = {}, storespec.CONFIGMAP_CHUNK_BYTES  # never read or used
                    self._chunks = chunks
        return self._chunks

    def _trusted(self, obj: Mapping[str, Any]) -> bool:
        """Whether chunk ``obj`` is the owner's: one made before the FlowRun existed (a name planted
        by another run, which cannot know the new run's uid) is not, and is neither read nor used."""
        uid = (self.owner or {}).get("metadata", {}).get("uid") or (self.owner or {}).get("uid")
        if uid is None:
            return True
        return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])

    async def _apply(self, chunk: Chunk, changes: Changes) -> None:
        """One patch of ``chunk`` (a create when it does not exist yet)."""
        values = {
            encode_key(name): None if data is None else base64.b64encode(data).decode()
            for name, data in changes.items()
        }
        written = {key: value for key, value in values.items() if value is not None}
        async with self._api(f"write ConfigMap {chunk.name}"):
            if not chunk.exists:
                created = await self._create(chunk.name, written)
                if created is not None:
                    chunk.load(created)
                    return
            answer: dict[str, Any] | None
            try:
                answer = await self.client.patch(CONFIGMAPS, chunk.name, {"binaryData": values}, self.namespace)
            except ApiError as error:
                if not error.not_found:
                    raise
                # deleted behind our back (delete_all of another process): start the chunk again
                answer = await self._create(chunk.name, written)
                if answer is None:
                    raise
            chunk.load(answer)

    async def _create(self, name: str, values: dict[str, str]) -> dict[str, Any] | None:
        """Create chunk ``name`` holding ``values``; None when it exists already (then patch it)."""
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": {LABEL_COMPONENT: COMPONENT}}
        if self.owner is not None:
            reference = owner_reference(self.owner)
            metadata["ownerReferences"] = [reference]
            metadata["labels"][LABEL_FLOWRUN] = label_value(reference["name"])
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "binaryData": values}
        try:
            return await self.client.create(CONFIGMAPS, body, self.namespace)
        except ApiError as error:
            if not error.already_exists:
                raise
            if self.fresh:
                return await self.client.replace(CONFIGMAPS, name, body, self.namespace)
            return None

    @asynccontextmanager
    async def _api(self, what: str) -> AsyncIterator[None]:
        """Turn what the client could not get done (after its retries) into a ``StoreError``."""
        try:
            yield
        except ApiError as error:
            raise StoreError(f"{self.location}: cannot {what}: {error}") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise StoreError(f"{self.location}: cannot {what}: {type(error).__name__}: {error}") from error


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The owner reference to a FlowRun (an object or a reference): not the controller, and not
    blocking its deletion (which would need ``update`` of the FlowRun's finalizers)."""
    meta = owner.get("metadata", owner)
    return {
        "apiVersion": owner.get("apiVersion", GROUP_VERSION),
        "kind": owner.get("kind", KIND_FLOWRUN),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
    }


def label_value(value: str) -> str:
    """A label value for ``value``: itself up to 63 characters, else shortened with a digest.

    The same as the operator's ``naming.label_value`` (which a runner cannot import), so that a
    ``flowlib.dev/flowrun`` selector finds the store's ConfigMaps beside the run's Job and pods.
    """
    if len(value) <= 63:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: 63 - len(digest) - 1].rstrip('-.')}-{digest}"
