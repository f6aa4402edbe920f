"""A minimal level-triggered controller loop: wake on relevant store events, reconcile everything."""

from __future__ import annotations

import asyncio
import logging
import time

from .core import Api
from .store import Event

log = logging.getLogger("kubesim")


class Controller:
    """Subclasses implement ``interested`` and ``reconcile``; ``reconcile`` returns the seconds until
    it needs to run again for a timer (deadlines, TTLs), or None."""

    debounce = 0.005

    def __init__(self, api: Api) -> None:
        self.api = api
        self._wake = asyncio.Event()
        self._next: float | None = None
        api.store.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if self.interested(event):
            self._wake.set()

    def interested(self, event: Event) -> bool:
        raise NotImplementedError

    def reconcile(self) -> float | None:
        raise NotImplementedError

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self._wake.set()
        while True:
            timeout = None if self._next is None else max(0.0, self._next - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass  # a timer is due: reconcile below
            self._wake.clear()
            await asyncio.sleep(self.debounce)
            try:
                again = self.reconcile()
            except Exception:
                # A controller bug must be visible but must not stop the simulator; the test
                # that triggered it fails on the missing effect.
                log.exception("%s reconcile failed", type(self).__name__)
                again = 1.0
            self._next = None if again is None else time.monotonic() + again
