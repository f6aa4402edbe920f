"""When an observed async run lets the event loop in.

A node whose code never awaits (sync hooks, a plain expression) completes without suspending, and
so does a loop of such nodes or a batch of such items: the walk or batch would hold the event loop
until it ends. In a runner that is a bug, not a speed-up: signal handlers (SIGTERM from Kubernetes,
Ctrl-C), a cancel token's task cancellation and status reporters are all callbacks on that loop.
So runs with a context (an observer or a cancel token) yield with ``asyncio.sleep(0)`` once
``YIELD_INTERVAL`` has passed since they last did. Runs without one keep PocketFlow's scheduling
exactly (the compat suite compares the order of side effects).

Walks read the clock once per step anyway (visit durations), so they compare against a deadline.
Batches run items far cheaper than a clock read, so :class:`Pacer` reads it only every so many items,
a number it adapts so that checks happen about every ``CHECK_INTERVAL``: one integer comparison per
item in between.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

YIELD_INTERVAL = 0.02
CHECK_INTERVAL = 0.005
MAX_CHECK_STEP = 4096
# The check-at value of runs that never pace (no context): no index reaches it.
NEVER = 1 << 62


class Pacer:
    """Tells a batch loop when to yield: once ``count >= check_at``, ``check_at = await turn(count)``.

    A pacer made with ``enabled=False`` (runs without context) never comes due.
    """

    __slots__ = ("_count", "_last_yield", "_time", "check_at", "pause")

    def __init__(self, *, enabled: bool = True) -> None:
        now = perf_counter()
        self.check_at = 1 if enabled else NEVER
        self.pause = False
        self._count = 0
        self._time = now
        self._last_yield = now

    def next_check(self, count: int) -> int:
        """The count of the next check; sets ``pause`` when the caller should ``await asyncio.sleep(0)``.

        ``count`` is how many items the batch has taken so far (it only grows).
        """
        now = perf_counter()
        done, elapsed = count - self._count, now - self._time
        step = int(done * CHECK_INTERVAL / elapsed) if elapsed > 0 else 2 * done
        self.check_at = count + max(1, min(step, MAX_CHECK_STEP))
        self._count, self._time = count, now
        self.pause = now - self._last_yield >= YIELD_INTERVAL
        if self.pause:
            self._last_yield = now
        return self.check_at

    async def turn(self, count: int) -> int:
        """:meth:`next_check`, letting the event loop in first when it is time; the next check."""
        check_at = self.next_check(count)
        if self.pause:
            await asyncio.sleep(0)
        return check_at
