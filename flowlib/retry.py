"""How long to wait before the next exec attempt.

PocketFlow waits a fixed ``wait`` seconds between attempts; that stays the default. Exponential
backoff doubles the wait after each failure, up to ``max_wait``, and ``jitter`` spreads waits so
that many items failing together do not retry in lockstep against the same service.
"""

from __future__ import annotations

import random
from typing import Literal

Backoff = Literal["fixed", "exponential"]
BACKOFF_KINDS: tuple[Backoff, ...] = ("fixed", "exponential")


def check_retry_settings(max_retries: int, wait: float, backoff: str, max_wait: float | None, jitter: float) -> None:
    """Reject settings that could only be mistakes, with a message that says what to use."""
    if backoff not in BACKOFF_KINDS:
        raise ValueError(f"backoff must be one of {', '.join(BACKOFF_KINDS)}, not {backoff!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction of the wait and must be between 0 and 1, not {jitter!r}")
    if max_wait is not None and max_wait < 0:
        raise ValueError(f"max_wait must be >= 0 seconds, not {max_wait!r}")


def retry_delay(
    attempt: int,
    wait: float,
    *,
    backoff: str = "fixed",
    max_wait: float | None = None,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
    delay = float(wait)
    if backoff == "exponential":
        # Cap the exponent: 2**1024 overflows a float long before anyone waits that long.
        delay = wait * 2.0 ** min(attempt - 1, 64)
    if max_wait is not None:
        delay = min(delay, max_wait)
    if jitter and delay > 0:
        delay *= 1.0 + (rng or random).uniform(-jitter, jitter)
    return max(delay, 0.0)
