"""FlowRun durations (``timeout: 1h30m``) in seconds, as the Job's ``activeDeadlineSeconds`` wants."""

from __future__ import annotations

import math

from flowlib_runner.durations import parse_duration


def deadline_seconds(text: str) -> int:
    """Whole seconds, rounded up (a 1.5s timeout must not become 1s); at least 1."""
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise ValueError(f"spec.timeout: {error}") from error
    return max(1, math.ceil(seconds))
