"""Masking: values that came from Kubernetes Secrets never leave the runner in clear.

Why: a failing node's message goes to the FlowRun's status, a Warning Event and the pod log, and
whatever user code prints goes to the pod log; anyone who may read those (often more people than
may read the Secret) would see a token a command echoed, or a password in a stack of stderr. As CI
systems do, the runner replaces each secret value it knows of by ``***`` in everything it writes.

Which values: the runner knows which of its environment variables come from Secrets -- its own
FlowRun's ``spec.env`` entries with ``valueFrom.secretKeyRef`` (``secret_env_names``); their values
are in ``os.environ``. ``flowctl run --secret-env NAME`` marks names the same way on a laptop.
Each value is masked as it is, line by line when it has several lines (a log line holds one line of
a PEM key at most), and in the encodings it commonly reaches text in: base64, URL-quoted and
JSON-escaped. Values shorter than ``MIN_SECRET_CHARS`` are not masked: ``***`` for every ``1`` or
``on`` in a log would destroy the log and hide nothing.

Where it is applied (each place takes a ``Masker``): the run log's lines (``RunLogger``), the
statuses reporters publish (``PeriodicReporter``), the in-cluster runner's Events, and the process's
``sys.stdout``/``sys.stderr`` (``masked_streams``) for everything else written there. A run with no
secrets passes no masker at all, so the hot paths pay one ``is None`` test.

Limits: output written straight to file descriptors (a child process not run by a shell node,
``os.write(1, ...)``) bypasses it, and a value a command transforms (reverses, hashes, cuts) is not
recognised.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO
from urllib.parse import quote

from flowlib_api.runstatus import RunStatus

MASK = "***"
MIN_SECRET_CHARS = 4
"""Shorter values are not masked (see the module docstring)."""
MAX_PENDING_CHARS = 65536
"""A `MaskingStream` holds at most this much of an unfinished line before writing it out masked."""


def _spellings(value: str) -> set[str]:
    """The forms of a secret value worth looking for in text (see the module docstring)."""
    if len(value) < MIN_SECRET_CHARS:
        return set()  # too short to mask (module docstring), and so are its encodings
    found = {value}
    found.update(line.strip() for line in value.splitlines())
    found.add(base64.b64encode(value.encode("utf-8")).decode("ascii"))
    found.add(quote(value, safe=""))
    found.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {s for s in found if len(s) >= MIN_SECRET_CHARS}


class Masker:
    """Replaces every known secret value in text by ``***``; ``bool(masker)`` says whether it has any."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        spellings: set[str] = set()
        for value in secrets:
            spellings |= _spellings(value)
        # Longest first, so a value containing another is masked whole.
        ordered = sorted(spellings, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_environment(cls, names: Iterable[str], environ: Mapping[str, str]) -> Masker:
        """A masker of the values of the variables ``names`` (names not set are skipped)."""
        return cls(environ[name] for name in names if name in environ)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_data(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, strings, scalars) with every string masked, keys included."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(k) if isinstance(k, str) else k: self.mask_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_data(v) for v in value]
        return value


def mask_status(status: RunStatus, masker: Masker | None) -> RunStatus:
    """``status`` with every string masked (messages, node messages, output); itself without secrets.

    Through its JSON form, so no field is forgotten; it is published about once a second, never per event.
    """
    if not masker:
        return status
    return RunStatus.model_validate(masker.mask_data(status.model_dump(mode="json", by_alias=True, exclude_none=True)))


def secret_env_names(env: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of Kubernetes EnvVar entries whose value comes from a Secret (``valueFrom.secretKeyRef``)."""
    names: list[str] = []
    for entry in env:
        source = entry.get("valueFrom")
        if isinstance(source, Mapping) and source.get("secretKeyRef") and isinstance(entry.get("name"), str):
            names.append(entry["name"])
    return names


class MaskingStream(io.TextIOBase):
    """A text stream that masks what it passes on to ``stream``, a line at a time.

    Why by line: a secret written in two pieces (``write("tok"); write("en")``) must still be
    recognised. A line waits for its newline, for ``flush()`` (``print(..., flush=True)`` does one)
    or until ``MAX_PENDING_CHARS`` pile up.
    """

    def __init__(self, stream: TextIO, masker: Masker) -> None:
        super().__init__()
        self.stream = stream
        self._masker = masker
        self._lock = threading.Lock()
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def write(self, text: str) -> int:
        with self._lock:
            pending = self._pending + text
            end = pending.rfind("\n") + 1
            if not end and len(pending) > MAX_PENDING_CHARS:
                end = len(pending)
            self._pending = pending[end:]
            if end:
                self.stream.write(self._masker.mask(pending[:end]))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending:
                self.stream.write(self._masker.mask(pending))
            self.stream.flush()


@contextmanager
def masked_streams(masker: Masker | None) -> Iterator[None]:
    """Mask ``sys.stdout`` and ``sys.stderr`` (and the root logger's handlers writing to them) while active.

    Nothing changes without secrets. On exit what is pending is written out and the streams and
    handlers get their own streams back.
    """
    if not masker:
        yield
        return
    saved = sys.stdout, sys.stderr
    wrapped = {id(s): MaskingStream(s, masker) for s in saved}
    repointed = [
        (handler, handler.stream)
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and id(handler.stream) in wrapped
    ]
    sys.stdout, sys.stderr = wrapped[id(saved[0])], wrapped[id(saved[1])]
    for handler, stream in repointed:
        handler.setStream(wrapped[id(stream)])
    try:
        yield
    finally:
        for handler, stream in repointed:
            handler.setStream(stream)
        sys.stdout, sys.stderr = saved
        for stream in wrapped.values():
            stream.flush()
