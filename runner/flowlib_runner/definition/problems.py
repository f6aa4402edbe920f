"""Validation problems: what is wrong, where, and what to do about it.

A definition is checked as a whole and every problem is reported at once, so a user fixes a
file in one pass instead of one error per run. Each problem carries the path of the offending
field (``nodes.count.next.default``) and a message that ends with the fix.

What is reported is bounded whatever the definition: a message lists at most ``LISTED_NAMES``
names, a report keeps at most ``REPORTED_PROBLEMS`` errors and as many warnings (then one line
counting the rest), and each problem is cut to ``PROBLEM_MESSAGE_BYTES``. The operator writes
problems into a Flow's status, which etcd refuses beyond about 1.5 MiB; before these bounds, 1,000
dangling edges, each listing every node, made a 6 MB status.
"""

from __future__ import annotations

import bisect
import difflib
import heapq
import math
import reprlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from flowlib_api.text import PROBLEM_MESSAGE_BYTES, shorten

Severity = Literal["error", "warning"]

LISTED_NAMES = 5
"""Names a message lists of a long list (``known nodes: a, b, c, d, e … and 993 more``); a list of up
to twice as many is shown whole, as cutting it would save little. Did-you-mean names the likely one."""
REPORTED_PROBLEMS = 50
"""Errors a report keeps, and warnings likewise; one more line counts what was left out."""
SUGGEST_FROM = 64
"""Names did-you-mean compares a word with: all of a set this small, else this many neighbours."""
_LONGEST_TYPO = 256


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


class TooSlow(Exception):
    """Validation ran past its deadline (``Loader`` turns it into the ``too_slow`` problem)."""


def too_slow(seconds: float) -> Problem:
    """The problem of a validation stopped after ``seconds``: the definition is too big to check."""
    return Problem(
        "",
        f"validation took longer than {seconds:g} s and was stopped (problems found until then are listed); "
        "split the flow into smaller flows run by type: flow nodes, or make its templates and code smaller",
    )


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Problems ordered by path, errors before warnings at the same path, duplicates removed."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.path, p.severity != "error", p.message))


def report(problems: Iterable[Problem]) -> list[Problem]:
    """The problems as a result carries them: sorted, deduplicated and bounded.

    The first ``REPORTED_PROBLEMS`` errors and warnings (by path) are kept, each cut to
    ``PROBLEM_MESSAGE_BYTES``; a last line counts the rest, as an error when errors were left out,
    so a result with errors never looks clean. Fixing the first ones often removes many of the rest.
    """
    kept: list[Problem] = []
    shown = {"error": 0, "warning": 0}
    left = {"error": 0, "warning": 0}
    for problem in sort_problems(problems):
        if shown[problem.severity] >= REPORTED_PROBLEMS:
            left[problem.severity] += 1
            continue
        shown[problem.severity] += 1
        kept.append(_cut(problem))
    if not any(left.values()):
        return kept
    counts = [f"{n} more {kind}{'s' if n != 1 else ''}" for kind, n in left.items() if n]
    return [
        *kept,
        Problem(
            "",
            f"… and {' and '.join(counts)} not shown; fix the ones above and check again",
            "error" if left["error"] else "warning",
        ),
    ]


def first_paths(paths: Iterable[str]) -> set[str]:
    """The first ``REPORTED_PROBLEMS`` of ``paths`` in the order a report sorts problems.

    Of many problems of one kind (10,000 dangling edges), these are the only ones a report can
    show, so the only ones worth a did-you-mean: each compares a word with up to ``SUGGEST_FROM``
    names, which for every one of 10,000 problems took seconds.
    """
    found = list(paths)
    return set(found) if len(found) <= REPORTED_PROBLEMS else set(heapq.nsmallest(REPORTED_PROBLEMS, found))


def _cut(problem: Problem) -> Problem:
    """The problem within ``PROBLEM_MESSAGE_BYTES`` (a path gets at most a quarter of it)."""
    if len(problem.path) + len(problem.message) <= PROBLEM_MESSAGE_BYTES // 4:
        return problem  # short enough in any encoding: no need to count bytes
    path = shorten(problem.path, PROBLEM_MESSAGE_BYTES // 4)
    # room for ": warning: " and for the few bytes by which a long "[N bytes cut]" mark can run over
    message = shorten(problem.message, PROBLEM_MESSAGE_BYTES - len(path.encode()) - 32)
    return Problem(path, message, problem.severity)


def join_path(*parts: object) -> str:
    """Join path segments, skipping empty ones: ``join_path("nodes", "a", "run")``; a key that is
    neither a string nor a number (a tuple from Python input) is shortened like a quoted value."""
    return ".".join(p if isinstance(p, str) else key_text(p) for p in parts if p != "" and p is not None)


def key_text(key: object) -> str:
    """A key as a path or message shows it: a string as it is, a number as written, anything else
    (a tuple, a number of 5,000 digits, which ``str`` refuses) shortened like a quoted value."""
    if isinstance(key, str):
        return key
    if isinstance(key, float) or (isinstance(key, int) and key.bit_length() <= 64):
        return str(key)
    return short(key)


class _ShortRepr(reprlib.Repr):
    """``repr`` that looks at most a few levels and items deep, so quoting a value costs the same
    whatever its size or depth (``repr`` of JSON nested 1,000 deep raises RecursionError, of an int
    over 4,300 digits ValueError)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 6
        self.maxstring = self.maxlong = self.maxother = 64

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<a number of about {math.ceil(x.bit_length() * math.log10(2))} digits>"
        return super().repr_int(x, level)


_short_repr = _ShortRepr()


def short(value: Any) -> str:
    """``value`` quoted in a message: its repr up to 60 characters."""
    text = _short_repr.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def chain(names: list[str]) -> str:
    """A loop or cycle as ``a -> b -> c``, its middle left out when long (``a -> … 990 more -> z``)."""
    if len(names) <= 2 * LISTED_NAMES:
        return " -> ".join(names)
    left = len(names) - 2 * LISTED_NAMES
    return " -> ".join([*names[:LISTED_NAMES], f"… {left} more", *names[-LISTED_NAMES:]])


class Names:
    """A set of names that messages list and suggest from, sorted once for many problems.

    Why: a flow reports one problem per dangling edge, each listing the known nodes and looking
    for a likely typo among them. Sorting and comparing every name for every problem made a
    5,000-node flow take 40 s. Here a listing costs ``LISTED_NAMES`` and a suggestion compares the
    word with at most ``SUGGEST_FROM`` names: its neighbours in sorted order and in the order of
    the reversed names (they share its beginning or its end, which is where typos leave a word
    alone). Suggestions are remembered, so a typo repeated on many nodes is looked up once.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.sorted = sorted(set(names))
        self._set = frozenset(self.sorted)
        self._ends: list[str] | None = None
        self._suggested: dict[str, str | None] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._set

    def __iter__(self) -> Iterator[str]:
        return iter(self.sorted)

    def __len__(self) -> int:
        return len(self.sorted)

    def listing(self, limit: int | None = LISTED_NAMES) -> str:
        """The names comma separated, ``(none)`` when empty; more than twice ``limit`` are cut to
        ``limit`` (None: never cut)."""
        if not self.sorted:
            return "(none)"
        if limit is None or len(self.sorted) <= 2 * limit:
            return ", ".join(self.sorted)
        return f"{', '.join(self.sorted[:limit])} … and {len(self.sorted) - limit} more"

    def closest(self, word: str) -> str | None:
        """The name that looks most like ``word`` (a likely typo), or None."""
        if word not in self._suggested:
            self._suggested[word] = _best_match(word, self._pool(word))
        return self._suggested[word]

    def _pool(self, word: str) -> list[str]:
        if len(self.sorted) <= SUGGEST_FROM:
            return self.sorted
        if self._ends is None:
            self._ends = sorted(name[::-1] for name in self.sorted)
        side = SUGGEST_FROM // 4
        pool = set(_around(self.sorted, word, side))
        pool.update(end[::-1] for end in _around(self._ends, word[::-1], side))
        return sorted(pool)


def _around(ordered: list[str], word: str, side: int) -> list[str]:
    """Up to ``side`` entries of ``ordered`` on each side of where ``word`` would be."""
    at = bisect.bisect_left(ordered, word)
    return ordered[max(0, at - side) : at + side]


def _best_match(word: str, pool: list[str]) -> str | None:
    if len(word) > _LONGEST_TYPO:
        return None  # not a typo of a name; and difflib would index all of it
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate that looks most like ``word`` (a likely typo), or None."""
    names = candidates if isinstance(candidates, Names) else Names(candidates)
    return names.closest(word)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a close candidate exists, else an empty string."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match else ""


def listing(names: Iterable[str], limit: int | None = LISTED_NAMES) -> str:
    """Names sorted and comma separated, ``(none)`` when empty; a long list cut (``Names.listing``).

    Names from the definition (nodes, flows, edges) are bounded; a fixed vocabulary of the code
    (fields, node types, run kinds) passes ``limit=None`` and is listed whole.
    """
    return (names if isinstance(names, Names) else Names(names)).listing(limit)
