"""Cancellation tokens for runs that cannot be cancelled by cancelling a task (sync flows)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class CancelToken:
    """A thread-safe, one-way switch that asks a run to stop.

    Sync flows check it between nodes and between batch items, and wake up from a retry wait
    when it flips. Async runs given a token also cancel their task when it flips, so in-flight
    work stops at once rather than at the next node. A token can be cancelled from any thread
    (for example a signal handler) and cannot be reset: a cancelled run stays cancelled.
    """

    __slots__ = ("_callbacks", "_event", "_lock", "is_set", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None
        # A plain attribute mirror of the event, read between nodes and items: hot loops check it.
        self.is_set = False

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._event.is_set()

    def cancel(self, reason: str | None = None) -> None:
        """Ask the run to stop; the first reason given is kept. Later calls do nothing."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self.is_set = True
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancellation; True if cancelled."""
        return self._event.wait(timeout)

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once on cancellation (at once if already cancelled).

        Returns a function that unregisters it, so a finished run leaves nothing behind.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)

                def remove() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return remove
        callback()
        return lambda: None

    def __repr__(self) -> str:
        state = f"cancelled: {self.reason!r}" if self.cancelled else "active"
        return f"<CancelToken {state}>"
