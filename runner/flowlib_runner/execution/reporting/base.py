"""The reporter interface: how a run's status leaves the process.

A reporter is not an observer: it never sees single events (a big batch emits one per item). It
gets the `StatusTracker` when the run starts and the final `RunStatus` when it ends, and in between
reads snapshots at its own pace. `PeriodicReporter` implements the common case -- publish at once,
then at most every `interval` seconds while something changed, then the final status immediately --
so a new destination only writes `publish()`. The FlowRun reporter of the operator issue is one:
its `publish` patches `flowruns/status` and retries 409/429/5xx itself; a failed periodic publish is
reported through `on_error` and tried again at the next tick, the final one raises to the runner.
With a `masker` every status is masked before `publish` sees it (`execution.masking`), so no
destination can forget to.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from flowlib_api.runstatus import RunStatus
from flowlib_runner.execution.masking import Masker, mask_status
from flowlib_runner.execution.reporting.tracker import StatusTracker

ErrorCallback = Callable[["Reporter", BaseException], None]


class Reporter(ABC):
    """Where status goes. `start` is awaited before the flow starts, `finish` once after it ended."""

    @abstractmethod
    async def start(self, tracker: StatusTracker) -> None:
        """Begin following `tracker`; return quickly (start a background task if needed)."""

    @abstractmethod
    async def finish(self, status: RunStatus) -> None:
        """Publish the final `status` (must not be lost) and release resources; raise on failure."""


class PeriodicReporter(Reporter):
    """Coalescing publisher: first status at once, then at most one per `interval` s, final at once."""

    def __init__(
        self, *, interval: float = 1.0, on_error: ErrorCallback | None = None, masker: Masker | None = None
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.on_error = on_error
        self.masker = masker if masker else None
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def publish(self, status: RunStatus, *, final: bool) -> None:
        """Send one status; `final` is True exactly once, for the last one."""

    async def start(self, tracker: StatusTracker) -> None:
        self._task = asyncio.create_task(self._loop(tracker), name=f"{type(self).__name__} publisher")

    async def _loop(self, tracker: StatusTracker) -> None:
        seen = -1
        while True:
            # Once the run has ended, only finish() publishes: the end is told with what only the
            # end adds (the kept outputs' refs, their notes), never first by a periodic snapshot
            # that says the run ended without them while the last checkpoint is still being written.
            if tracker.version != seen and not tracker.ended:
                seen = tracker.version
                try:
                    await self.publish(mask_status(tracker.snapshot(), self.masker), final=False)
                    self.published += 1
                except Exception as error:  # reported, then retried on the next tick
                    if self.on_error is None:
                        raise
                    self.on_error(self, error)
            await asyncio.sleep(self.interval)

    async def finish(self, status: RunStatus) -> None:
        task, self._task = self._task, None
        loop_error: BaseException | None = None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # unlike `await task`, never mistakes its end for ours
            loop_error = None if task.cancelled() else task.exception()
        await self.publish(mask_status(status, self.masker), final=True)
        self.published += 1
        if loop_error is not None:
            raise loop_error
