"""Blocking user code for test_threads.py: inline Python imports this module (and `call` targets
name its functions), so the test and the code running in worker threads share these objects.

Every wait here has a timeout, so a test whose code does not run concurrently fails instead of
hanging.
"""

from __future__ import annotations

import threading
import time
from typing import Any

WAIT = 10.0  # seconds any wait here gives up after

barrier = threading.Barrier(1, timeout=WAIT)
release = threading.Event()
started = threading.Semaphore(0)
lock = threading.Lock()
attempts: dict[Any, int] = {}


def reset(parties: int = 1) -> None:
    global barrier
    barrier = threading.Barrier(parties, timeout=WAIT)
    release.clear()
    while started.acquire(blocking=False):
        pass
    attempts.clear()


def attempt(item: Any) -> int:
    """Count an attempt on ``item``; its number, from 1."""
    with lock:
        attempts[item] = attempts.get(item, 0) + 1
        return attempts[item]


def at_barrier(item: int) -> int:
    """A plain function for `call`: passes only once every party is blocked here at once."""
    barrier.wait()
    time.sleep(0.002 * (5 - item % 5))  # later items finish first: results must still be in order
    return item * 10


def thread_name(item: Any) -> str:
    return threading.current_thread().name


def sleep_long(item: Any) -> Any:
    started.release()
    time.sleep(60)  # a C call: only abandoning the thread ends the run before this returns
    return item


def wait_started(count: int) -> bool:
    """Whether ``count`` items started their long sleep within the time limit."""
    deadline = time.monotonic() + WAIT
    return all(started.acquire(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count))
