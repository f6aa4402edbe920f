"""Live output of a child process: its stdout and stderr read line by line while it runs.

The shell kind hands each line to the run log as soon as it is read, so a 20-minute build shows in
`kubectl logs -f` as it goes. The log lives in the execution layer, which this layer must not
import: the log installs itself in `command_output` (a context variable, so concurrent runs in one
process keep their own logs, and asyncio tasks and threads of a node inherit it) and the readers
here call it with `(stream, line)` from the node's own task, where `flowlib.current_path()` names
the node. Without a log (`build_flow` used as a library) stderr lines go to `sys.stderr` and stdout
lines only into the result.

Bounds: a log line is at most `MAX_LINE_BYTES` of output; the rest of a longer line is dropped
behind a marker (container runtimes split log lines at 16 KiB, and a buffer waiting for a newline
that never comes must not grow). A last line without a newline still counts. Both pipes are read
concurrently, so a command filling one pipe while we wait on the other cannot stall.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextvars import ContextVar

LineSink = Callable[[str, str], None]
"""`sink(stream, line)`: `stream` is "stdout" or "stderr"; `line` has no newline."""

command_output: ContextVar[LineSink | None] = ContextVar("flowlib_command_output", default=None)
"""Where the lines of commands go; the run log sets it while it captures output."""

MAX_LINE_BYTES = 8192
CHUNK_BYTES = 65536


def _stderr_only(stream: str, line: str) -> None:
    """The sink without a run log: stderr is passed on (stdout is the node's result)."""
    if stream == "stderr":
        sys.stderr.write(line + "\n")


def current_sink() -> LineSink:
    return command_output.get() or _stderr_only


class LineSplitter:
    """Bytes in, complete decoded lines out; holds at most `limit` bytes of an unfinished line."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._partial = bytearray()
        self._skipping = False  # the current line was cut: drop bytes up to its newline

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._skipping:
                self._partial += piece
                if len(self._partial) > self.limit:
                    lines.append(self._cut())
            if end < 0:
                break
            if self._skipping:
                self._skipping = False
            else:
                lines.append(self._take())
            start = end + 1
        return lines

    def finish(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        self._skipping = False
        return [self._take()] if self._partial else []

    def _take(self) -> str:
        line = self._partial.decode("utf-8", errors="replace")
        self._partial.clear()
        return line.removesuffix("\r")

    def _cut(self) -> str:
        cut = self.limit
        while cut > 0 and self._partial[cut] & 0xC0 == 0x80:  # not inside a UTF-8 character
            cut -= 1
        head = self._partial[:cut].decode("utf-8", errors="replace")
        self._partial.clear()
        self._skipping = True
        return f"{head} [... line cut: longer than {self.limit} bytes]"


def keep_tail(tail: bytearray, data: bytes, size: int) -> None:
    """Append `data` to `tail`, keeping the last `size` bytes before trailing whitespace (and a
    little of that), so `tail.strip()[-size:]` is what the whole output's would be."""
    tail += data
    if len(tail) > 3 * size:
        end = len(tail.rstrip())
        del tail[end + size :]
        del tail[: max(0, end - size)]


async def _pump(reader: asyncio.StreamReader, stream: str, sink: LineSink, keep: Callable[[bytes], None]) -> None:
    splitter = LineSplitter()
    while data := await reader.read(CHUNK_BYTES):
        keep(data)
        for line in splitter.feed(data):
            sink(stream, line)
    for line in splitter.finish():
        sink(stream, line)


async def communicate(proc: asyncio.subprocess.Process, *, stderr_tail: int) -> tuple[bytes, bytes]:
    """Like `proc.communicate()`, but every line goes to the run log as it is read.

    Returns all of stdout and about the last `stderr_tail` bytes of stderr (see `keep_tail`).
    On cancellation the readers stop; stopping the process is the caller's job.
    """
    assert proc.stdout is not None and proc.stderr is not None
    sink = current_sink()
    out: list[bytes] = []
    err = bytearray()
    pumps = [
        asyncio.ensure_future(_pump(proc.stdout, "stdout", sink, out.append)),
        asyncio.ensure_future(_pump(proc.stderr, "stderr", sink, lambda data: keep_tail(err, data, stderr_tail))),
    ]
    try:
        await asyncio.gather(*pumps)
    finally:
        for pump in pumps:
            pump.cancel()  # when the other one failed (gather cancels both when it is cancelled itself)
    await proc.wait()
    return b"".join(out), bytes(err)
