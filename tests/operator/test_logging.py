"""The operator's log at INFO keeps what people read it for and drops per-event noise."""

from __future__ import annotations

import logging

from flowlib_operator.main import QuietWatchCache


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, (), None)


def test_watch_cache_successes_are_dropped_everything_else_kept() -> None:
    quiet = QuietWatchCache()
    assert not quiet.filter(record("Handler 'register.<locals>.pod_event' succeeded."))
    assert not quiet.filter(record("Handler 'register.<locals>.flowrun_event' succeeded."))
    assert quiet.filter(record("Handler 'register.<locals>.flowrun_created' succeeded."))
    assert quiet.filter(record("Handler 'register.<locals>.pod_event' failed: boom", logging.ERROR))
    assert quiet.filter(record("Creation is processed: 1 succeeded; 0 failed."))
