"""Durations as people write them: ``500ms``, ``10s``, ``1m30s``, ``2h``, or a plain number of seconds.

Kubernetes manifests carry durations as strings or integers; flowlib wants float seconds. This is
the one place that converts, so every field accepts the same spellings and fails the same way.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_WHOLE = re.compile(r"^(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ms|h|m|s))+$")
_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+)$")

DURATION_HELP = "write a duration like 500ms, 10s, 1m30s or 2h, or a number of seconds"


def parse_duration(value: object) -> float:
    """Seconds as a float; raises ``ValueError`` with a message that says how to write it."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _NUMBER.match(text):
            seconds = float(text)
        elif text and _WHOLE.match(text):
            seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration; {DURATION_HELP}")
    else:
        raise ValueError(f"a duration must be a string or a number, not {type(value).__name__}; {DURATION_HELP}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration: it must be a finite number >= 0; {DURATION_HELP}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable spelling that ``parse_duration`` reads back to the same value."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
