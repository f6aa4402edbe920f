"""Run logs: one line per flowlib event, plus user output, all attributed to the node running.

Why one stream: in a pod, `kubectl logs` shows only stdout/stderr, so what the runner says about the
flow and what user code prints or logs must be interleaved in one place, each line saying which
node (path and attempt) it came from. User output is attributed with `flowlib.current_path()`,
which follows the node into asyncio tasks and `asyncio.to_thread`.

Batch progress is the exception to "one line per event": a 100,000-item pool emits one event per
item, so progress is logged at most once per `progress_interval` seconds for the whole run, and when a
batch completes. Every other event gets its line.
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
from flowlib_runner.reporting.tracker import describe_error
from flowlib_runner.status import rfc3339

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
Sink = Callable[[str], None]
_PADDED = {level: f"{level:<7}" for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


def stream_sink(stream: TextIO) -> Sink:
    """A sink writing each line to `stream` and flushing, so `kubectl logs -f` sees it at once.

    When the reader goes away (`flowctl run f.yaml | head`), later lines are dropped instead of
    failing the run: the run's outcome is its status and exit code, not whether anyone still reads.
    """
    closed = False

    def write(line: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except BrokenPipeError:
            closed = True

    return write


class RunLogger:
    """Formats log lines and writes them to a sink; also the flowlib observer that logs events."""

    def __init__(
        self, sink: Sink, fmt: LogFormat = "text", *, progress_interval: float = 1.0, info_events: bool = True
    ) -> None:
        """`info_events=False` keeps only warnings and errors about events (the live view shows the rest)."""
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(LOG_FORMATS)}")
        self.sink = sink
        self.fmt = fmt
        self.progress_interval = progress_interval
        self.info_events = info_events
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, ...], int] = {}
        self._progress_due = 0.0
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.FlowStarted: lambda e: self._event("INFO", e.path, "run started", "FlowStarted", e.time),
            ev.FlowFinished: self._flow_finished,
            ev.FlowFailed: lambda e: self._event(
                "ERROR", e.path, f"run failed: {describe_error(e.error)}", "FlowFailed", e.time
            ),
            ev.FlowCancelled: lambda e: self._event(
                "WARNING", e.path, f"run cancelled{_reason(e.reason)}", "FlowCancelled", e.time
            ),
            ev.NodeStarted: self._node_started,
            ev.NodeFinished: self._node_finished,
            ev.NodeFailed: lambda e: self._event(
                "ERROR",
                e.path,
                f"failed after {e.duration:.3f}s: {describe_error(e.error)}",
                "NodeFailed",
                e.time,
            ),
            ev.NodeCancelled: lambda e: self._event(
                "WARNING", e.path, f"cancelled after {e.duration:.3f}s", "NodeCancelled", e.time
            ),
            ev.RetryScheduled: self._retry,
            ev.BatchProgress: self._progress,
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
        """Write one line about `path` (the node's attempt is added when known)."""
        if event is not None and level == "INFO" and not self.info_events:
            return
        stamp = rfc3339(time.time() if when is None else when)
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

    def _event(self, level: str, path: tuple[str, ...], message: str, event: str, when: float) -> None:
        """`line` for flowlib events: positional and with a text fast path (a line per loop step)."""
        if level == "INFO" and not self.info_events:
            return
        if self.fmt != "text":
            self.line(level, path, message, event=event, when=when)
            return
        attempt = self._attempts.get(path)
        where = "/".join(path) or "run"
        if attempt is not None:
            where = f"{where}#{attempt}"
        text = f"{rfc3339(when)} {_PADDED.get(level) or level} [{where}] {message}"
        with self._lock:
            self.sink(text)

    # -- the observer ---------------------------------------------------------------------------------
    @property
    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """Event type -> handler, so a dispatcher can skip `on_event`'s lookup (see execute.Dispatch)."""
        return self._handlers

    def on_event(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"RunLogger got an event it does not know: {event!r}")
        handler(event)

    def _flow_finished(self, e: ev.FlowFinished) -> None:
        self._event("INFO", e.path, f"run finished{_action(e.action)}", "FlowFinished", e.time)

    def _node_started(self, e: ev.NodeStarted) -> None:
        self._attempts[e.path] = 1
        self._event("INFO", e.path, f"started ({e.kind})", "NodeStarted", e.time)

    def _node_finished(self, e: ev.NodeFinished) -> None:
        self._event(
            "INFO",
            e.path,
            f"finished in {e.duration:.3f}s{_action(e.action)}",
            "NodeFinished",
            e.time,
        )

    def _retry(self, e: ev.RetryScheduled) -> None:
        what = f"item {e.item} attempt {e.attempt}" if e.item is not None else f"attempt {e.attempt}"
        message = f"{what} failed: {describe_error(e.error)}; retrying in {e.delay:.3g}s"
        self._event("WARNING", e.path, message, "RetryScheduled", e.time)
        if e.item is None:
            self._attempts[e.path] = e.attempt + 1

    def _progress(self, e: ev.BatchProgress) -> None:
        # The hot path, one call per batch item: one comparison unless a line is due. Lines are due
        # once per `progress_interval` for the whole run, and when a batch completes.
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
        """Route `sys.stdout`, `sys.stderr` and the `logging` root logger into this log while active."""
        out, err = _NodeStream(self, "stdout", "INFO"), _NodeStream(self, "stderr", "WARNING")
        handler = _NodeLogHandler(self)
        root = logging.getLogger()
        saved = sys.stdout, sys.stderr, root.level
        sys.stdout, sys.stderr = out, err
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)  # user code's logging.info() should show, as print() does
        try:
            yield
        finally:
            out.flush_all()
            err.flush_all()
            root.removeHandler(handler)
            sys.stdout, sys.stderr, level = saved
            root.setLevel(level)


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
