"""Run logs: a line per flowlib event worth reading, plus user output, attributed to the node running.

Why one stream: in a pod, `kubectl logs` shows only stdout/stderr, so what the runner says about the
flow and what user code prints or logs must be interleaved in one place, each line saying which
node (path and attempt) it came from. User output is attributed with `flowlib.current_path()`,
which follows the node into asyncio tasks and `asyncio.to_thread`.

What gets a line (the policy; `RunLogger`'s arguments tune it):
- the run's start and end, every failure, cancellation and retry, and all user output (shell and
  command nodes' stdout and stderr lines too, as they are printed): always;
- a node's `started`/`finished` lines for its first `visit_lines` (10) visits. A node visited more
  often (a loop) is summarised after that: one visit per `summary_interval` (1 s) still gets its
  lines, numbered (`started (...), visit 57`), and a `NodeVisits` line sums up the visits in between
  (visits so far, time in all and on average, the last one's action) before the next logged visit
  of any node of its flow, before a failure, and when its flow ends. The first such line says that summarising
  began. flowlib does the counting (the logger asks for it through `visit_events` and
  `visit_interval`; see `flowlib.events.NodeVisits`), so a summarised visit costs the log nothing.
  Why: a 10,000-step loop wrote 20,000 identical lines, which buried everything else in `kubectl
  logs` and cost more than the loop itself; a slow loop (a visit a second or slower) still gets
  every line, so nothing a reader follows live is lost.
- batch progress: at most once per `progress_interval` (1 s) for the whole run, and when a batch
  completes (flowlib already coalesces its progress events to about a thousand per batch).

Masking: with a `masker` (`execution.masking`) every line's message is masked before it is
formatted -- runner lines, errors, user output and shell lines alike -- so a secret a command
echoes shows as `***`. Without one (no secrets) nothing is done per line.

Flushing (`stream_sink`): warnings, errors, user output and the run's last lines are flushed at
once -- they are what someone reads after a crash or an OOM kill, when a buffer would be lost. The
runner's INFO lines are buffered and flushed at most `flush_interval` (0.1 s) later by the process's
flusher thread, so `kubectl logs -f` stays live even while sync user code holds the event loop.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from flowlib import current_path
from flowlib import events as ev
from flowlib_api.times import rfc3339_millis
from flowlib_runner.definition.factories.nodes import ErrorHandled
from flowlib_runner.definition.factories.pause import SuspendRun
from flowlib_runner.definition.runkinds.streams import command_output
from flowlib_runner.execution.masking import Masker
from flowlib_runner.execution.reporting.dispatch import TableObserver
from flowlib_runner.execution.reporting.tracker import describe_error

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
Sink = Callable[[str], None]
_PADDED = {level: f"{level:<7}" for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


class _Flusher:
    """One daemon thread for the process that flushes each waiting sink once its interval is up.

    Why not a `threading.Timer` per wait: a run that logs steadily started one thread every
    interval (ten a second), and each start cost more than the lines it flushed.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: dict[StreamSink, float] = {}  # sink -> time.monotonic() by which to flush it
        self._thread: threading.Thread | None = None

    def schedule(self, sink: StreamSink, interval: float) -> None:
        """Flush `sink` at most `interval` s from now (a sink already waiting keeps its time)."""
        with self._wake:
            if sink in self._due:
                return
            self._due[sink] = time.monotonic() + interval
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flowlib-log-flusher", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                sink, due = min(self._due.items(), key=lambda item: item[1])
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue  # a sooner deadline may have come in meanwhile
                del self._due[sink]
            sink._timed_flush()  # outside our lock: the sink takes its own


_FLUSHER = _Flusher()


class StreamSink:
    """A sink writing lines to `stream`; `flush()` now, or on its own at most `flush_interval` s later.

    Why a thread rather than the event loop: sync user code may hold the loop for minutes, and the
    lines written before it must still reach `kubectl logs -f`. The process's one flusher thread
    (`_Flusher`) is told when a buffered line starts waiting, so an idle run costs it nothing.

    When the reader goes away (`flowctl run f.yaml | head`), later lines are dropped instead of
    failing the run: the run's outcome is its status and exit code, not whether anyone still reads.
    """

    def __init__(self, stream: TextIO, *, flush_interval: float = 0.1) -> None:
        self.stream = stream
        self.flush_interval = flush_interval
        self.closed = False
        self._lock = threading.Lock()
        self._waiting = False  # a buffered line waits for the flusher

    def __call__(self, line: str) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.stream.write(line + "\n")
            except (BrokenPipeError, ValueError):  # reader gone, or the stream closed under us
                self.closed = True
                return
            if not self._waiting:
                self._waiting = True
                _FLUSHER.schedule(self, self.flush_interval)

    def flush(self) -> None:
        """Write out buffered lines now (the flusher, when it comes, finds nothing to do)."""
        with self._lock:
            self._flush_locked()

    def _timed_flush(self) -> None:
        with self._lock:
            self._waiting = False
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.closed:
            return
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True


def stream_sink(stream: TextIO, *, flush_interval: float = 0.1) -> StreamSink:
    """A sink for `RunLogger` writing to `stream` (see `StreamSink` and the module docstring)."""
    return StreamSink(stream, flush_interval=flush_interval)


class _Visits:
    """What the log remembers of one node path: its last logged visit, and whether it was summarised."""

    __slots__ = ("summarised", "visit")

    def __init__(self) -> None:
        self.visit = 0
        self.summarised = False


class RunLogger(TableObserver):
    """Formats log lines and writes them to a sink; also the flowlib observer that logs events.

    The policy (which events get a line, when lines are flushed) is the module docstring's.
    """

    def __init__(
        self,
        sink: Sink,
        fmt: LogFormat = "text",
        *,
        progress_interval: float = 1.0,
        info_events: bool = True,
        visit_lines: int = 10,
        summary_interval: float = 1.0,
        masker: Masker | None = None,
    ) -> None:
        """`info_events=False` keeps only warnings and errors about events (the live view shows the rest).

        `visit_lines` visits of a node are logged in full, later ones summarised (see the module
        docstring); `summary_interval` is the least time between two summarised lines of a node.
        `masker` masks every message (see the module docstring).
        """
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(LOG_FORMATS)}")
        if visit_lines < 1:
            raise ValueError(f"visit_lines must be at least 1, not {visit_lines}")
        self.sink = sink
        self.fmt = fmt
        self.progress_interval = progress_interval
        self.info_events = info_events
        self.visit_lines = visit_lines
        self.summary_interval = summary_interval
        self._masker = masker if masker else None
        # flowlib's coalescing request (see flowlib.events.NodeVisits): it implements the policy.
        self.visit_events = visit_lines
        self.visit_interval = summary_interval
        self._flush: Callable[[], None] | None = getattr(sink, "flush", None)
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, ...], int] = {}
        self._visits: dict[tuple[str, ...], _Visits] = {}
        self._progress_due = 0.0
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.FlowStarted: lambda e: self._event("INFO", e.path, "run started", "FlowStarted", e.time),
            ev.FlowFinished: self._flow_finished,
            ev.FlowFailed: self._flow_failed,
            ev.FlowCancelled: self._flow_cancelled,
            ev.NodeStarted: self._node_started,
            ev.NodeFinished: self._node_finished,
            ev.NodeFailed: self._node_failed,
            ev.NodeCancelled: lambda e: self._event(
                "WARNING", e.path, f"cancelled after {e.duration:.3f}s{self._visit(e.visit)}", "NodeCancelled", e.time
            ),
            ev.NodeVisits: self._node_visits,
            ev.RetryScheduled: self._retry,
            ev.BatchProgress: self._progress,
            ErrorHandled: self._error_handled,
        }

    # -- formatting -----------------------------------------------------------------------------------
    def line(
        self,
        level: str,
        path: tuple[str, ...],
        message: str,
        *,
        event: str | None = None,
        stream: str | None = None,
        logger: str | None = None,
        when: float | None = None,
    ) -> None:
        """Write one line about `path` (the node's attempt is added when known).

        Lines that are not runner INFO lines (warnings, errors, user output) are flushed at once.
        """
        if event is not None and level == "INFO" and not self.info_events:
            return
        if self._masker is not None:
            message = self._masker.mask(message)
        stamp = rfc3339_millis(time.time() if when is None else when)
        node = "/".join(path)
        attempt = self._attempts.get(path) if path else None
        if self.fmt == "json":
            record: dict[str, Any] = {"time": stamp, "level": level, "node": node, "attempt": attempt}
            for key, value in (("event", event), ("stream", stream), ("logger", logger)):
                if value is not None:
                    record[key] = value
            record["message"] = message
            text = json.dumps(record, ensure_ascii=False)
        else:
            where = f"{node}#{attempt}" if attempt is not None else (node or "run")
            source = f" {logger}:" if logger else (f" {stream}:" if stream else "")
            text = f"{stamp} {level:<7} [{where}]{source} {message}"
        with self._lock:
            self.sink(text)
            if self._flush is not None and (event is None or level != "INFO"):
                self._flush()

    def _event(self, level: str, path: tuple[str, ...], message: str, event: str, when: float) -> None:
        """`line` for flowlib events: positional and with a text fast path."""
        if level == "INFO" and not self.info_events:
            return
        if self.fmt != "text":
            self.line(level, path, message, event=event, when=when)
            return
        if self._masker is not None:
            message = self._masker.mask(message)
        attempt = self._attempts.get(path)
        where = "/".join(path) or "run"
        if attempt is not None:
            where = f"{where}#{attempt}"
        text = f"{rfc3339_millis(when)} {_PADDED.get(level) or level} [{where}] {message}"
        with self._lock:
            self.sink(text)
            if self._flush is not None and level != "INFO":
                self._flush()

    def flush(self) -> None:
        """Flush the sink now, if it buffers (the end of a run does it)."""
        if self._flush is not None:
            with self._lock:
                self._flush()

    # -- event handlers (routed by TableObserver) ---------------------------------------------------

    def _visit(self, visit: int) -> str:
        """`, visit N` once a node is summarised, so a failure says which visit failed."""
        return f" (visit {visit})" if visit > self.visit_lines else ""

    def _flow_finished(self, e: ev.FlowFinished) -> None:
        self._event("INFO", e.path, f"run finished{_action(e.action)}", "FlowFinished", e.time)
        if not e.path:
            self.flush()

    def _flow_failed(self, e: ev.FlowFailed) -> None:
        if isinstance(e.error, SuspendRun):
            self._event("INFO", e.path, f"run stopped: {e.error}", "FlowSuspended", e.time)
            return
        self._event("ERROR", e.path, f"run failed: {describe_error(e.error)}", "FlowFailed", e.time)

    def _flow_cancelled(self, e: ev.FlowCancelled) -> None:
        self._event("WARNING", e.path, f"run cancelled{_reason(e.reason)}", "FlowCancelled", e.time)

    def _record(self, path: tuple[str, ...]) -> _Visits:
        record = self._visits.get(path)
        if record is None:
            record = self._visits[path] = _Visits()
        return record

    def _node_started(self, e: ev.NodeStarted) -> None:
        self._attempts[e.path] = 1
        self._record(e.path).visit = e.visit
        suffix = f", visit {e.visit}" if e.visit > self.visit_lines else ""
        self._event("INFO", e.path, f"started ({e.kind}){suffix}", "NodeStarted", e.time)

    def _node_finished(self, e: ev.NodeFinished) -> None:
        record = self._visits.get(e.path)
        visit = record.visit if record is not None else 1
        what = f"finished visit {visit}" if visit > self.visit_lines else "finished"
        self._event("INFO", e.path, f"{what} in {e.duration:.3f}s{_action(e.action)}", "NodeFinished", e.time)

    def _node_visits(self, e: ev.NodeVisits) -> None:
        record = self._record(e.path)
        note = ""
        if not record.summarised:
            record.summarised = True
            note = (
                f" (visited more than {self.visit_lines} times: from now on at most one visit per "
                f"{self.summary_interval:g}s is logged, and lines like this one sum up the others)"
            )
        self._attempts[e.path] = e.attempts
        message = (
            f"{e.visits} visits, {e.seconds:.3f}s in all ({1000 * e.seconds / max(e.visits, 1):.3g} ms on average), "
            f"the last{_action(e.action) or ' -> (no action)'}{note}"
        )
        self._event("INFO", e.path, message, "NodeVisits", e.time)

    def _node_failed(self, e: ev.NodeFailed) -> None:
        if isinstance(e.error, SuspendRun):
            self._event("INFO", e.path, f"{e.error}{self._visit(e.visit)}", "NodeWaiting", e.time)
            return
        self._event(
            "ERROR",
            e.path,
            f"failed after {e.duration:.3f}s{self._visit(e.visit)}: {describe_error(e.error)}",
            "NodeFailed",
            e.time,
        )

    def _retry(self, e: ev.RetryScheduled) -> None:
        what = f"item {e.item} attempt {e.attempt}" if e.item is not None else f"attempt {e.attempt}"
        message = f"{what}{self._visit(e.visit)} failed: {describe_error(e.error)}; retrying in {e.delay:.3g}s"
        self._event("WARNING", e.path, message, "RetryScheduled", e.time)
        if e.item is None:
            self._attempts[e.path] = e.attempt + 1

    def _error_handled(self, e: ErrorHandled) -> None:
        message = f"failed, taken by the error edge: {describe_error(e.error)}"
        self._event("WARNING", e.path, message, "ErrorHandled", e.time)

    def _progress(self, e: ev.BatchProgress) -> None:
        # Lines are due once per `progress_interval` for the whole run, and when a batch completes.
        if e.time < self._progress_due and e.done + e.failed != e.total:
            return
        self._progress_due = e.time + self.progress_interval
        total = "?" if e.total is None else str(e.total)
        failed = f", {e.failed} failed" if e.failed else ""
        self.line(
            "INFO",
            e.path,
            f"items {e.done + e.failed}/{total} done{failed}",
            event="BatchProgress",
            when=e.time,
        )

    # -- user output ------------------------------------------------------------------------------------
    @contextmanager
    def capture(self) -> Iterator[None]:
        """Route `sys.stdout`, `sys.stderr` and the `logging` root logger into this log while active.

        Also the lines of shell and command nodes (`definition.runkinds.streams`), levelled as
        user output is: stdout INFO, stderr WARNING.
        """
        out, err = _NodeStream(self, "stdout", "INFO"), _NodeStream(self, "stderr", "WARNING")
        handler = _NodeLogHandler(self)
        root = logging.getLogger()
        saved = sys.stdout, sys.stderr, root.level
        sys.stdout, sys.stderr = out, err
        commands = command_output.set(self._command_line)
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)  # user code's logging.info() should show, as print() does
        try:
            yield
        finally:
            out.flush_all()
            err.flush_all()
            self.flush()
            root.removeHandler(handler)
            command_output.reset(commands)
            sys.stdout, sys.stderr, level = saved
            root.setLevel(level)

    def _command_line(self, stream: str, text: str) -> None:
        """A line a shell or command node's process printed, read in the node's task."""
        self.line("WARNING" if stream == "stderr" else "INFO", current_path(), text, stream=stream)


def _action(action: object) -> str:
    return "" if action is None else f" -> {action}"


def _reason(reason: str | None) -> str:
    return f": {reason}" if reason else ""


class _NodeStream(io.TextIOBase):
    """A text stream that turns writes into log lines of the node that wrote them (line-buffered)."""

    encoding = "utf-8"  # what callers that encode before writing (click, rich) look for

    def __init__(self, log: RunLogger, name: str, level: str) -> None:
        super().__init__()
        self._log = log
        self._name = name
        self._level = level
        self._lock = threading.Lock()
        self._partial: dict[tuple[str, ...], str] = {}

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        path = current_path()
        with self._lock:
            pending = self._partial.pop(path, "") + text
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[path] = rest
        for line in lines:
            self._log.line(self._level, path, line, stream=self._name)
        return len(text)

    def flush_all(self) -> None:
        """Write out partial lines (a last `print(..., end='')`) when the capture ends."""
        with self._lock:
            pending, self._partial = self._partial, {}
        for path, text in pending.items():
            self._log.line(self._level, path, text, stream=self._name)


class _NodeLogHandler(logging.Handler):
    """Logging handler writing records as run log lines of the node that logged them."""

    def __init__(self, log: RunLogger) -> None:
        super().__init__(logging.NOTSET)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._log.line(record.levelname, current_path(), message, logger=record.name, when=record.created)
        except Exception:
            self.handleError(record)  # logging's own contract: report to stderr, never raise
