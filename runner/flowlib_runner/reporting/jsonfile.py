"""`JsonFileReporter`: keeps a JSON file holding the run's status up to date.

Why atomic: other programs (a CI step, a sidecar, `watch cat`) read the file while the run writes
it, so each version is written to a temporary file in the same directory and renamed over the old
one; a reader sees the previous status or the next, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flowlib_runner.reporting.base import ErrorCallback, PeriodicReporter
from flowlib_runner.status import RunStatus


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename (same directory, so the same file system)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class JsonFileReporter(PeriodicReporter):
    """Rewrites `path` with the status, about once per `interval` s while running, at once at the end."""

    def __init__(self, path: str | os.PathLike[str], *, interval: float = 1.0, on_error: ErrorCallback | None = None):
        super().__init__(interval=interval, on_error=on_error)
        self.path = Path(path)

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        # A status is at most 64 KiB: writing it inline is cheaper than a hop to a thread.
        write_atomically(self.path, status.to_json(indent=2) + "\n")
