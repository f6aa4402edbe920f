"""Large values kept whole (``store/parts.py``: compressed, split into parts) on every backend:
what is kept is read back exactly, a shorter version replaces a longer one, and a value missing a
part is an error, never silently short."""

from __future__ import annotations

import os
import zlib

import pytest
from flowlib_runner.store import RunStore, StoreError, StoreFull
from flowlib_runner.store.parts import keep, part_bytes, read, split

from flowlib_api import storespec

from .conftest import Backend, with_store


def test_split_cuts_into_bounded_pieces() -> None:
    assert split(b"", 4) == [b""]
    assert split(b"abcdefghij", 4) == [b"abcd", b"efgh", b"ij"]
    assert b"".join(split(os.urandom(1000), 7)) != b""


def test_a_kept_value_is_read_back_whole(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small ConfigMaps here, so a 40 KB value needs several parts (and several ConfigMaps) on that backend.
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNK_BYTES", 16_000)
    value = os.urandom(20_000).hex().encode()  # 40 KB of hex: compresses to about half

    async def body(store: RunStore) -> None:
        kept = await keep(store, "outputs/report", value)
        assert (kept.folder, kept.size) == ("outputs/report", len(value))
        assert kept.stored < len(value)
        if backend.name == "configmap":
            assert kept.parts == -(-kept.stored // part_bytes(store)) > 1
        else:
            assert kept.parts == 1
        assert await read(store, "outputs/report", parts=kept.parts) == value
        again = backend.reopen(store)  # flowctl, reading what the runner wrote
        assert await read(again, "outputs/report") == value
        assert await read(again, "outputs/nothing") is None
        shorter = b"short"
        assert (await keep(store, "outputs/report", shorter)).parts == 1
        assert await store.names("outputs/report/") == ["outputs/report/0"]  # the older parts are gone
        assert await read(backend.reopen(store), "outputs/report", parts=1) == shorter

    with_store(backend, body)


def test_a_value_missing_a_part_is_an_error(backend: Backend) -> None:
    async def body(store: RunStore) -> None:
        data = zlib.compress(os.urandom(3000))
        pieces = split(data, 1000)
        await store.put_many({f"logs/attempt-1/{i}": piece for i, piece in enumerate(pieces)})
        assert await read(store, "logs/attempt-1") is not None
        await store.put_many({"logs/attempt-1/1": None})
        with pytest.raises(StoreError, match="incomplete"):
            await read(store, "logs/attempt-1")
        await store.put_many({f"logs/attempt-2/{i}": piece for i, piece in enumerate(pieces[:-1])})
        with pytest.raises(StoreError, match="cut short"):
            await read(store, "logs/attempt-2")
        with pytest.raises(StoreError, match="incomplete"):
            await read(store, "logs/attempt-2", parts=len(pieces))

    with_store(backend, body)


def test_a_value_past_the_configmap_bound_is_refused_before_anything_is_written(
    configmaps: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storespec, "CONFIGMAP_CHUNK_BYTES", 16_000)  # 8 ConfigMaps: 128 KB in all

    async def body(store: RunStore) -> None:
        fits = os.urandom(100_000)  # random bytes do not compress: 25 parts of 3 KB, in 7 of the 8
        assert (await keep(store, "outputs/fits", fits)).parts > 8
        assert await read(configmaps.reopen(store), "outputs/fits") == fits
        with pytest.raises(StoreFull, match="is full"):
            await keep(store, "outputs/too-big", os.urandom(60_000))
        assert await store.names("outputs/too-big") == []

    with_store(configmaps, body)
