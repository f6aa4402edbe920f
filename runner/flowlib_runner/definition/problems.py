"""Validation problems: what is wrong, where, and what to do about it.

A definition is checked as a whole and every problem is reported at once, so a user fixes a
file in one pass instead of one error per run. Each problem carries the path of the offending
field (``nodes.count.next.default``) and a message that ends with the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition.

    ``path`` is a dotted path into the document as the user wrote it (empty for the document
    itself); ``message`` says what is wrong and what to do.
    """

    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.path or "<document>"
        prefix = "" if self.severity == "error" else "warning: "
        return f"{where}: {prefix}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems ordered by path, errors before warnings at the same path, duplicates removed."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.path, p.severity != "error", p.message))


def join_path(*parts: object) -> str:
    """Join path segments, skipping empty ones: ``join_path("nodes", "a", "run")``."""
    return ".".join(str(p) for p in parts if p != "" and p is not None)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate that looks most like ``word`` (a likely typo), or None."""
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a close candidate exists, else an empty string."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match else ""


def listing(names: Iterable[str]) -> str:
    """Names sorted and comma separated, for messages; ``(none)`` when empty."""
    items = sorted(names)
    return ", ".join(items) if items else "(none)"
