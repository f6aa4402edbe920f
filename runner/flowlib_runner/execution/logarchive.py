"""The run log's archive: what ``RunLogger`` wrote in one attempt, saved to the run's store at its end.

Why: a runner pod's log lives as long as the pod, and the run someone wants to debug (cancelled,
failed, lost) is the one whose pods are gone: a cancelled run's Job is deleted, and with it its
pods and their logs. So each attempt keeps a copy of its log lines and writes it to the run's store
when it ends (``logs/attempt-<n>``, compressed, ``store.parts``); ``flowctl logs RUN`` prints the
archive when no runner pod is left.

``LogArchive`` is a sink wrapped around the real one: every line goes on to it unchanged, and a
copy stays in memory, bounded: the first ``HEAD_CHARS`` characters of the log and the last
``TAIL_CHARS`` (a line in the middle of a huge log is what is dropped, and the archive says how many
were). The lines arrive masked (``RunLogger`` masks each message before its sink sees it), so the
archive holds what ``kubectl logs`` shows, secrets as ``***``.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable

from flowlib_runner.store import RunStore
from flowlib_runner.store.parts import Kept, keep, read

HEAD_CHARS = 256 * 1024
"""The start of the log the archive always keeps."""
TAIL_CHARS = 3840 * 1024
"""The end of the log the archive keeps (with the head: 4 MiB of text at most)."""
FOLDER = "logs"
_ATTEMPT = re.compile(r"^logs/attempt-(\d+)/\d+$")


def attempt_folder(attempt: int) -> str:
    return f"{FOLDER}/attempt-{attempt}"


class LogArchive:
    """A log sink that passes every line to ``sink`` and keeps a bounded copy (module docstring)."""

    def __init__(self, sink: Callable[[str], None], *, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> None:
        self.sink = sink
        self.head_limit, self.tail_limit = head, tail
        self.head: list[str] = []
        self.tail: deque[str] = deque()
        self._head_chars = 0
        self._tail_chars = 0
        self.dropped = 0
        self.dropped_chars = 0
        self._lock = threading.Lock()
        flush = getattr(sink, "flush", None)
        if flush is not None:
            self.flush: Callable[[], None] = flush  # RunLogger flushes its sink through this

    def __call__(self, line: str) -> None:
        self.sink(line)
        size = len(line) + 1
        with self._lock:
            if self._head_chars + size <= self.head_limit and not self.tail:
                self.head.append(line)
                self._head_chars += size
                return
            self.tail.append(line)
            self._tail_chars += size
            while self._tail_chars > self.tail_limit and self.tail:
                old = self.tail.popleft()
                self._tail_chars -= len(old) + 1
                self.dropped += 1
                self.dropped_chars += len(old) + 1

    def text(self) -> str:
        """The archived log: its lines, with a line saying what was left out of the middle, if anything."""
        with self._lock:
            lines = list(self.head)
            if self.dropped:
                lines.append(
                    f"... {self.dropped} line(s) ({self.dropped_chars} characters) left out of the archive here: "
                    f"it keeps the first {self.head_limit // 1024} KiB and the last {self.tail_limit // 1024} KiB "
                    "of a log ..."
                )
            lines.extend(self.tail)
        return "".join(line + "\n" for line in lines)

    async def save(self, store: RunStore, attempt: int) -> Kept:
        """Write the archive as attempt ``attempt``'s log (replacing one of the same attempt)."""
        return await keep(store, attempt_folder(attempt), self.text().encode("utf-8"))


async def archived_attempts(store: RunStore) -> list[int]:
    """The attempts whose log ``store`` holds, in order."""
    found = {int(m.group(1)) for name in await store.names(FOLDER + "/") if (m := _ATTEMPT.match(name))}
    return sorted(found)


async def read_log(store: RunStore, attempt: int) -> str | None:
    """Attempt ``attempt``'s archived log (None: not archived); ``StoreError`` when it is damaged."""
    data = await read(store, attempt_folder(attempt))
    return None if data is None else data.decode("utf-8", errors="replace")
