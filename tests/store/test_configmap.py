"""The configmap store's own promises, on the simulator: chunks owned by the FlowRun and collected
with it, the runner's Role is enough (no list), one patch per chunk, the bound, and blobs that move."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import pytest
from flowlib_runner.kube import ApiError, KubeClient
from flowlib_runner.store import ConfigMapStore, RunStore, StoreError, StoreFull, put
from flowlib_runner.store.chunks import ENTRY_OVERHEAD, encode_key

from flowlib_api import storespec
from flowlib_api.meta import CONFIGMAPS, FLOWRUNS, LABEL_COMPONENT, LABEL_FLOWRUN

from .conftest import WAIT, ConfigMapBackend, with_store


def _admin(backend: ConfigMapBackend) -> KubeClient:
    assert backend.admin is not None
    return backend.admin


def _store(store: RunStore) -> ConfigMapStore:
    assert isinstance(store, ConfigMapStore)
    return store


async def _chunk_blobs(backend: ConfigMapBackend, store: ConfigMapStore) -> list[set[str] | None]:
    """What each chunk holds, as the API server has it (None: the chunk does not exist)."""
    found = []
    for name in storespec.configmap_chunk_names(store.root):
        obj = await backend.kube.chunk(_admin(backend), name)
        found.append(None if obj is None else set(obj.get("binaryData") or {}))
    return found


def test_chunks_are_owned_by_the_flowrun_labelled_and_collected_with_it(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        run = configmaps.last_run
        assert run is not None
        await put(cm, "meta", b"m")
        obj = await configmaps.kube.chunk(_admin(configmaps), f"{cm.root}-0")
        assert obj is not None
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "flowlib.dev/v1alpha1",
                "kind": "FlowRun",
                "name": run["metadata"]["name"],
                "uid": run["metadata"]["uid"],
                "controller": False,
            }
        ]
        labels = obj["metadata"]["labels"]
        assert labels[LABEL_FLOWRUN] == run["metadata"]["name"]
        assert labels[LABEL_COMPONENT] == "run-store"
        assert obj["binaryData"] == {"meta": base64.b64encode(b"m").decode()}

        await _admin(configmaps).delete(FLOWRUNS, run["metadata"]["name"], configmaps.kube.namespace)
        deadline = time.monotonic() + WAIT
        while await configmaps.kube.chunk(_admin(configmaps), f"{cm.root}-0") is not None:
            assert time.monotonic() < deadline, "the store's ConfigMap outlived its FlowRun"
            await asyncio.sleep(0.1)

    with_store(configmaps, body)


def test_the_runners_role_is_enough_and_nothing_is_listed(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        with pytest.raises(ApiError) as refused:  # the identity really is restricted
            await cm.client.list(CONFIGMAPS, cm.namespace)
        assert refused.value.forbidden
        with configmaps.kube.sim.recording() as requests:
            await cm.put_many({"a": b"1", "b/c": b"2"})
            await cm.get("a")
            await cm.names()
            await cm.put_many({"a": None, "b/c": b"3"})
            await configmaps.reopen(cm).names()
            await cm.delete_all()
            await cm.delete_all()
            await put(cm, "again", b"4")
        collection = f"/api/v1/namespaces/{cm.namespace}/configmaps"
        chunks = storespec.configmap_chunk_names(cm.root)
        ours = [(method, path.split("?")[0]) for method, path in requests if path.startswith(collection)]
        assert ours, "the store made no request"
        for method, path in ours:
            if path == collection:
                assert method == "POST", f"{method} {path}: only creates address the collection"
            else:
                assert path.rsplit("/", 1)[1] in chunks, f"{method} {path} is not a chunk"

    with_store(configmaps, body)


def test_one_put_many_is_one_request_per_chunk(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        blobs = {f"items/{i:05}": os.urandom(200) for i in range(400)}
        await cm.names()  # the chunks are found (one GET each) before we count
        with configmaps.kube.sim.recording() as requests:
            await cm.put_many(blobs)
        assert [method for method, _ in requests] == ["POST"]  # one chunk, created with all 400 blobs
        with configmaps.kube.sim.recording() as requests:
            await cm.put_many({name: None for name in list(blobs)[:100]} | {"extra": b"e"})
        assert [method for method, _ in requests] == ["PATCH"]
        assert await _chunk_blobs(configmaps, cm) == [{encode_key(n) for n in list(blobs)[100:]} | {"extra"}] + [
            None
        ] * (storespec.CONFIGMAP_CHUNKS - 1)

    with_store(configmaps, body)


def test_a_900_kb_blob_takes_a_chunk_of_its_own(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        first, second = os.urandom(900_000), os.urandom(900_000)
        await cm.put_many({"meta": b"m", "big/1": first})
        await cm.put_many({"big/2": second, "log": b"l"})
        held = await _chunk_blobs(configmaps, cm)
        assert held[:3] == [{"meta", "big__1", "log"}, {"big__2"}, None]
        again = configmaps.reopen(cm)
        assert (await again.get("big/1"), await again.get("big/2")) == (first, second)

    with_store(configmaps, body)


def test_past_the_bound_writes_raise_store_full_and_change_nothing(
    configmaps: ConfigMapBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNKS", 2)
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNK_BYTES", 4096)
    blob = os.urandom(3000)

    async def body(store: RunStore) -> None:
        cm = _store(store)
        await cm.put_many({"a": blob, "b": blob})  # one chunk each
        with pytest.raises(StoreFull) as full:
            await cm.put_many({"small": b"fits", "c": blob})
        message = str(full.value)
        assert cm.location in message
        assert "2 ConfigMaps of 4 KiB" in message and "s3 or pvc" in message and "spec.store" in message
        again = configmaps.reopen(cm)
        assert await again.names() == ["a", "b"]  # the batch was refused whole
        assert await again.get("a") == blob
        with pytest.raises(StoreFull, match="more than one store ConfigMap holds"):
            await put(cm, "huge", os.urandom(5000))
        await cm.put_many({"a": None, "c": blob})  # deleting makes room
        assert await configmaps.reopen(cm).names() == ["b", "c"]

    with_store(configmaps, body)


def test_the_real_bound_is_about_8_mib() -> None:
    from flowlib_runner.store.chunks import Chunk, plan

    chunks = [Chunk(name, exists=True, blobs={"x": b"\0" * 900_000}) for name in storespec.configmap_chunk_names("r")]
    with pytest.raises(StoreFull, match=r"about 7\.8 MiB \(8 ConfigMaps of 1000 KiB\)"):
        plan(chunks, [("y", b"\0" * 200_000)], location="configmap ns/r-*")


def test_a_blob_that_outgrows_its_chunk_moves_and_is_never_lost(
    configmaps: ConfigMapBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNKS", 3)
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNK_BYTES", 4096)

    async def body(store: RunStore) -> None:
        cm = _store(store)
        await cm.put_many({"grows": b"g" * 1000, "stays": b"s" * 2500})
        assert (await _chunk_blobs(configmaps, cm))[:2] == [{"grows", "stays"}, None]
        await put(cm, "grows", b"G" * 2000)  # no longer fits beside "stays"
        assert await _chunk_blobs(configmaps, cm) == [{"stays"}, {"grows"}, None]
        assert await configmaps.reopen(cm).get("grows") == b"G" * 2000
        await put(cm, "stays", b"S")  # room again in chunk 0; "grows" stays where it is
        await put(cm, "grows", b"g")
        assert await _chunk_blobs(configmaps, cm) == [{"stays"}, {"grows"}, None]

    with_store(configmaps, body)


def test_an_interrupted_move_answers_with_the_higher_copy_and_heals(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        await cm.put_many({"x": b"new", "y": b"y"})
        # what a move cut short leaves: the blob in two chunks (here: a stale copy put into chunk 1,
        # owned by the run as the store's own chunks are)
        run = configmaps.last_run
        assert run is not None
        owner = {"apiVersion": run["apiVersion"], "kind": run["kind"], "name": run["metadata"]["name"]}
        owner["uid"] = run["metadata"]["uid"]
        metadata = {"name": f"{cm.root}-1", "ownerReferences": [owner]}
        stale = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        stale["binaryData"] = {"x": base64.b64encode(b"old").decode(), "not_ours": "AA=="}
        await _admin(configmaps).create(CONFIGMAPS, stale, cm.namespace)
        again = configmaps.reopen(cm)
        assert await again.get("x") == b"old"  # the higher copy wins, every time
        assert await again.names() == ["x", "y"]  # and is one name; keys not ours are not blobs
        await put(again, "x", b"newer")
        assert await configmaps.reopen(cm).get("x") == b"newer"
        await again.put_many({"x": None})
        assert await configmaps.reopen(cm).get("x") is None  # no copy resurfaces
        held = await _chunk_blobs(configmaps, cm)
        assert held[:2] == [{"y"}, {"not_ours"}]

    with_store(configmaps, body)


def test_room_counts_keys_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib_runner.store.chunks import Chunk, blob_cost, plan

    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNK_BYTES", 16_000)
    chunk = Chunk("r-0", exists=True)
    empty_blobs = [(f"k{i:07}", b"") for i in range(1500)]  # nothing but keys: still room taken
    assert blob_cost("k0000000", b"") == len("k0000000") + ENTRY_OVERHEAD
    steps = plan([chunk, Chunk("r-1")], empty_blobs, location="configmap ns/r-*")
    assert set(steps.first) == {0, 1}


def test_a_write_the_api_keeps_refusing_is_a_store_error_and_the_store_recovers(configmaps: ConfigMapBackend) -> None:
    async def body(store: RunStore) -> None:
        cm = _store(store)
        await put(cm, "a", b"1")
        configmaps.kube.sim.faults.fail("PATCH", f"/configmaps/{cm.root}-0$", 503, times=10)
        try:
            with pytest.raises(StoreError, match=rf"^configmap {cm.namespace}/{cm.root}-\*: cannot write ConfigMap"):
                await put(cm, "a", b"2")
        finally:
            configmaps.kube.sim.faults.clear()
        assert await cm.get("a") == b"1"  # read again from the server: the write did not happen
        await put(cm, "a", b"3")
        assert await configmaps.reopen(cm).get("a") == b"3"

    with_store(configmaps, body)


def test_a_planted_chunk_is_replaced_on_the_first_attempt_and_ignored_after(configmaps: ConfigMapBackend) -> None:
    """Another run may create ConfigMaps of any name, so it may plant one named like a future run's
    chunk: a first attempt (``fresh``) replaces what it finds, a later one reads only its own."""

    async def body(store: RunStore) -> None:
        cm = _store(store)
        admin = _admin(configmaps)
        ns = configmaps.kube.namespace
        planted = {"apiVersion": "v1", "kind": "ConfigMap", "binaryData": {encode_key("meta"): "cGxhbnRlZA=="}}
        for index in (0, 3):
            body = {**planted, "metadata": {"name": f"{cm.root}-{index}", "namespace": ns}}
            await admin.create(CONFIGMAPS, body, ns)
        first = ConfigMapStore(cm.client, cm.namespace, cm.root, cm.owner, fresh=True)
        await put(first, "meta", b"ours")
        chunk = await configmaps.kube.chunk(admin, f"{cm.root}-0")
        assert chunk is not None
        assert chunk["binaryData"] == {encode_key("meta"): base64.b64encode(b"ours").decode()}
        assert [ref["uid"] for ref in chunk["metadata"]["ownerReferences"]] == [cm.owner["metadata"]["uid"]]  # type: ignore[index]
        later = ConfigMapStore(cm.client, cm.namespace, cm.root, cm.owner)
        assert await later.get("meta") == b"ours"  # not the planted chunk 3's copy
        assert await later.names() == ["meta"]
        await put(later, "more", os.urandom(64))
        assert await _chunk_blobs(configmaps, later) == [
            {encode_key("meta"), encode_key("more")},
            None,
            None,
            {encode_key("meta")},  # left as planted: never read, never written to
            None,
            None,
            None,
            None,
        ]

    with_store(configmaps, body)
