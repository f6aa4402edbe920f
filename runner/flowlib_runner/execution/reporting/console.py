"""`ConsoleReporter`: the live terminal view of `flowctl run` (node states, batch progress bars).

Why it refreshes from its own asyncio task instead of rich's refresh thread: the tracker is
mutated by the run on the event loop, so reading it from another thread could see a dict change
size mid-iteration. Log lines are printed through the same `Console`, above the live view.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from flowlib_api.runstatus import NodeState, RunStatus
from flowlib_runner.execution.masking import Masker
from flowlib_runner.execution.reporting.base import ErrorCallback, PeriodicReporter
from flowlib_runner.execution.reporting.tracker import StatusTracker

PHASE_STYLES = {
    "Pending": "dim",
    "Running": "cyan",
    "Retrying": "yellow",
    "Succeeded": "green",
    "Failed": "bold red",
    "Cancelled": "magenta",
}
MAX_ROWS = 30


class ConsoleReporter(PeriodicReporter):
    """Redraws a table of node states on `console` a few times a second; leaves the final one on screen."""

    def __init__(
        self,
        console: Console,
        *,
        title: str,
        interval: float = 0.25,
        on_error: ErrorCallback | None = None,
        masker: Masker | None = None,
    ) -> None:
        super().__init__(interval=interval, on_error=on_error, masker=masker)
        self.console = console
        self.title = title
        self._live: Live | None = None

    async def start(self, tracker: StatusTracker) -> None:
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._live.start()
        await super().start(tracker)

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        if self._live is None:
            raise RuntimeError("ConsoleReporter.publish called before start")
        self._live.update(render(status, self.title), refresh=True)
        if final:
            self._live.stop()
            self._live = None


def render(status: RunStatus, title: str) -> RenderableType:
    """The view of one status: a header line and one row per node (the latest ones if there are many)."""
    header = Text.assemble(
        (title, "bold"),
        "  ",
        (status.phase, PHASE_STYLES.get(status.phase, "")),
        f"  nodes {status.progress}",
        f"  at {status.current_node}" if status.current_node else "",
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    for column in ("node", "phase", "attempt", "visits", "action", "items", "time"):
        table.add_column(column)
    rows = list(status.nodes.items())
    hidden = len(rows) - MAX_ROWS
    for name, node in rows[-MAX_ROWS:]:
        table.add_row(
            name,
            Text(node.phase, PHASE_STYLES.get(node.phase, "")),
            str(node.attempts),
            str(node.visits),
            node.action or "",
            _items(node),
            "" if node.duration_seconds is None else f"{node.duration_seconds:.2f}s",
        )
    parts: list[RenderableType] = [header]
    if hidden > 0:
        parts.append(Text(f"… {hidden} earlier nodes", style="dim"))
    parts.append(table)
    parts.extend(Text(note, style="dim") for note in status.notes)
    if status.message:
        parts.append(Text(status.message, style=PHASE_STYLES.get(status.phase, "")))
    return Group(*parts)


def _items(node: NodeState) -> RenderableType:
    items = node.items
    if items is None:
        return ""
    finished = items.done  # failed items included
    counts = f" {finished}/{items.total if items.total is not None else '?'}"
    if items.failed:
        counts += f" ({items.failed} failed)"
    if items.total is None:
        return Text(counts.strip())
    bar = ProgressBar(total=max(items.total, 1), completed=finished, width=20)
    return _row(bar, counts)


def _row(bar: ProgressBar, counts: str) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    grid.add_row(bar, counts.strip())
    return grid
