"""Live output of shell and command nodes: each line reaches the run log as the process prints it.

Liveness is shown by events, not timing: the command prints a line, then waits (bounded) for a
file that only the log sink creates when it receives that line, and says whether it saw it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.definition.runkinds.streams import MAX_LINE_BYTES, LineSplitter, keep_tail
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink

from flowlib_api.runstatus import RunStatus

from .definitions import load

ROOT = Path(__file__).resolve().parents[3]

# Prints `first`, waits up to 10 s for $GO to exist, then prints `live` (or `not-live`).
WAIT_FOR_GO = (
    'echo first; i=0; while [ ! -e "$GO" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; '
    'if [ -e "$GO" ]; then echo live; else echo not-live; fi'
)


def run(text: str, log: RunLogger, **options: Any) -> RunStatus:
    return asyncio.run(execute_async(load(text), log=log, **options))


def run_logged(text: str, fmt: str = "text", **options: Any) -> tuple[RunStatus, list[str]]:
    out = io.StringIO()
    status = run(text, RunLogger(stream_sink(out), fmt), **options)  # type: ignore[arg-type]
    return status, out.getvalue().splitlines()


def messages(lines: list[str], stream: str) -> list[str]:
    """The messages of a JSON log's lines of `stream`."""
    return [r["message"] for r in map(json.loads, lines) if r.get("stream") == stream]


def test_lines_reach_the_log_while_the_command_runs(tmp_path: Path) -> None:
    go = tmp_path / "go"
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line.endswith("stdout: first"):
            go.touch()  # the command is still running: it waits for this file

    text = f"""
    nodes:
      build: {{run: {{shell: {json.dumps(WAIT_FOR_GO)}, env: {{GO: "{go}"}}}}}}
    """
    status = run(text, RunLogger(sink))
    assert status.phase == "Succeeded", status.message
    assert status.output == {"build": "first\nlive"}
    first = next(i for i, line in enumerate(seen) if line.endswith("[build#1] stdout: first"))
    live = next(i for i, line in enumerate(seen) if line.endswith("[build#1] stdout: live"))
    finished = next(i for i, line in enumerate(seen) if "[build#1] finished" in line)
    assert first < live < finished


def test_stdout_and_stderr_lines_are_logged_with_the_node_path_and_levels() -> None:
    text = """
    nodes:
      a:
        run: {shell: 'echo out1; echo err1 >&2; echo out2; printf "err-last" >&2; printf "\\nout-last"'}
        next: {default: b}
      b: {run: {command: [sh, -c, 'echo "argv $0"', "{{ params.word }}"]}}
    params: {word: hello}
    """
    status, lines = run_logged(text)
    assert status.phase == "Succeeded", status.message
    assert status.output == {"a": "out1\nout2\n\nout-last", "b": "argv hello"}  # all of stdout, as before
    tails = [line.split(" ", 1)[1] for line in lines]
    for expected in (
        "INFO    [a#1] stdout: out1",
        "INFO    [a#1] stdout: out2",
        "INFO    [a#1] stdout: ",
        "INFO    [a#1] stdout: out-last",  # no newline at the end: still a line
        "WARNING [a#1] stderr: err1",
        "WARNING [a#1] stderr: err-last",
        "INFO    [b#1] stdout: argv hello",
    ):
        assert expected in tails, (expected, lines)
    out = [t for t in tails if "stdout:" in t and "[a#1]" in t]
    assert out == [
        "INFO    [a#1] stdout: out1",
        "INFO    [a#1] stdout: out2",
        "INFO    [a#1] stdout: ",
        "INFO    [a#1] stdout: out-last",
    ]


def test_json_log_carries_the_lines_of_a_command_in_a_sub_flow() -> None:
    text = """
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: main}
    spec:
      nodes:
        outer: {type: flow, flow: inner}
    ---
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: inner}
    spec:
      nodes:
        step: {run: {shell: 'echo "{\\"n\\": 1}"; echo careful >&2', parse: json}}
    """
    status, lines = run_logged(text, "json")
    assert status.phase == "Succeeded", status.message
    records = [json.loads(line) for line in lines]
    shown = [(r["level"], r["node"], r["stream"], r["message"]) for r in records if "stream" in r]
    assert sorted(shown) == [
        ("INFO", "outer/step", "stdout", '{"n": 1}'),
        ("WARNING", "outer/step", "stderr", "careful"),
    ]
    assert all(r["attempt"] == 1 and r["time"] for r in records if "stream" in r)


def test_a_very_long_line_is_cut_in_the_log_but_not_in_the_result() -> None:
    size = 3 * MAX_LINE_BYTES
    text = f"""
    nodes:
      a:
        run: {{shell: 'head -c {size} /dev/zero | tr "\\\\0" x; echo; echo after; head -c {size} /dev/zero'}}
        next: {{default: check}}
      check: {{run: {{python: "shared['a'] == 'x' * {size} + '\\\\nafter\\\\n' + chr(0) * {size}"}}}}
    """
    status, lines = run_logged(text, "json", outputs=["check"])
    assert status.phase == "Succeeded", status.message
    assert status.output == {"check": True}  # the result has all of stdout (the status is too small to show it)
    logged = messages(lines, "stdout")
    assert len(logged) == 3
    long_line, after, zeros = logged
    assert long_line.startswith("x" * MAX_LINE_BYTES) and long_line.endswith(
        f"[... line cut: longer than {MAX_LINE_BYTES} bytes]"
    )
    assert len(long_line) < MAX_LINE_BYTES + 100
    assert after == "after"
    assert zeros.startswith("\0" * 100) and "line cut" in zeros  # no newline ever: still bounded


def test_a_failing_command_fails_with_its_stderr_tail_and_its_lines_are_logged() -> None:
    text = """
    nodes:
      a:
        run:
          shell: >-
            echo progress; i=0; while [ $i -lt 3000 ]; do echo "noise $i" >&2; i=$((i+1)); done;
            echo oops >&2; exit 3
    """
    status, lines = run_logged(text, "json")
    assert status.phase == "Failed"
    assert status.message is not None
    assert "exited with status 3: " in status.message and status.message.endswith("noise 2999\noops")
    assert "noise 0\n" not in status.message  # only the end of stderr
    errors = messages(lines, "stderr")
    assert errors == [f"noise {i}" for i in range(3000)] + ["oops"]  # nothing dropped
    assert messages(lines, "stdout") == ["progress"]
    records = [json.loads(line) for line in lines]
    oops = next(i for i, r in enumerate(records) if r["message"] == "oops")
    failed = next(i for i, r in enumerate(records) if r.get("event") == "NodeFailed")
    assert oops < failed


def test_both_pipes_are_read_at_once_so_a_chatty_command_never_blocks() -> None:
    # Each stream gets far more than a pipe holds, in alternating bursts.
    text = """
    nodes:
      a:
        run: {shell: 'seq 1 20000; seq 1 20000 >&2; seq 20001 40000; seq 20001 40000 >&2'}
        next: {default: check}
      check: {run: {python: "shared['a'] == chr(10).join(map(str, range(1, 40001)))"}}
    """
    status, lines = run_logged(text, "json", outputs=["check"])
    assert status.phase == "Succeeded", status.message
    expected = [str(i) for i in range(1, 40001)]
    assert messages(lines, "stdout") == expected
    assert messages(lines, "stderr") == expected
    assert status.output == {"check": True}


def test_lines_of_concurrent_batch_items_stay_whole() -> None:
    pad = "p" * 3000  # lines longer than what one read may return, so they span reads
    script = f'i=0; while [ $i -lt 150 ]; do echo "$0:$i:{pad}"; echo "$0:$i:{pad}" >&2; i=$((i+1)); done'
    text = f"""
    nodes:
      each:
        type: parallel_batch
        batch: {{items: names, maxParallel: 4}}
        run: {{command: [sh, -c, {json.dumps(script)}, "{{{{ item }}}}"]}}
    """
    names = ["a", "b", "c", "d", "e", "f"]
    status, lines = run_logged(text, "json", input={"names": names})
    assert status.phase == "Succeeded", status.message
    records = [json.loads(line) for line in lines]
    for stream in ("stdout", "stderr"):
        got = [r["message"] for r in records if r.get("stream") == stream]
        assert all(r["node"] == "each" for r in records if r.get("stream") == stream)
        assert sorted(got) == sorted(f"{n}:{i}:{pad}" for n in names for i in range(150))
        for name in names:  # each item's own lines keep their order
            mine = [m for m in got if m.startswith(f"{name}:")]
            assert mine == [f"{name}:{i}:{pad}" for i in range(150)]


def test_without_a_run_log_stderr_lines_still_go_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    from flowlib_runner.definition.build import build_flow

    flow = build_flow(load("nodes: {a: {run: {shell: 'echo secret-result; echo warn >&2'}}}"))
    shared: dict[str, Any] = {}
    asyncio.run(flow.run_async(shared))
    captured = capfd.readouterr()
    assert shared["a"] == "secret-result"
    assert "warn" in captured.err and "secret-result" not in captured.out + captured.err


# -- the line splitter ---------------------------------------------------------------------------------


def test_splitter_joins_reads_and_handles_crlf_and_the_last_line() -> None:
    s = LineSplitter(limit=100)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\r\nd\n\ne") == ["abc", "d", ""]
    assert s.feed(b"f") == []
    assert s.finish() == ["ef"]
    assert s.finish() == []


def test_splitter_cuts_long_lines_at_a_character_boundary_and_skips_their_rest() -> None:
    s = LineSplitter(limit=10)
    out = s.feed("123456789é".encode() + b"more")  # é is 2 bytes: bytes 10-11
    assert out == ["123456789 [... line cut: longer than 10 bytes]"]
    assert s.feed(b"still the same line") == []
    assert s.feed(b" end\nnext\n") == ["next"]
    assert s.feed(b"x" * 10 + b"\n") == ["x" * 10]  # exactly the limit is not cut
    assert s.feed(b"y" * 25) == ["y" * 10 + " [... line cut: longer than 10 bytes]"]
    assert s.finish() == []


def test_keep_tail_is_bounded_and_keeps_the_end_before_trailing_whitespace() -> None:
    tail = bytearray()
    for i in range(1000):
        keep_tail(tail, f"line {i}\n".encode(), 50)
    keep_tail(tail, b"\n" * 500, 50)
    assert len(tail) <= 150
    assert tail.strip().endswith(b"line 999")
    assert len(tail.strip()) >= 50


# -- flowctl run, as users run it ----------------------------------------------------------------------


def test_flowctl_run_shows_command_lines_live(tmp_path: Path) -> None:
    go = tmp_path / "go"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "nodes:\n"
        f"  build: {{run: {{shell: {json.dumps(WAIT_FOR_GO + '; echo done-warning >&2')}, env: {{GO: '{go}'}}}}}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "flowlib_runner.flowctl", "run", "--no-live", str(flow)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        seen: list[str] = []
        try:
            while (line := lines.get(timeout=60)) is not None:
                seen.append(line)
                if line.endswith("[build#1] stdout: first"):
                    go.touch()  # flowctl printed the line while the command still runs
            proc.wait(timeout=60)
        finally:
            proc.kill()
        err = proc.stderr.read()
    assert proc.returncode == 0, (seen, err)
    assert any(line.endswith("INFO    [build#1] stdout: live") for line in seen), seen
    assert any(line.endswith("WARNING [build#1] stderr: done-warning") for line in seen), seen
    assert 'output: {"build": "first\\nlive"}' in seen


def test_flowctl_run_json_logs_command_lines_on_stderr(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("nodes:\n  a: {run: {command: [sh, -c, 'echo hi; echo ho >&2']}}\n", encoding="utf-8")
    command = [sys.executable, "-m", "flowlib_runner.flowctl", "run", "--json", "--log-format", "json", str(flow)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"a": "hi"}
    records = [json.loads(line) for line in done.stderr.splitlines()]
    shown = [(r["level"], r["node"], r["stream"], r["message"]) for r in records if "stream" in r]
    assert sorted(shown) == [("INFO", "a", "stdout", "hi"), ("WARNING", "a", "stderr", "ho")]
