"""Time as the API writes it: durations people type, RFC 3339 timestamps, durations people read.

Durations (``500ms``, ``10s``, ``1m30s``, ``2h``, or a plain number of seconds): Kubernetes
manifests carry them as strings or integers; flowlib wants float seconds. This is the one place that
converts, so every field accepts the same spellings and fails the same way. Timestamps: the runner
and the operator both write status times, Events and log lines; each format is built here once.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_WHOLE = re.compile(r"^(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ms|h|m|s))+$")
_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+)$")

DURATION_HELP = "write a duration like 500ms, 10s, 1m30s or 2h, or a number of seconds"

MAX_DURATION_SECONDS = 366 * 24 * 3600
"""The longest duration any field takes: 366 days (8784h). Durations become a Job's
``activeDeadlineSeconds`` (an int64), a pod's sleep or a deadline timestamp; without a bound a
30-digit ``timeout`` passed validation and gave a Job no API server accepts, and the run stayed
Pending for ever. A year and a day covers any run or approval that someone still waits for."""
MAX_DURATION_TEXT = "8784h (366 days)"

DURATION_PATTERN = r"^([0-9]{1,9}(\.[0-9]{1,9})?(ms|s|m|h))+$|^[0-9]{1,9}(\.[0-9]{1,9})?$"
"""A duration as the CRD checks it: at most 9 digits a number, so within the CRD's 253 characters
whatever passes fits an int64 of seconds (a 30-digit hour count is refused by the API server). The
exact bound (``times.MAX_DURATION_SECONDS``) is the model's, which the webhook and the operator
apply: a CRD pattern cannot add up the parts."""


def parse_duration(value: object) -> float:
    """Seconds as a float; raises ``ValueError`` (never anything else, whatever ``value`` is) with a
    message that says how to write it."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HELP}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float's range (a 401-digit timeout)
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.match(text):
            seconds = float(text)
        elif text and _WHOLE.match(text):
            seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError(f"{_shown(value)} is not a duration; {DURATION_HELP}")
    else:
        raise ValueError(f"a duration must be a string or a number, not {type(value).__name__}; {DURATION_HELP}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"{_shown(value)} is not a duration: it must be a finite number >= 0; {DURATION_HELP}")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{_shown(value)} is longer than the longest duration flowlib takes, {MAX_DURATION_TEXT}")
    return seconds


def _shown(value: object) -> str:
    """``value`` as an error message quotes it: a huge number or string is described, not copied
    (``repr`` of an int over 4,300 digits even raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a number of about {math.ceil(value.bit_length() * math.log10(2))} digits"
    text = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:37]) + "..."
    return text


def format_duration(seconds: float) -> str:
    """The shortest readable spelling that ``parse_duration`` reads back to the same value."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def timeout_problem(text: object) -> str | None:
    """Why a FlowRun's ``spec.timeout`` is not a duration flowlib takes, naming the field (None: it is
    one, or it is not set); the webhook and the operator both ask before building the Job."""
    if text is None:
        return None
    try:
        parse_duration(text)
    except ValueError as error:
        return f"spec.timeout: {error}"
    return None


def deadline_seconds(text: str) -> int:
    """A FlowRun ``timeout`` as the Job's ``activeDeadlineSeconds``: whole seconds rounded up (a 1.5s
    timeout must not become 1s), at least 1, at most ``MAX_DURATION_SECONDS`` (``ValueError``
    naming the field otherwise)."""
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise ValueError(f"spec.timeout: {error}") from error
    return max(1, math.ceil(seconds))


def human_duration(seconds: float) -> str:
    """``status.duration`` as people read it: 45s, 1m12s, 2h3m4s (whole seconds, sub-second as 0s)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def now_utc() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """A status or condition time: RFC 3339 in UTC to the second, as the API server writes them."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micros(moment: datetime) -> str:
    """An Event's ``eventTime`` (MicroTime): RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_second_cache: list[object] = [None, ""]


def rfc3339_millis(ts: float) -> str:
    """A ``time.time()`` value as RFC 3339 UTC with milliseconds (run status times and log lines).

    Every log line calls this, so the formatted second is cached (strftime is the slow part).
    """
    whole = int(ts)
    cache = _second_cache
    if cache[0] != whole:
        cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        cache[0] = whole
    return f"{cache[1]}.{int((ts - whole) * 1000):03d}Z"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp from the API (``...Z`` or an offset, maybe with fractions); None for a
    missing or unreadable one (the API server validates ``date-time`` fields, so only a hand-edited
    or foreign object has one, and a reader should not crash on it)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def run_duration(start: str | None, end: str | None) -> str | None:
    """``status.duration`` from a run's start and completion times; None when either is missing."""
    started, ended = parse_time(start), parse_time(end)
    if started is None or ended is None:
        return None
    return human_duration(max(0.0, (ended - started).total_seconds()))
