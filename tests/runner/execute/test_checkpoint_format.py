"""What a checkpoint looks like in its store (``execution.checkpoints.state``, format 2): small shared
values inside the meta blob, flat item segments, uncompressed blobs where the store says bytes are
cheap, the folders made durably ahead; and format 1 (blobs per key, pair segments) still read."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.execution.checkpoints import journal as journal_module
from flowlib_runner.execution.checkpoints.codec import compress, decode, encode, pack, unpack
from flowlib_runner.execution.checkpoints.journal import INLINE_BYTES, Checkpointer
from flowlib_runner.execution.checkpoints.state import META, load_checkpoint, read_meta
from flowlib_runner.store import DirectoryStore, RunStore
from flowlib_runner.store import directory as directory_module
from flowlib_runner.store.base import StoreError, compresses

from .stores import ForwardingStore

WAIT = 30.0
"""Seconds any wait in these tests gives up after."""


class CompressingStore(ForwardingStore):
    """A directory store that wants compression, as the configmap and s3 stores do (unlike the
    directory store itself, this class has no ``compress_blobs = False``)."""

    def __init__(self, root: Path) -> None:
        super().__init__(DirectoryStore(root, own_thread=True))


def checkpoint_of(store: RunStore, shared: dict[str, Any], items: list[tuple[int, Any]] | None = None) -> None:
    """One checkpoint of ``shared`` at a pool (with ``items`` finished), written through ``store``."""

    @asynccontextmanager
    async def opener() -> AsyncIterator[RunStore]:
        yield store

    async def main() -> None:
        checkpointer = Checkpointer(opener, location=store.location, definition_digest="d")
        checkpointer.start(shared)
        frame = checkpointer.enter(object(), (), "pool")
        journal = checkpointer.items(("pool",), list(range(10)))
        assert journal is not None
        for record in items or []:
            journal.record(record)
        journal.close()
        checkpointer.interrupted = True
        checkpointer.leave(frame)
        await checkpointer.finish(None)
        assert checkpointer.disabled is None

    asyncio.run(asyncio.wait_for(main(), WAIT))


def test_small_values_live_in_the_meta_blob_and_big_ones_in_blobs_of_their_own(tmp_path: Path) -> None:
    big = list(range(INLINE_BYTES))  # encodes to more than INLINE_BYTES
    shared: dict[str, Any] = {"count": 3, "big": big, "name": "x", "pair": (1, 2)}
    checkpoint_of(DirectoryStore(tmp_path), shared)
    meta = asyncio.run(read_meta(DirectoryStore(tmp_path)))
    assert meta is not None and meta["version"] == 2
    assert meta["shared"]["big"] is not None and set(meta["inline"]) == {"count", "name", "pair"}
    assert sorted(path.name for path in (tmp_path / "shared").iterdir()) == [meta["shared"]["big"].split("/")[1]]
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path), definition_digest="d"))
    assert checkpoint is not None
    assert checkpoint.shared == shared and list(checkpoint.shared) == list(shared)  # the order too
    assert type(checkpoint.shared["pair"]) is tuple
    assert set(checkpoint.blobs) == {"big"}


def test_a_directory_store_gets_raw_blobs_and_others_compressed_ones(tmp_path: Path) -> None:
    assert not compresses(DirectoryStore(tmp_path)) and compresses(CompressingStore(tmp_path))
    records = [(index, {"value": index}) for index in range(10)]
    checkpoint_of(DirectoryStore(tmp_path / "raw"), {"xs": list(range(5000))}, records)
    checkpoint_of(CompressingStore(tmp_path / "zipped"), {"xs": list(range(5000))}, records)
    for name, raw in (("raw", True), ("zipped", False)):
        blobs = [path for path in (tmp_path / name).rglob("*") if path.is_file()]
        assert {path.read_bytes()[:1] == b"\x80" for path in blobs} == {raw}, name  # pickle's first byte
        checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path / name), definition_digest="d"))
        assert checkpoint is not None and checkpoint.items == {"pool": dict(records)}
        assert checkpoint.shared == {"xs": list(range(5000))}


def test_item_segments_are_flat_and_read_back_as_pairs(tmp_path: Path) -> None:
    records = [(0, (1, 2)), (3, None), (7, [("nested", 1)])]
    checkpoint_of(DirectoryStore(tmp_path), {}, records)
    meta = asyncio.run(read_meta(DirectoryStore(tmp_path)))
    assert meta is not None
    (segment,) = meta["segments"]["pool"]
    assert decode((tmp_path / segment).read_bytes()) == [0, (1, 2), 3, None, 7, [("nested", 1)]]
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path), definition_digest="d"))
    assert checkpoint is not None and checkpoint.items == {"pool": dict(records)}


def test_a_format_1_checkpoint_is_still_read(tmp_path: Path) -> None:
    """Written by an older runner (a pod of a run started before the upgrade): each shared key in a
    blob of its own, segments of (index, result) pairs, everything compressed."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "items").mkdir()
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "shared" / "1").write_bytes(pack([1, 2, 3]))
    (tmp_path / "items" / "2").write_bytes(compress(encode([(0, "a"), (1, "b")]) + encode([(2, "c")])))
    meta = {
        "version": 1,
        "definition": "d",
        "attempt": 1,
        "position": [((), "pool", 4)],
        "shared": {"xs": "shared/1"},
        "digests": {"xs": b""},
        "segments": {"pool": ["items/2"]},
        "counter": 2,
        "nodes": None,
        "ended": None,
        "resumable": True,
    }
    (tmp_path / META).write_bytes(pack(meta))
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path), definition_digest="d"))
    assert checkpoint is not None
    assert checkpoint.shared == {"xs": [1, 2, 3]} and checkpoint.items == {"pool": {0: "a", 1: "b", 2: "c"}}
    assert checkpoint.position == [((), "pool", 4)] and checkpoint.blobs == {"xs": ("shared/1", b"")}


def test_unpack_reads_raw_and_compressed_blobs_alike() -> None:
    value = {"a": [1, (2, 3)], "b": b"\x80\x78"}
    assert unpack(pack(value)) == unpack(pack(value, compressed=False)) == value
    with pytest.raises(ValueError):
        unpack(b"\x78 not zlib")


def test_new_folders_are_made_durable_in_their_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob in a new folder survives a crash only if the folder's own entry does: the folder's
    parent is fsynced when the folder is made, by ``make_folders`` ahead or by the first write."""
    synced: list[str] = []
    real = directory_module._fsync_dir
    monkeypatch.setattr(directory_module, "_fsync_dir", lambda folder: (synced.append(folder), real(folder))[1])
    store = DirectoryStore(tmp_path / "run", own_thread=True)
    asyncio.run(store.make_folders(["checkpoint", "shared"]))
    assert {os.path.join(tmp_path, "run"), str(tmp_path)} <= set(synced)
    assert (tmp_path / "run" / "checkpoint").is_dir() and (tmp_path / "run" / "shared").is_dir()
    synced.clear()
    asyncio.run(store.make_folders(["checkpoint"]))
    assert synced == []  # there already: nothing to make durable
    asyncio.run(store.put_many({"items/n1/0": b"x"}))
    assert os.path.join(tmp_path, "run") in synced and os.path.join(tmp_path, "run", "items") in synced


def test_the_writer_makes_the_checkpoint_folders_as_it_starts(tmp_path: Path) -> None:
    checkpoint_of(DirectoryStore(tmp_path, own_thread=True), {"n": 1})
    assert {path.name for path in tmp_path.iterdir()} >= set(journal_module.FOLDERS)


def test_writes_added_after_the_end_are_written_before_written_returns(tmp_path: Path) -> None:
    """``end(phase, more=True)``: the last checkpoint goes out while the caller still chooses what
    else to write (the kept outputs); ``no_more_writes()`` lets the writer do it and stop."""
    root = tmp_path / "store"
    done: list[str] = []

    @asynccontextmanager
    async def opener() -> AsyncIterator[RunStore]:
        yield DirectoryStore(root, own_thread=True)

    async def last(store: RunStore) -> None:
        await store.put_many({"outputs/x": b"kept"})
        done.append("kept")

    async def main(tell: bool) -> None:
        checkpointer = Checkpointer(opener, location=str(root), definition_digest="d")
        checkpointer.start({"n": 1})
        frame = checkpointer.enter(object(), (), "a")
        frame.steps += 1
        checkpointer.moved(frame)
        checkpointer.leave(frame)
        checkpointer.end("Succeeded", more=True)
        await asyncio.sleep(0.05)  # the writer has written the checkpoint and waits for more
        assert done == []
        checkpointer.last_writes.append(last)
        if tell:
            checkpointer.no_more_writes()
        await checkpointer.written()  # without no_more_writes() too: whoever waits adds nothing more

    for tell in (True, False):
        done.clear()
        asyncio.run(asyncio.wait_for(main(tell), WAIT))
        assert done == ["kept"] and (root / "outputs" / "x").read_bytes() == b"kept"
        meta = asyncio.run(read_meta(DirectoryStore(root)))
        assert meta is not None and meta["ended"] == "Succeeded"


def test_folders_that_cannot_be_made_ahead_leave_it_to_the_first_write(tmp_path: Path) -> None:
    class Refusing(DirectoryStore):
        async def make_folders(self, folders: list[str]) -> None:
            raise StoreError(f"{self.location}: cannot make folders now")

    checkpoint_of(Refusing(tmp_path, own_thread=True), {"n": 1})
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path), definition_digest="d"))
    assert checkpoint is not None and checkpoint.shared == {"n": 1}
