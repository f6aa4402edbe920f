"""``Checkpointer``: the run's journal (``definition.factories.durable.Journal``), writing checkpoints
to a run store off the hot path.

When a checkpoint is taken. After every visit of the main line the walk reports a boundary; the
checkpointer then takes a checkpoint if that keeps the time spent taking them under
``BUDGET`` (2%) of the run's time so far, judged by what the last one cost. A visit that took
longer than about fifty checkpoints (a millisecond or two) is therefore always followed by one,
while a loop of trivial nodes is checkpointed every hundred steps or so instead of every step. A
batch always checkpoints when it asks for its item journal (unless the position is recorded
already), so its items belong to the recorded position.

Taking a checkpoint is the only part done on the run's thread, because only between two visits
are the shared store and the position consistent: each top-level shared key is encoded
(``codec``); a small one (``INLINE_BYTES``, up to ``INLINE_TOTAL`` in all) goes into the meta blob
itself, and of the others only keys whose bytes changed since the last checkpoint become new blobs.
So a run whose shared store is a few counters and names writes one blob per checkpoint, not one
per key and the meta: on an object store that is one request, on a disk one file and its fsync.
Compression and the writes are done by a writer thread with an event loop and a store of its own
(``opener`` makes it there): user code that blocks the run's event loop (a sync inline node) must
not hold back the checkpoint taken before it, or a kill during that node would lose it. At most one
write every ``write_interval`` seconds (never less than ``MIN_WRITE_INTERVAL``), coalescing
whatever arrived meanwhile. Each write stores
new blobs first, then the small ``checkpoint/meta`` blob that points to them, then deletes the
blobs no meta points to any more, so a reader always finds a whole checkpoint.

The writer thread waits for work on a plain ``threading.Event`` and runs its loop only to write
(``run_until_complete`` per write), so waking it is one GIL hand-off, not a worker-thread hop and
back: while the run's thread is busy every hand-off can cost a whole GIL switch interval (5 ms).
For the same reason it does as few of them as it can: segments of one batch that are waiting when
a write begins become one blob (a sequence of encoded segments, ``codec.decode_sequence``).

Inside a batch, finished item results are buffered and recorded as a segment every
``items_every`` items or ``items_seconds`` seconds, whichever comes first (looked at every
``ITEM_TICK``, so a segment may hold a few more than ``items_every``); a segment holds only the
items finished since the previous one, so a 100,000-item pool writes each result once. A segment is
encoded flat (``[index, result, index, result, ...]``): pickle memoises every tuple, which made
encoding ``(index, result)`` pairs five times slower than the results themselves.

The end of a run is in two steps so that the last write overlaps the run's own finishing work:
``end(phase)`` takes the last checkpoint and lets the writer go, ``await written()`` waits for it
(``finish`` does both). A caller with more to write at the end (the kept outputs, chosen from the
run's output while the last checkpoint is being written) says ``end(phase, more=True)``, appends to
``last_writes`` and then calls ``no_more_writes()`` (``written()`` does too).

A shared value checkpoints cannot hold (an object of a user class, say) is reported once, with its
key and type; the run goes on, and the store is marked not resumable so no one resumes from a
checkpoint that no longer matches the run.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from itertools import chain
from time import monotonic, perf_counter
from typing import Any

from flowlib_runner.definition.factories.durable import Path, RecordedFailure, WalkFrame, node_name
from flowlib_runner.definition.factories.nodes import error_type
from flowlib_runner.execution.checkpoints.codec import Unserialisable, compress, encode, pack
from flowlib_runner.execution.checkpoints.state import (
    FAILED_ITEM,
    FORMAT_VERSION,
    INVOCATION,
    META,
    Checkpoint,
    path_key,
)
from flowlib_runner.store.base import RunStore, StoreError, StoreFull, compresses

INLINE_BYTES = 2048
"""A shared value encoded in at most this many bytes is kept in the meta blob (see the module docstring)."""
INLINE_TOTAL = 32 * 1024
"""At most this many bytes of shared values in the meta blob, which is rewritten with every write."""
BUDGET = 0.02
"""The share of the run's time that taking checkpoints may cost on the run's thread."""
ITEM_TICK = 0.02
"""How often a batch's buffer of finished items is looked at (``_Items``)."""
MIN_WRITE_INTERVAL = 0.01
"""At most 100 checkpoint writes a second (the first this long after the run starts), whatever the
store: each write is a handful of system calls on the writer thread, and each of them hands the GIL
back and forth with the run's thread, which a run of small steps felt; a checkpoint reaches the
store at most this much later than it was taken (the run's end is written at once). Not longer:
at 50 ms a 10,000-item pool killed at 9,000 items redid 530 of them under load, over the 5% the
durable-runs issue allows."""
FOLDERS = ("checkpoint", "shared", "items")
"""The folders of a checkpoint's blobs (``state``), which a store with folders makes ahead."""
FINAL_WRITE_SECONDS = 30.0
"""How long the end of a run waits for its last checkpoint to be written."""

log = logging.getLogger("flowlib.runner.checkpoints")

Note = Callable[[str], None]
StoreOpener = Callable[[], AbstractAsyncContextManager[RunStore]]
"""Opens the run's store in the writer thread's event loop (a client of its own, for API stores)."""


class _Items:
    """One batch visit's item journal: reused results, and a buffer of newly finished ones.

    ``record`` is the buffer's own ``append``: a pool of trivial items spent more time in a Python
    call per item than in running the item. A timer of the run's event loop looks at the buffer
    every ``ITEM_TICK`` seconds and makes a segment of it once it holds ``items_every`` items or
    ``items_seconds`` have passed since the last segment. (The loop runs its timers between items,
    so a batch of items that block it is looked at between two of them.)
    """

    __slots__ = ("buffer", "checkpointer", "due", "every", "key", "record", "reused", "timer")

    def __init__(self, checkpointer: Checkpointer, key: str, reused: dict[int, Any]) -> None:
        self.checkpointer, self.key, self.reused = checkpointer, key, reused
        self.every = checkpointer.items_every
        self.buffer: list[tuple[int, Any]] = []
        self.record = self.buffer.append
        self.due = monotonic() + checkpointer.items_seconds
        self.timer: asyncio.TimerHandle | None = None
        self._set_timer()

    def failed(self, index: int, item: Any, error: BaseException, attempts: int) -> None:
        self.record((index, _failure_record(error)))

    def flush(self) -> None:
        self.due = monotonic() + self.checkpointer.items_seconds
        if self.buffer:
            segment = self.buffer.copy()  # the list itself stays: ``record`` is its append
            self.buffer.clear()
            self.checkpointer.record_items(self.key, segment)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.flush()

    def _set_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.timer = None  # not on an event loop: segments when the visit ends
            return
        self.timer = loop.call_later(ITEM_TICK, self._tick)

    def _tick(self) -> None:
        if len(self.buffer) >= self.every or (self.buffer and monotonic() >= self.due):
            self.flush()
        self._set_timer()


class Checkpointer:
    """The journal of one run (see the module docstring). Call ``start()`` in the run's event loop,
    install it in ``JOURNAL`` for the run, and ``await finish(phase)`` at the end."""

    def __init__(
        self,
        opener: StoreOpener,
        *,
        location: str,
        definition_digest: str,
        attempt: int = 1,
        resumed: Checkpoint | None = None,
        items_every: int = 200,
        items_seconds: float = 2.0,
        write_interval: float = 0.0,
        note: Note | None = None,
        nodes: Callable[[], Any] | None = None,
        invocation: dict[str, Any] | None = None,
    ) -> None:
        self.opener = opener
        self.location = location
        self.definition_digest = definition_digest
        self.attempt = attempt
        self.items_every, self.items_seconds = items_every, items_seconds
        self.write_interval = max(write_interval, MIN_WRITE_INTERVAL)
        self.note: Note = note or (lambda text: log.warning("%s", text))
        self.nodes = nodes
        self.extra_meta: Callable[[], dict[str, Any]] | None = None
        """More of the run's state kept with each checkpoint (the approval desk's)."""
        self.last_writes: list[Callable[[RunStore], Awaitable[None]]] = []
        """Writes of the run's end, done by the writer on its store after the last checkpoint (the
        outputs kept whole, ``execution.outputs``); each handles its own errors."""
        self.interrupted = False
        """Set by a runner whose pod is being stopped from outside: the run is to be resumed, not ended."""
        self.shared: dict[str, Any] = {}
        self.frames: list[WalkFrame] = []
        self._top: WalkFrame | None = None  # frames[-1]
        self.plan = list(resumed.position) if resumed is not None else []
        self.reusable: dict[str, dict[int, Any]] = dict(resumed.items) if resumed is not None else {}
        self.items_reused = 0
        self.disabled: str | None = None
        self.seq = 0
        self._taken_seq = -1
        self._started = perf_counter()
        self._spent = 0.0
        self._last_cost = 0.0
        self._budget_at = 0.0  # the first moment the budget allows the next checkpoint
        self._due_at = 0.0  # when a boundary calls _due: _budget_at, or now when the writer has notes
        self._blobs: dict[Any, tuple[str, bytes]] = {}  # shared key -> (blob name, digest)
        self._counter = 0 if resumed is None else resumed.counter
        self._segments: dict[str, list[str]] = {}
        self._meta: dict[str, Any] | None = None
        self._pending: dict[str, bytes | None] = {}
        self._meta_due = False
        self._stale: list[str] = []
        self._lock = threading.Lock()  # guards what take() fills and the writer empties
        self._wake = threading.Event()
        self._stopping = threading.Event()  # cuts short the writer's wait for write_interval
        self._writes_in = threading.Event()  # last_writes is complete (see end)
        self._stop = False
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._writer_done = False
        self._told_done = False
        self._tell_done: Callable[[], None] | None = None  # how the writer thread says it ended
        self._late_notes: list[str] = []  # said by the writer thread, told on the run's thread
        self._last_write = 0.0
        self._failures = 0
        self._carry: dict[str, list[str]] = {}
        # encoded now (the run may change the input's values in place), written with the first checkpoint
        self._invocation = None if invocation is None else encode(invocation)
        self._end_seq = -1
        self._end_position: list[tuple[Path, str | None, int]] = []
        if resumed is not None and resumed.store_location == location:
            # The same store (a new pod of the same run): the resumed checkpoint is this run's latest,
            # its blobs are there, and its position is the one the walks start from.
            self._blobs = dict(resumed.blobs)
            self._carry = {key: list(names) for key, names in resumed.segments.items()}
            self._meta = dict(resumed.meta)
            self._taken_seq = 0

    @property
    def journaling(self) -> bool:
        """Whether checkpoints are still being taken (a value they cannot hold stops them)."""
        return self.disabled is None

    # -- the Journal protocol (called on the run's thread) -----------------------------------------

    def enter(self, owner: object, path: Path, start: str | None) -> WalkFrame:
        node, steps = start, 0
        if self.plan and tuple(self.plan[0][0]) == path:
            _, node, steps = self.plan.pop(0)  # the resumed position, outermost walk first
        frame = WalkFrame(owner, path, node, steps, self)
        self.frames.append(frame)
        self._top = frame
        return frame

    def leave(self, frame: WalkFrame) -> None:
        if self._end_seq != self.seq:
            # The first walk to end since the last boundary: where the run stands if it ends now
            # (the failing node, innermost walk first; or past the end of the flow).
            self._end_seq, self._end_position = self.seq, self._position()
        if self.frames and self.frames[-1] is frame:
            self.frames.pop()
        elif frame in self.frames:
            self.frames.remove(frame)
        self._top = self.frames[-1] if self.frames else None

    def moved(self, frame: WalkFrame) -> None:
        # Once per step of the run, so kept short: the due time folds in notes to tell and
        # disabling (see _due). A step of a walk that is not the innermost one (a flow user code
        # runs by hand, beside the main line) only counts in its own frame.
        if frame is self._top:
            self.seq += 1
            if perf_counter() >= self._due_at:
                self._due()

    def _due(self) -> None:
        """A boundary at or past ``_due_at``: tell the writer's notes, and checkpoint if the budget
        allows (``spent + last_cost <= BUDGET * (now - started)``, solved for now in ``_take``)."""
        if self._late_notes:
            self._tell_late_notes()
        if self.disabled is not None:
            self._due_at = float("inf")
        elif perf_counter() >= self._budget_at:
            self.take()
        else:
            self._due_at = self._budget_at

    def items(self, path: Path, items: Any) -> _Items | None:
        if self.disabled is not None:
            return None
        if self._taken_seq != self.seq:
            self.take()  # a batch that is the walk's first node, or one a user Node class runs
        if not self.journaling:  # the checkpoint just taken may have found a value it cannot hold
            return None
        key = path_key(path)
        reused = self.reusable.pop(key, {})
        if reused:
            total = _length(items)
            if total is not None and max(reused) >= total:
                self.note(
                    f"nodes.{'/'.join(path)}: the checkpoint's items do not match the batch's {total} items; "
                    "running them all again"
                )
                reused = {}
            else:
                self.items_reused += len(reused)
        if self._carry.get(key) is None and reused:
            # Resumed from another store (a retry): record the reused results here too.
            self.record_items(key, sorted(_as_records(reused).items()))
        elif key in self._carry:
            self._segments[key] = self._carry.pop(key)
            self._meta_due = True
        return _Items(self, key, reused)

    # -- taking checkpoints -------------------------------------------------------------------------

    def _position(self) -> list[tuple[Path, str | None, int]]:
        return [(f.path, node_name(f.node), f.steps) for f in self.frames]

    def take(self, position: list[tuple[Path, str | None, int]] | None = None) -> None:
        """Checkpoint the shared store and the position (the walks' now, unless given) on the run's thread."""
        with self._lock:
            self._take(position)
        self._wake.set()

    def _take(self, position: list[tuple[Path, str | None, int]] | None) -> None:
        began = perf_counter()
        blobs: dict[Any, tuple[str, bytes]] = {}
        inline: dict[Any, bytes] = {}
        room = INLINE_TOTAL
        try:
            for key, value in self.shared.items():
                data = encode(value)
                if len(data) <= INLINE_BYTES and len(data) <= room:
                    inline[key] = data
                    room -= len(data)
                    continue
                digest = hashlib.blake2b(data, digest_size=16).digest()
                known = self._blobs.get(key)
                if known is not None and known[1] == digest:
                    blobs[key] = known
                    continue
                self._counter += 1
                name = f"shared/{self._counter}"
                self._pending[name] = data
                blobs[key] = (name, digest)
        except Unserialisable as error:
            self._disable(
                f"shared[{key!r}] holds a {error.type_name}, which checkpoints cannot hold (only None, bool, "
                "int, float, str, bytes, and lists, tuples, dicts and sets of them): the run goes on, but it "
                "can no longer be resumed or retried from a checkpoint"
            )
            return
        kept = {name for name, _ in blobs.values()}
        for name, _ in self._blobs.values():
            if name not in kept:
                self._drop(name)
        self._blobs = blobs
        if self._taken_seq != self.seq or self._meta is None:
            # A new position: the previous position's item journals are over.
            for names in [*self._segments.values(), *self._carry.values()]:
                for name in names:
                    self._drop(name)
            self._segments, self._carry = {}, {}
        self._taken_seq = self.seq
        self._meta = {
            "version": FORMAT_VERSION,
            "definition": self.definition_digest,
            "attempt": self.attempt,
            "position": self._position() if position is None else position,
            # every key in the shared store's order: its blob, or None when its value is inline
            "shared": {key: blobs[key][0] if key in blobs else None for key in self.shared},
            "inline": inline,
            "digests": {key: digest for key, (_, digest) in blobs.items()},
            "counter": self._counter,
            "nodes": None if self.nodes is None else self.nodes(),
            "ended": None,
            "resumable": True,
        }
        if self.extra_meta is not None:
            self._meta.update(self.extra_meta())
        self._meta_due = True
        cost = perf_counter() - began
        self._spent += cost
        self._last_cost = cost
        self._budget_at = self._due_at = self._started + (self._spent + cost) / BUDGET

    def record_items(self, key: str, records: list[tuple[int, Any]]) -> None:
        """A segment of finished items of the batch at ``key`` (on the run's thread)."""
        if self.disabled is not None:
            return
        try:
            data = encode(list(chain.from_iterable(records)))  # flat: see the module docstring
        except Unserialisable as error:
            self._disable(
                f"a result of batch node {key!r} is a {error.type_name}, which checkpoints cannot hold: the run "
                "goes on, but it can no longer be resumed or retried from a checkpoint"
            )
            return
        with self._lock:
            self._counter += 1
            name = f"items/{self._counter}"
            self._pending[name] = data
            self._segments.setdefault(key, []).append(name)
            self._meta_due = True
        self._wake.set()

    def _drop(self, name: str) -> None:
        if name in self._pending:
            del self._pending[name]  # never written: nothing to delete
        else:
            self._stale.append(name)

    def _disable(self, reason: str, *, on_writer: bool = False) -> None:
        self.disabled = reason
        if on_writer:
            self._late_notes.append(reason)
        else:
            self.note(reason)
        self._due_at = 0.0  # the next boundary sees it (and stops looking at the clock)
        self._pending.clear()
        self._meta = {
            "version": FORMAT_VERSION,
            "definition": self.definition_digest,
            "resumable": False,
            "reason": reason,
            "ended": None,
            "attempt": self.attempt,
        }
        self._meta_due = True
        self._wake.set()

    def _meta_blob(self) -> dict[str, Any]:
        assert self._meta is not None
        meta = dict(self._meta)
        if meta.get("resumable"):
            meta["segments"] = {key: list(names) for key, names in {**self._carry, **self._segments}.items()}
            meta["counter"] = self._counter
        return meta

    # -- writing ------------------------------------------------------------------------------------

    def start(self, shared: dict[str, Any]) -> None:
        """Begin journaling the run whose shared store is ``shared``; starts the writer thread."""
        self.shared = shared
        self._started = perf_counter()
        self._budget_at = self._due_at = self._started + (self._spent + self._last_cost) / BUDGET
        self._last_write = monotonic()  # the first write waits write_interval too
        self._writer = threading.Thread(target=self._write_thread, name="checkpoint-writer", daemon=True)
        self._writer.start()

    def _write_thread(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            stack = AsyncExitStack()
            store = loop.run_until_complete(stack.enter_async_context(self.opener()))
            try:
                make_folders = getattr(store, "make_folders", None)  # a directory's, made before they are needed
                if make_folders is not None:
                    try:
                        loop.run_until_complete(make_folders(list(FOLDERS)))
                    except (StoreError, OSError) as error:  # the first write makes them, or says why it cannot
                        log.debug("checkpoint folders not made ahead in %s: %s", self.location, error)
                self._write_until_stopped(loop, store)
            except BaseException as error:  # handed to the run's thread by written()
                self._writer_error = error
            finally:
                # Everything is written: the run need not wait for the store's and the loop's clean-up.
                self._done_writing()
                loop.run_until_complete(stack.aclose())
        except BaseException as error:  # opening or closing the store: told as the writer's error
            if self._writer_error is None and not self._told_done:
                self._writer_error = error
            else:
                name = type(error).__name__
                log.warning("the checkpoint writer could not close %s: %s: %s", self.location, name, error)
        finally:
            loop.close()
            self._done_writing()

    def _done_writing(self) -> None:
        """Tell ``written()`` the writer is done (once; on the writer thread)."""
        with self._lock:
            if self._told_done:
                return
            self._told_done = True
            self._writer_done = True
            tell, self._tell_done = self._tell_done, None
        if tell is not None:
            tell()

    def _write_until_stopped(self, loop: asyncio.AbstractEventLoop, store: RunStore) -> None:
        while True:
            self._wake.wait()
            wait = self._last_write + self.write_interval - monotonic()
            if wait > 0 and not self._stop:
                self._stopping.wait(wait)
            self._wake.clear()
            loop.run_until_complete(self._write_once(store))
            if self._stop and not self._has_work():
                if self._writes_in.wait(FINAL_WRITE_SECONDS):
                    for write in self.last_writes:
                        loop.run_until_complete(write(store))
                return

    def _has_work(self) -> bool:
        with self._lock:
            return bool(self._meta_due or self._pending or self._stale)

    async def _write_once(self, store: RunStore) -> bool:
        with self._lock:
            if not self._meta_due and not self._pending and not self._stale:
                return False
            self._merge_waiting_segments()
            invocation, self._invocation = self._invocation, None
            pending, self._pending = self._pending, {}
            stale, self._stale = self._stale, []
            meta = self._meta_blob() if self._meta_due and self._meta is not None else None
            self._meta_due = False
        self._last_write = monotonic()
        compressed = compresses(store)
        try:
            blobs = await _compressed(pending) if compressed else pending
            if invocation is not None:
                blobs[INVOCATION] = compress(invocation) if compressed else invocation
            if blobs:
                await store.put_many(blobs)
            if meta is not None:
                await store.put_many({META: pack(meta, compressed=compressed)})
            if stale:
                await store.put_many(dict.fromkeys(stale))
            self._failures = 0
        except StoreFull as error:
            with self._lock:
                self._disable(f"checkpoints stopped: {error}", on_writer=True)
            self._wake.set()
        except (StoreError, OSError) as error:
            with self._lock:  # keep what was not written for the next attempt (newer versions win)
                self._invocation = self._invocation or invocation
                self._pending = {**pending, **self._pending}
                self._stale = stale + self._stale
                self._meta_due = self._meta_due or meta is not None
            self._failures += 1
            self._late_notes.append(
                f"could not write a checkpoint to {self.location} (attempt {self._failures}): {error}"
            )
            self._due_at = 0.0  # the next boundary tells it
            if not self._stop or self._failures < 3:
                await asyncio.sleep(min(30.0, 0.5 * 2**self._failures))
                self._wake.set()
        return True

    def _merge_waiting_segments(self) -> None:
        """Segments of one batch not written yet become one blob: one write instead of dozens
        (under ``_lock``; see the module docstring)."""
        for names in self._segments.values():
            waiting = [name for name in names[-2:] if name in self._pending]
            if len(waiting) < 2:
                continue  # the common case, checked on the last two names only
            waiting = [name for name in names if name in self._pending]  # always the last ones
            self._pending[waiting[0]] = b"".join(self._pending.pop(name) or b"" for name in waiting)
            del names[len(names) - len(waiting) + 1 :]

    def _tell_late_notes(self) -> None:
        notes, self._late_notes = self._late_notes, []
        for text in notes:
            self.note(text)

    async def finish(self, phase: str | None) -> None:
        """``end(phase)``, then wait for the last write (``written``)."""
        self.end(phase)
        await self.written()

    def end(self, phase: str | None, *, more: bool = False) -> None:
        """Record that the run ended ``phase`` (None: interrupted, to be resumed; ``Suspended``: stopped
        at an approval node, to be resumed there) and let the writer write it and stop; call
        ``written()`` before the run's end is told anyone. ``more``: ``last_writes`` may still grow,
        until ``no_more_writes()``."""
        with self._lock:
            if phase is not None and self.disabled is None and self._taken_seq != self.seq and self.frames == []:
                # Where the run ended (the node that failed or waits, or the end): where it goes on.
                self._take(self._end_position if self._end_seq == self.seq else None)
            if phase is not None and self._meta is not None:
                ended = None if phase == "Suspended" else phase
                extra = self.extra_meta() if self.extra_meta is not None and self._meta.get("resumable") else {}
                self._meta = {**self._meta, **extra, "ended": ended}
                self._meta_due = True
            self._stop = True
        if not more:
            self._writes_in.set()
        self._stopping.set()
        self._wake.set()

    def no_more_writes(self) -> None:
        """``last_writes`` is complete: the writer may do them and stop (after ``end(..., more=True)``)."""
        self._writes_in.set()

    async def written(self) -> None:
        """Wait for the writer ``end`` let go, at most ``FINAL_WRITE_SECONDS``; tell what it could not do."""
        self._writes_in.set()  # whoever waits adds nothing more
        writer = self._writer
        if writer is not None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def tell() -> None:  # on the writer thread, as it ends (no worker thread to join it from)
                try:
                    loop.call_soon_threadsafe(_settle, done)
                except RuntimeError:
                    pass  # the run's loop is closed: nobody waits any more

            with self._lock:
                ended = self._writer_done
                if not ended:
                    self._tell_done = tell
            try:
                if not ended:
                    await asyncio.wait_for(done, FINAL_WRITE_SECONDS)
                # not joined: what is left is closing its store and loop (joined at exit, _closing)
                _closing.difference_update([thread for thread in _closing if not thread.is_alive()])
                _closing.add(writer)
            except TimeoutError:
                self.note(f"the last checkpoint was not written to {self.location} within {FINAL_WRITE_SECONDS:.0f}s")
        if self._writer_error is not None:
            self.note(f"the checkpoint writer stopped: {type(self._writer_error).__name__}: {self._writer_error}")
        self._tell_late_notes()


_closing: set[threading.Thread] = set()
"""Writers that were done writing when their run ended, maybe still closing their store: joined at
the interpreter's exit (they are daemon threads, so a writer stuck on a store never holds the
process up for longer than ``CLOSE_SECONDS``)."""
CLOSE_SECONDS = 5.0


@atexit.register
def _join_closing() -> None:
    deadline = monotonic() + CLOSE_SECONDS
    for writer in list(_closing):
        writer.join(max(0.0, deadline - monotonic()))


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


PARALLEL_COMPRESS_BYTES = 64 * 1024
"""Blobs at least this big are compressed side by side on worker threads when there are several."""


async def _compressed(blobs: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """The blobs compressed; big ones in parallel (zlib lets go of the GIL), small ones on the spot."""
    big = [name for name, data in blobs.items() if data is not None and len(data) >= PARALLEL_COMPRESS_BYTES]
    done: dict[str, bytes] = {}
    if len(big) > 1:
        packed = await asyncio.gather(*(asyncio.to_thread(compress, blobs[name] or b"") for name in big))
        done = dict(zip(big, packed, strict=True))
    return {
        name: None if data is None else done[name] if name in done else compress(data) for name, data in blobs.items()
    }


def _length(items: Any) -> int | None:
    try:
        return len(items)
    except TypeError:
        return None


def _failure_record(error: BaseException) -> tuple[str, str, str]:
    """A failed item as a segment records it (``state.load_checkpoint`` reads it back)."""
    return (FAILED_ITEM, error_type(error), str(error))


def _as_records(reused: dict[int, Any]) -> dict[int, Any]:
    """Reused results as a segment records them (failures back in their recorded form)."""
    return {
        index: _failure_record(result) if isinstance(result, RecordedFailure) else result
        for index, result in reused.items()
    }
