"""`flowctl submit --watch` and `flowctl status --watch`: the run's report and node tree, live, until
the run ends (what `argo submit --watch` shows for a workflow).

The report is `flowctl status`'s (``render.status_report``), so the two never disagree. Two ways to
show it, chosen by where stdout goes:

- a terminal: the report is redrawn in place at every look (cursor up, clear), so the ages and the
  running node tick; lines are cut to the terminal's width and the report to its height, because a
  wrapped or scrolled-off line would throw the redraw off;
- anything else (a CI log, a pipe, a file): a report is printed only when what it shows changed,
  with a blank line between reports, and never an escape code. "Changed" ignores the clock: the
  report is compared as it reads at a fixed moment, so a run that makes no progress prints nothing.

A run that stops at an approval node (Suspended) is watched on: someone may decide meanwhile, and
the report says how. The watch ends when the phase is final and returns the FlowRun, so the command
exits with the run's result.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.times import parse_time
from flowlib_runner.flowctl.clusterapi import ClusterApi, ClusterError
from flowlib_runner.flowctl.render import status_report
from flowlib_runner.kube.client import ApiError

CURSOR_UP = "\r\x1b[{}A"
"""To the first column, N lines up (CUU, understood by every terminal that runs kubectl)."""
CLEAR_LINE_END = "\x1b[K"
CLEAR_SCREEN_END = "\x1b[J"
STEADY_CLOCK = datetime(1970, 1, 1, tzinfo=UTC)


def redraws(stream: Any) -> bool:
    """Whether ``stream`` is a terminal that understands cursor movement (not TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def watch_report(flowrun: dict[str, Any], now: datetime, prog: str = "flowctl") -> list[str]:
    """`flowctl status`'s report, plus how to decide when the run waits at an approval node."""
    lines = status_report(flowrun, now)
    status = flowrun.get("status") or {}
    waiting = status.get("suspended") if status.get("phase") == "Suspended" else None
    if isinstance(waiting, dict):
        actions = "|".join(waiting.get("actions") or []) or "default"
        asks = f": {waiting['message']}" if waiting.get("message") else ""
        lines.append(
            f"Waiting:    at {waiting.get('node')}{asks} -- decide with "
            f"`{prog} approve {flowrun['metadata']['name']} --action {actions}`"
        )
    return lines


def _steady_now(flowrun: dict[str, Any]) -> datetime:
    """A clock that does not move: the run's creation time, so every age and elapsed time in the
    report is a function of the object alone (see the module docstring)."""
    return parse_time(flowrun["metadata"].get("creationTimestamp")) or STEADY_CLOCK


def fit(lines: list[str], width: int, height: int, more: str) -> list[str]:
    """``lines`` cut to a terminal of ``width`` x ``height``: one column short of the width (a
    character in the last column wraps on some terminals) and one line short of the height, with a
    last line saying how many were left out."""
    cut = [line[: max(1, width - 1)] for line in lines]
    room = max(2, height - 1)
    if len(cut) <= room:
        return cut
    kept = room - 1
    return [*cut[:kept], f"... {len(cut) - kept} more lines ({more})"[: max(1, width - 1)]]


@dataclass
class TreeWatcher:
    """Shows FlowRun ``run`` until its phase is final; see the module docstring."""

    api: ClusterApi
    run: str
    write: Callable[[str], None]
    """Writes text to stdout as is (the caller handles a closed pipe)."""
    interactive: bool
    """Redraw in place (a terminal) or print each changed report (anything else)."""
    prog: str = "flowctl"
    poll: float = 0.5
    """Seconds between looks at the FlowRun."""
    terminal_size: Callable[[], os.terminal_size] = shutil.get_terminal_size
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _drawn: int = 0
    _shown: list[str] | None = None

    async def watch(self) -> dict[str, Any]:
        """Show the run at every look until it has finished; return the final FlowRun."""
        seen = False
        while True:
            try:
                flowrun = await self.api.get_run(self.run)
            except ClusterError as error:
                cause = error.__cause__
                if seen and isinstance(cause, ApiError) and cause.not_found:
                    raise ClusterError(
                        f'FlowRun "{self.run}" was deleted from namespace "{self.api.namespace}" before it finished'
                    ) from error
                raise
            seen = True
            self.show(flowrun)
            if ((flowrun.get("status") or {}).get("phase")) in FINISHED_PHASES:
                return flowrun
            await asyncio.sleep(self.poll)

    def show(self, flowrun: dict[str, Any]) -> None:
        """One look: redraw on a terminal; elsewhere print the report if it reads differently."""
        if self.interactive:
            self._redraw(watch_report(flowrun, self.clock(), self.prog))
            return
        steady = watch_report(flowrun, _steady_now(flowrun), self.prog)
        if steady == self._shown:
            return
        separator = "\n" if self._shown is not None else ""
        self._shown = steady
        self.write(separator + "\n".join(watch_report(flowrun, self.clock(), self.prog)) + "\n")

    def _redraw(self, lines: list[str]) -> None:
        size = self.terminal_size()
        lines = fit(lines, size.columns, size.lines, f"{self.prog} status {self.run} shows them all")
        back = CURSOR_UP.format(self._drawn) if self._drawn else ""
        self.write(back + "".join(line + CLEAR_LINE_END + "\n" for line in lines) + CLEAR_SCREEN_END)
        self._drawn = len(lines)
