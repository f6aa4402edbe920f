"""The directory store's own promises: files along the names, atomic writes, what is not ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowlib_runner.store import DirectoryStore, StoreError, put

from .conftest import run


def test_blobs_are_files_along_their_names(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "run")

    async def body() -> None:
        await store.put_many({"checkpoint/meta": b"m", "items/n3/00012": b"i"})
        assert (tmp_path / "run/checkpoint/meta").read_bytes() == b"m"
        assert (tmp_path / "run/items/n3/00012").read_bytes() == b"i"
        assert sorted(p.name for p in (tmp_path / "run").rglob("*") if "~" in p.name) == []  # no temporaries left
        await put(store, "items/n3/00012", b"i2")
        assert (tmp_path / "run/items/n3/00012").read_bytes() == b"i2"

    run(body())


def test_a_deleted_blobs_empty_folders_go_so_the_name_can_be_a_blob(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)

    async def body() -> None:
        await put(store, "a/b/c", b"1")
        with pytest.raises(StoreError, match="must not be the folder of other blob names"):
            await put(store, "a/b", b"2")
        with pytest.raises(StoreError, match="must not be the folder of other blob names"):
            await put(store, "a/b/c/d", b"3")
        await store.put_many({"a/b/c": None})
        assert not (tmp_path / "a").exists()
        await put(store, "a/b", b"2")
        assert await store.get("a/b") == b"2"

    run(body())


def test_what_is_not_a_blob_is_neither_listed_nor_deleted(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    (tmp_path / "lost+found").mkdir()
    (tmp_path / "lost+found/x").write_bytes(b"keep")
    (tmp_path / "notes here.txt").write_bytes(b"keep")
    (tmp_path / ".meta~half-written").write_bytes(b"temp")  # a write cut short

    async def body() -> None:
        await put(store, "meta", b"m")
        assert await store.names() == ["meta"]
        await store.delete_all()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["lost+found", "notes here.txt"]

    run(body())


def test_a_store_whose_folder_is_missing_is_empty(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "not" / "yet")

    async def body() -> None:
        assert await store.names() == []
        assert await store.get("x") is None
        await store.delete_all()
        await put(store, "x", b"1")
        assert (tmp_path / "not/yet/x").read_bytes() == b"1"
        await store.delete_all()
        assert not (tmp_path / "not/yet").exists()

    run(body())


def test_an_unwritable_folder_is_a_store_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = DirectoryStore(tmp_path / "file" / "run")  # its parent is a file

    async def body() -> None:
        with pytest.raises(StoreError, match=str(tmp_path / "file" / "run")):
            await put(store, "x/y", b"1")

    run(body())
