"""The checkpoint writer's economies (``execution.checkpoints.journal``): segments of one batch that
wait for the writer become one blob, item segments on a timer, a merged blob read back whole, and
runs that resume from such checkpoints redo nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.checkpoints.codec import decode_sequence, encode
from flowlib_runner.execution.checkpoints.journal import Checkpointer
from flowlib_runner.execution.checkpoints.setup import prepare
from flowlib_runner.execution.checkpoints.state import load_checkpoint
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.store import DirectoryStore, RunStore

from flowlib_api.runstatus import RunStatus

from .definitions import load
from .stores import ForwardingStore

WAIT = 30.0
"""Seconds any wait in these tests gives up after."""

POOL = """\
nodes:
  pool:
    type: worker_pool
    batch: {items: xs, maxParallel: 4}
    run: {python: "item * 10"}
"""


class HeldStore(ForwardingStore):
    """A directory store whose writes wait until ``release()``: a writer that falls behind."""

    def __init__(self, root: Path) -> None:
        super().__init__(DirectoryStore(root, own_thread=True))
        self.gate = threading.Event()
        self.writes: list[list[str]] = []

    def release(self) -> None:
        self.gate.set()

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        if not self.gate.wait(WAIT):
            raise TimeoutError("the test never released the store")
        self.writes.append(sorted(blobs))
        await self.inner.put_many(blobs)


def test_a_sequence_of_encoded_values_reads_back_in_order() -> None:
    data = encode([(0, "a")]) + encode([(1, ("b",))]) + encode([])
    assert decode_sequence(data) == [[(0, "a")], [(1, ("b",))], []]
    assert decode_sequence(encode({"one": 1})) == [{"one": 1}]
    with pytest.raises(ValueError):
        decode_sequence(encode([1]) + b"not a pickle")


def test_segments_waiting_for_the_writer_are_written_as_one_blob(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "store")

    @asynccontextmanager
    async def opener() -> AsyncIterator[RunStore]:
        yield store

    async def main() -> None:
        checkpointer = Checkpointer(opener, location=store.location, definition_digest="d", items_every=10)
        shared: dict[str, object] = {"xs": list(range(95))}
        checkpointer.start(shared)
        frame = checkpointer.enter(object(), (), "pool")
        journal = checkpointer.items(("pool",), shared["xs"])
        assert journal is not None
        for index in range(95):
            journal.record((index, index * 10))
            if index % 10 == 9:
                journal.flush()  # what the timer does once items_every items are in
        journal.close()  # ten segments, all recorded while the writer is held
        store.release()
        checkpointer.leave(frame)
        await checkpointer.finish("Failed")
        assert checkpointer.disabled is None

    asyncio.run(asyncio.wait_for(main(), WAIT))
    item_blobs = [name for write in store.writes for name in write if name.startswith("items/")]
    assert len(item_blobs) == 1, store.writes
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(tmp_path / "store"), definition_digest=None))
    assert checkpoint is not None
    assert checkpoint.items == {"pool": {index: index * 10 for index in range(95)}}


def test_a_slow_batch_records_its_items_on_the_timer(tmp_path: Path) -> None:
    """Two items finish, then the batch waits: the timer makes a segment of them (items_every is far)."""
    root = tmp_path / "store"

    @asynccontextmanager
    async def opener() -> AsyncIterator[RunStore]:
        yield DirectoryStore(root, own_thread=True)

    async def main() -> None:
        checkpointer = Checkpointer(
            opener, location=str(root), definition_digest="d", items_every=1000, items_seconds=0.05
        )
        shared: dict[str, object] = {"xs": [1, 2, 3]}
        checkpointer.start(shared)
        frame = checkpointer.enter(object(), (), "pool")
        journal = checkpointer.items(("pool",), shared["xs"])
        assert journal is not None
        journal.record((0, "a"))
        journal.record((1, "b"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not checkpointer._segments.get("pool"):  # recorded by the timer, nothing else
            assert loop.time() < deadline, "the timer never recorded the finished items"
            await asyncio.sleep(0.01)
        checkpointer.interrupted = True
        checkpointer.leave(frame)
        await checkpointer.finish(None)  # the pod stopped: the checkpoint stays open

    asyncio.run(asyncio.wait_for(main(), WAIT))
    checkpoint = asyncio.run(load_checkpoint(DirectoryStore(root), definition_digest=None))
    assert checkpoint is not None
    assert checkpoint.items == {"pool": {0: "a", 1: "b"}}


def test_a_retry_reuses_every_item_of_a_merged_checkpoint(tmp_path: Path) -> None:
    """A pool whose last item fails, checkpointed by a writer that merged segments, then retried
    from that store: only the failed item runs again."""
    xs = list(range(500))
    fixed = tmp_path / "fixed"  # the last item fails until this file exists
    code = f"item * 10 if item != 499 or __import__('os').path.exists({str(fixed)!r}) else 1 / 0"
    definition = load(POOL.replace('"item * 10"', f'"{code}"'))
    first, second = tmp_path / "first", tmp_path / "second"

    async def run(definition: FlowDefinition, root: Path, source: Path | None) -> RunStatus:
        @asynccontextmanager
        async def opener() -> AsyncIterator[RunStore]:
            yield DirectoryStore(root, own_thread=True)

        prepared = await prepare(
            DirectoryStore(root),
            definition,
            opener=opener,
            source=None if source is None else DirectoryStore(source),
            items_every=7,
        )
        return await execute_async(
            definition, input={"xs": xs}, checkpointer=prepared.checkpointer, resumed=prepared.resumed
        )

    status = asyncio.run(asyncio.wait_for(run(definition, first, None), WAIT))
    assert status.phase == "Failed"
    fixed.touch()
    retried = asyncio.run(asyncio.wait_for(run(definition, second, first), WAIT))
    assert retried.phase == "Succeeded", retried.message
    assert retried.items_reused == 499
    assert retried.output["pool"] == [x * 10 for x in xs]
