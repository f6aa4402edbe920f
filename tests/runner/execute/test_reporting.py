"""StatusTracker, the reporters and the run log, driven by real flowlib runs (no YAML)."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.execution.reporting import JsonFileReporter, PeriodicReporter, StatusTracker
from flowlib_runner.execution.reporting.dispatch import Dispatch

import flowlib
from flowlib_api.runstatus import DEFAULT_BUDGET, RunStatus


def named(node: Any, name: str) -> Any:
    node.name = name
    return node


class Count(flowlib.AsyncNode):
    async def exec_async(self, prep_res: Any) -> Any:
        return None

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        return "again" if shared["n"] < 5 else "done"


class Flaky(flowlib.AsyncNode):
    async def exec_async(self, prep_res: Any) -> Any:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls < 3:
            raise ConnectionError(f"try {self.calls}")
        return "ok"


class Pool(flowlib.WorkerPoolBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return range(shared["items"])

    async def exec_async(self, item: int) -> int:
        if item == 7 and not getattr(self, "failed_once", False):
            self.failed_once = True
            raise ValueError("item 7 once")
        return item


def run(flow: Any, shared: dict[str, Any], *observers: Any) -> None:
    asyncio.run(flow.run_async(shared, observer=Dispatch(list(observers))))


def test_tracker_follows_loops_retries_and_batches() -> None:
    loop = named(Count(), "loop")
    flaky = named(Flaky(max_retries=3), "flaky")
    pool = named(Pool(max_parallel=4, max_retries=2), "pool")
    loop - "again" >> loop
    loop - "done" >> flaky
    flaky >> pool
    tracker = StatusTracker()
    run(flowlib.AsyncFlow(loop), {"items": 1000}, tracker)
    tracker.finish("Succeeded", output={"n": 5})
    status = tracker.snapshot()
    assert status.phase == "Succeeded" and status.progress == "3/3"
    assert status.nodes["loop"].visits == 5 and status.nodes["loop"].action == "done"
    assert status.nodes["flaky"].attempts == 3 and status.nodes["flaky"].phase == "Succeeded"
    assert "ConnectionError: try 2" in (status.nodes["flaky"].message or "")
    items = status.nodes["pool"].items
    assert items is not None and (items.total, items.done, items.failed) == (1000, 1000, 0)
    assert status.nodes["pool"].item_retries == 1
    assert status.output == {"n": 5}
    assert status.start_time and status.completion_time and status.current_node is None


def test_tracker_records_failure_and_sub_flow_paths() -> None:
    class Boom(flowlib.AsyncNode):
        async def exec_async(self, prep_res: Any) -> Any:
            raise RuntimeError("boom")

    inner = flowlib.AsyncFlow(named(Boom(), "inner"))
    outer = flowlib.AsyncFlow(named(inner, "sub"))
    tracker = StatusTracker()
    with pytest.raises(RuntimeError):
        run(outer, {}, tracker)
    tracker.finish("Failed", message="RuntimeError: boom")
    status = tracker.snapshot()
    assert status.nodes["sub/inner"].phase == "Failed"
    assert status.nodes["sub/inner"].message == "RuntimeError: boom"
    assert status.nodes["sub"].phase == "Failed"
    assert status.message == "RuntimeError: boom"


def test_status_of_a_huge_batch_stays_small() -> None:
    tracker = StatusTracker()
    run(flowlib.AsyncFlow(named(Pool(max_parallel=64, max_retries=2), "pool")), {"items": 100_000}, tracker)
    tracker.finish("Succeeded", output={})
    status = tracker.snapshot()
    assert len(status.to_json().encode()) < 2048
    assert status.nodes["pool"].items is not None and status.nodes["pool"].items.done == 100_000


def test_status_of_a_huge_graph_stays_under_the_bound() -> None:
    class Step(flowlib.AsyncNode):
        async def exec_async(self, prep_res: Any) -> Any:
            return None

    nodes = [named(Step(), f"step-with-a-long-name-{i:05d}") for i in range(5000)]
    for a, b in itertools.pairwise(nodes):
        a >> b
    tracker = StatusTracker()
    run(flowlib.AsyncFlow(nodes[0]), {}, tracker)
    tracker.finish("Succeeded", output={"blob": "x" * 1_000_000})
    status = tracker.snapshot()
    assert len(status.to_json().encode()) <= DEFAULT_BUDGET
    assert status.progress == "5000/5000"
    assert any("of 5000 node states left out" in n for n in status.notes)
    assert status.output is not None and str(status.output["blob"]).startswith("<")


def test_log_lines_attribute_user_output_to_nodes() -> None:
    class Talk(flowlib.AsyncNode):
        async def exec_async(self, prep_res: Any) -> Any:
            print("printed", end="")
            print(" line")
            logging.getLogger("user.code").warning("logged %d", 42)
            await asyncio.to_thread(print, "from a thread")
            return None

    out = io.StringIO()
    log = RunLogger(stream_sink(out), "json")
    flow = flowlib.AsyncFlow(named(Talk(), "talk"))

    async def main() -> None:
        with log.capture():
            print("outside any node")
            await flow.run_async({}, observer=log)

    asyncio.run(main())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["printed line"]["node"] == "talk" and by_message["printed line"]["stream"] == "stdout"
    assert by_message["printed line"]["attempt"] == 1
    assert by_message["logged 42"]["level"] == "WARNING" and by_message["logged 42"]["logger"] == "user.code"
    assert by_message["from a thread"]["node"] == "talk"
    assert by_message["outside any node"]["node"] == ""
    events = [line.get("event") for line in lines if line.get("event")]
    assert events == ["FlowStarted", "NodeStarted", "NodeFinished", "FlowFinished"]
    assert all(set(line) >= {"time", "level", "node", "attempt", "message"} for line in lines)


def test_text_log_shows_attempts_and_throttles_progress() -> None:
    out = io.StringIO()
    log = RunLogger(stream_sink(out), progress_interval=3600)
    flow = flowlib.AsyncFlow(named(Flaky(max_retries=3), "flaky"))
    flow.start_node >> named(Pool(max_parallel=8, max_retries=2), "pool")
    run(flow, {"items": 10_000}, log)
    text = out.getvalue()
    assert "[flaky#1] started" in text
    assert "WARNING [flaky#1] attempt 1 failed: ConnectionError: try 1; retrying in 0s" in text
    assert "[flaky#3] finished" in text
    progress = [line for line in text.splitlines() if "items " in line]
    assert progress[-1].endswith("items 10000/10000 done")
    assert len(progress) <= 3  # not one per item


class Recorder(PeriodicReporter):
    def __init__(self, interval: float) -> None:
        super().__init__(interval=interval)
        self.seen: list[tuple[str, bool]] = []

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        self.seen.append((status.phase, final))


def test_periodic_reporter_publishes_first_coalesced_and_final() -> None:
    async def main() -> Recorder:
        tracker = StatusTracker()
        reporter = Recorder(interval=3600)
        await reporter.start(tracker)
        tracker.start()
        await asyncio.sleep(0)
        for _ in range(100):
            tracker.on_event(flowlib.events.BatchProgress(("x",), 100, 1, 0))
            await asyncio.sleep(0)
        tracker.finish("Succeeded")
        await reporter.finish(tracker.snapshot())
        return reporter

    reporter = asyncio.run(main())
    assert reporter.seen == [("Running", False), ("Succeeded", True)]


def test_an_ended_run_is_published_by_the_final_status_only() -> None:
    """Between the tracker's end and finish() (the last checkpoint and the kept outputs are being
    written), periodic ticks publish nothing: the end is told once, whole."""

    async def main() -> Recorder:
        tracker = StatusTracker()
        reporter = Recorder(interval=0.001)
        await reporter.start(tracker)
        tracker.start()
        await asyncio.sleep(0.01)
        tracker.finish("Succeeded")
        await asyncio.sleep(0.05)  # many ticks while the run's end is still being written
        await reporter.finish(tracker.snapshot())
        return reporter

    reporter = asyncio.run(main())
    assert [seen for seen in reporter.seen if seen[0] != "Running"] == [("Succeeded", True)]


def test_failed_periodic_publish_is_reported_and_final_error_raised() -> None:
    errors: list[str] = []

    class Broken(PeriodicReporter):
        async def publish(self, status: RunStatus, *, final: bool) -> None:
            raise OSError(f"down (final={final})")

    async def main() -> None:
        reporter = Broken(interval=0.01, on_error=lambda r, e: errors.append(str(e)))
        tracker = StatusTracker()
        await reporter.start(tracker)
        await asyncio.sleep(0.05)
        await reporter.finish(tracker.snapshot())

    with pytest.raises(OSError, match="final=True"):
        asyncio.run(main())
    assert errors and errors[0] == "down (final=False)"


def test_json_file_reporter_rewrites_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "status.json"

    async def main() -> None:
        tracker = StatusTracker()
        tracker.start()
        reporter = JsonFileReporter(target, interval=3600)
        await reporter.start(tracker)
        for _ in range(500):  # the first status is written at once, by the writer thread
            if target.exists():
                break
            await asyncio.sleep(0.01)
        assert json.loads(target.read_text())["phase"] == "Running"
        tracker.finish("Failed", message="nope")
        await reporter.finish(tracker.snapshot())

    asyncio.run(main())
    data = json.loads(target.read_text())
    assert data["phase"] == "Failed" and data["message"] == "nope"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary files left


def test_the_final_status_is_written_after_a_periodic_write_still_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowlib_runner.execution.reporting import jsonfile

    target = tmp_path / "status.json"
    write = jsonfile.write_atomically
    slow_write_started = threading.Event()

    def slow_in_the_writer_thread(path: Path, text: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            slow_write_started.set()
            time.sleep(0.3)  # the disk is slow: the final status must not be overtaken
        write(path, text)

    monkeypatch.setattr(jsonfile, "write_atomically", slow_in_the_writer_thread)

    async def main() -> None:
        tracker = StatusTracker()
        tracker.start()
        reporter = JsonFileReporter(target, interval=3600)
        await reporter.start(tracker)
        while not slow_write_started.is_set():
            await asyncio.sleep(0.01)
        tracker.finish("Succeeded")
        await reporter.finish(tracker.snapshot())

    asyncio.run(main())
    jsonfile._status_writer().submit(lambda: None).result()  # one writer thread: every write has landed
    assert json.loads(target.read_text())["phase"] == "Succeeded"


def test_dispatch_calls_plain_observers_too() -> None:
    recorder = flowlib.EventRecorder()
    tracker = StatusTracker()
    run(flowlib.AsyncFlow(named(Count(), "loop")), {"n": 4}, tracker, recorder)
    assert [type(e).__name__ for e in recorder.events] == [
        "FlowStarted",
        "NodeStarted",
        "NodeFinished",
        "FlowFinished",
    ]
    assert tracker.snapshot().nodes["loop"].action == "done"


class Loop(flowlib.AsyncNode):
    """Visits itself `shared["steps"]` times; fails on visit `shared.get("fail_at")`, once."""

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        if shared["n"] == shared.get("fail_at"):
            raise ValueError(f"visit {shared['n']}")
        return "again" if shared["n"] < shared["steps"] else "done"


def loop_log(steps: int, **options: Any) -> list[str]:
    out = io.StringIO()
    log = RunLogger(stream_sink(out), **options)
    loop = named(Loop(), "loop")
    loop - "again" >> loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PocketFlow's "Flow ends: 'done' not found": the loop's way out
        run(flowlib.AsyncFlow(loop), {"steps": steps}, log)
    return [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]


def test_a_loop_logs_its_first_visits_then_sums_up_the_rest() -> None:
    lines = loop_log(2500, summary_interval=3600)
    started = [line for line in lines if line.startswith("started")]
    finished = [line for line in lines if line.startswith("finished")]
    assert len(started) == len(finished) == 10  # visits 1..10; the interval never passes
    # the walk's end sums up visits 11..2500, with the note that summarising began, before "run finished"
    assert lines[-2].startswith("2500 visits, ") and " ms on average), the last -> done" in lines[-2]
    assert "-> done (visited more than 10 times: from now on at most one visit per 3600s is logged" in lines[-2]
    assert lines[-1] == "run finished -> done"
    assert len(lines) == 23


def test_a_summarised_loop_still_logs_a_visit_per_interval() -> None:
    # Visits slower than the interval: every one is logged, numbered after the first ten.
    lines = loop_log(30, summary_interval=0)
    assert sum(line.startswith("started") for line in lines) == 30
    assert sum(line.startswith("finished") for line in lines) == 30
    assert "started (Loop), visit 30" in lines
    assert any(line.startswith("finished visit 30 in ") and line.endswith("-> done") for line in lines)
    assert not any("visits, " in line for line in lines)  # nothing in between to sum up


def test_a_loop_with_a_short_interval_alternates_logged_visits_and_sums() -> None:
    out = io.StringIO()
    log = RunLogger(stream_sink(out), summary_interval=0.001)
    loop = named(SlowLoop(), "loop")
    loop - "again" >> loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(flowlib.AsyncFlow(loop), {"steps": 2000}, log)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    sums = [line for line in lines if "visits, " in line]
    numbered = [line for line in lines if line.startswith("started (SlowLoop), visit ")]
    assert sums and numbered and len(lines) < 2000
    assert "from now on" in sums[0] and not any("from now on" in line for line in sums[1:])
    # each sum counts every visit before the next logged one: the numbers never go back
    counts = [int(line.split(" visits, ")[0]) for line in sums]
    assert counts == sorted(counts)
    # every visit is told: the last sum counts all visits before it, and any visit after it was
    # logged itself (the timer let the last visits through, which leaves nothing after them to sum)
    after_last_sum = lines[max(i for i, line in enumerate(lines) if "visits, " in line) + 1 :]
    logged_after = [int(line.rsplit("visit ", 1)[1]) for line in after_last_sum if line in numbered]
    assert logged_after == list(range(counts[-1] + 1, 2001))


def test_failures_and_retries_are_logged_even_when_visits_are_summarised() -> None:
    out = io.StringIO()
    log = RunLogger(stream_sink(out), summary_interval=3600)
    loop = named(Loop(), "loop")
    loop - "again" >> loop
    with pytest.raises(ValueError, match="visit 500"):
        run(flowlib.AsyncFlow(loop), {"steps": 1000, "fail_at": 500}, log)
    lines = out.getvalue().splitlines()
    failed = next(i for i, line in enumerate(lines) if "ERROR   [loop#1] failed after " in line)
    assert "(visit 500): ValueError: visit 500" in lines[failed]
    # the visits before the failure are summed up first: the failure is the node's last word
    assert "] 499 visits, " in lines[failed - 1]
    assert "ERROR   [run] run failed: ValueError: visit 500" in lines[failed + 1]


class SlowLoop(Loop):
    async def exec_async(self, prep_res: Any) -> None:
        await asyncio.sleep(0)  # a real suspension, yet far quicker than the 1 ms interval


class Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[str] = []  # what had been written at each flush
        self.flushed = threading.Event()

    def flush(self) -> None:
        self.flushes.append(self.getvalue())
        self.flushed.set()


def test_info_lines_wait_for_the_timer_while_warnings_and_user_output_flush_at_once() -> None:
    stream = Recording()
    log = RunLogger(stream_sink(stream, flush_interval=3600))
    log._event("INFO", ("a",), "started (X)", "NodeStarted", 0.0)
    assert stream.flushes == []  # buffered: the timer (an hour away here) would flush it
    log.line("INFO", ("a",), "printed", stream="stdout")
    assert len(stream.flushes) == 1 and "printed" in stream.flushes[0]
    log._event("WARNING", ("a",), "attempt 1 failed", "RetryScheduled", 0.0)
    assert len(stream.flushes) == 2
    log._event("INFO", ("a",), "finished", "NodeFinished", 0.0)
    log.flush()
    assert len(stream.flushes) == 3 and stream.flushes[-1].endswith("finished\n")


def test_the_timer_flushes_buffered_lines_on_its_own() -> None:
    stream = Recording()
    sink = stream_sink(stream, flush_interval=0.01)
    sink("one")
    sink("two")  # the same pending timer covers both
    assert stream.flushed.wait(10)
    assert stream.flushes[0] == "one\ntwo\n"


def test_the_end_of_a_run_flushes_its_last_lines() -> None:
    stream = Recording()
    log = RunLogger(stream_sink(stream, flush_interval=3600))
    run(flowlib.AsyncFlow(named(Count(), "count")), {}, log)
    assert stream.flushes and stream.flushes[-1].endswith("run finished -> again\n")


def test_a_closed_reader_drops_lines_instead_of_failing() -> None:
    class Gone(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError

    sink = stream_sink(Gone())
    sink("kept in the buffer")
    sink.flush()
    sink("dropped")
    assert sink.closed


def test_a_looping_node_stays_current_between_its_reported_visits() -> None:
    tracker = StatusTracker()
    seen: list[str | None] = []

    class Peeks(Loop):
        async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            if shared.get("n", 0) == 500:  # a quiet visit: no event tells the tracker about it
                seen.append(tracker.snapshot().current_node)
            return await super().post_async(shared, prep_res, exec_res)

    loop = named(Peeks(), "loop")
    loop - "again" >> loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(flowlib.AsyncFlow(loop), {"steps": 1000}, tracker)
    assert seen == ["loop"]
    tracker.finish("Succeeded")
    status = tracker.snapshot()
    assert status.current_node is None and status.nodes["loop"].visits == 1000


def test_one_flusher_thread_serves_every_sink_and_every_wait() -> None:
    streams = [Recording() for _ in range(3)]
    for round_ in range(3):  # each round: every sink has a line waiting, then the flusher writes it out
        for stream in streams:
            stream.flushed.clear()
            stream_sink(stream, flush_interval=0.01)(f"line {round_}")
        for stream in streams:
            assert stream.flushed.wait(10)
    flushers = [t for t in threading.enumerate() if t.name == "flowlib-log-flusher"]
    assert len(flushers) == 1
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
