"""What every run store backend answers alike (``flowlib_runner/store/base.py``), on each backend's
real server: a folder, the Kubernetes API simulator as the runner's identity, moto's S3 server."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from flowlib_runner.store import MAX_NAME_LENGTH, RunStore, put

from .conftest import Backend, with_store

BINARY = bytes(range(256)) * 4


def test_what_is_put_is_got_back_binary_and_empty_alike(backend: Backend) -> None:
    blobs = {"checkpoint/meta": BINARY, "empty": b"", "items/n3/00012": b"\x00\xff\n\r", "a.b_c-d": b"x"}

    async def body(store: RunStore) -> None:
        await store.put_many(blobs)
        for name, data in blobs.items():
            assert await store.get(name) == data
        again = backend.reopen(store)  # a new pod reads what the old one wrote
        for name, data in blobs.items():
            assert await again.get(name) == data
        assert await again.names() == sorted(blobs)

    with_store(backend, body)


def test_a_blob_is_overwritten_and_deleted_by_none(backend: Backend) -> None:
    async def body(store: RunStore) -> None:
        await put(store, "state", b"one")
        await put(store, "state", b"two, longer than one")
        assert await store.get("state") == b"two, longer than one"
        await put(store, "state", b"3")
        assert await store.get("state") == b"3"
        await store.put_many({"state": None, "never-written": None, "other": b"kept"})
        assert await store.get("state") is None
        assert await store.names() == ["other"]
        assert await backend.reopen(store).get("state") is None

    with_store(backend, body)


def test_names_start_with_the_prefix_and_are_sorted(backend: Backend) -> None:
    names = ["items/n1/00002", "items/n1/00001", "items/n10/00001", "log", "checkpoint/meta", "items/n2/00001"]
    random.Random(7).shuffle(names)

    async def body(store: RunStore) -> None:
        assert await store.names() == []
        await store.put_many({name: name.encode() for name in names})
        assert await store.names() == sorted(names)
        assert await store.names("items/") == sorted(n for n in names if n.startswith("items/"))
        assert await store.names("items/n1") == ["items/n1/00001", "items/n1/00002", "items/n10/00001"]
        assert await store.names("items/n1/") == ["items/n1/00001", "items/n1/00002"]
        assert await store.names("log") == ["log"]
        assert await store.names("nothing/") == []
        assert await store.names("items//") == []
        assert await store.names("../") == []

    with_store(backend, body)


def test_a_missing_blob_is_none(backend: Backend) -> None:
    async def body(store: RunStore) -> None:
        assert await store.get("checkpoint/meta") is None  # nothing written yet
        await put(store, "checkpoint/meta", b"m")
        assert await store.get("checkpoint/other") is None
        assert await store.get("checkpoint") is None  # a folder of blobs is not a blob
        assert await store.get("checkpoint/meta/deeper") is None

    with_store(backend, body)


def test_delete_all_removes_everything_and_may_be_repeated(backend: Backend) -> None:
    async def body(store: RunStore) -> None:
        await store.delete_all()  # nothing there yet
        await store.put_many({f"items/n/{i:05}": b"i" * i for i in range(30)} | {"meta": b"m"})
        await store.delete_all()
        assert await store.names() == []
        assert await store.get("meta") is None
        assert await backend.reopen(store).names() == []
        await store.delete_all()
        await put(store, "meta", b"after")  # the store is usable again
        assert await backend.reopen(store).get("meta") == b"after"

    with_store(backend, body)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/a",
        "a/",
        "a//b",
        "../x",
        "a/../b",
        "./a",
        ".",
        "..",
        "a b",
        "ä",
        "a\\b",
        "a:b",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_invalid_names_are_refused_before_anything_is_written(backend: Backend, name: str) -> None:
    async def body(store: RunStore) -> None:
        with pytest.raises(ValueError, match="invalid store blob name"):
            await store.put_many({"fine": b"1", name: b"2"})
        with pytest.raises(ValueError, match="invalid store blob name"):
            await store.get(name)
        assert await store.names() == []

    with_store(backend, body)


def test_the_longest_name_of_the_most_escaped_characters_fits(backend: Backend) -> None:
    names = ["_" * MAX_NAME_LENGTH, "/".join(["_"] * (MAX_NAME_LENGTH // 2)), "..x" + "_" * (MAX_NAME_LENGTH - 3)]

    async def body(store: RunStore) -> None:
        await store.put_many({name: name.encode() for name in names})
        for name in names:
            assert await backend.reopen(store).get(name) == name.encode()

    with_store(backend, body)


def test_many_blobs_in_one_put_many(backend: Backend) -> None:
    blobs = {f"items/node-{i % 7}/{i:05}": os.urandom(i % 300) for i in range(600)}

    async def body(store: RunStore) -> None:
        await store.put_many(blobs)
        assert await store.names() == sorted(blobs)
        again = backend.reopen(store)
        assert await again.names("items/node-3/") == sorted(n for n in blobs if n.startswith("items/node-3/"))
        for name in list(blobs)[::37]:
            assert await again.get(name) == blobs[name]
        await store.put_many(dict.fromkeys(list(blobs)[:400]))  # many deletes at once
        assert await store.names() == sorted(list(blobs)[400:])
        assert await backend.reopen(store).names() == sorted(list(blobs)[400:])

    with_store(backend, body)


def test_a_blob_of_900_kb_round_trips(backend: Backend) -> None:
    big = os.urandom(900_000)  # random: what compressed checkpoints look like

    async def body(store: RunStore) -> None:
        await store.put_many({"small": b"s", "outputs/big": big})
        assert await store.get("outputs/big") == big
        assert await backend.reopen(store).get("outputs/big") == big
        await put(store, "outputs/big", big[::-1])
        assert await backend.reopen(store).get("outputs/big") == big[::-1]

    with_store(backend, body)


def test_concurrent_writers_lose_nothing(backend: Backend) -> None:
    async def writer(store: RunStore, task: int) -> None:
        for batch in range(5):
            await store.put_many({f"t{task}/b{batch}/{i}": f"{task}.{batch}.{i}".encode() * 20 for i in range(6)})
            await store.put_many({f"t{task}/latest": f"{batch}".encode()})

    async def body(store: RunStore) -> None:
        await asyncio.gather(*(writer(store, task) for task in range(8)))
        expected = {f"t{t}/b{b}/{i}" for t in range(8) for b in range(5) for i in range(6)}
        expected |= {f"t{t}/latest" for t in range(8)}
        for reader in (store, backend.reopen(store)):
            assert set(await reader.names()) == expected
            assert await reader.get("t3/b4/5") == b"3.4.5" * 20
            assert [await reader.get(f"t{t}/latest") for t in range(8)] == [b"4"] * 8

    with_store(backend, body)


def test_the_location_says_where_the_blobs_are(backend: Backend) -> None:
    async def body(store: RunStore) -> None:
        prefix = {"directory": "/", "configmap": "configmap ", "s3": "s3://"}[backend.name]
        assert store.location.startswith(prefix)
        assert type(store).__name__.lower() == f"{backend.name}store"
        assert store.location in repr(store)

    with_store(backend, body)
