"""Fault injection for reliability tests: failing requests, latency, cut watches.

Rules are set from the test thread and read by the server's event loop, hence the lock.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .errors import ApiError

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


DROP = 0  # the "status code" of a dropped connection


@dataclass
class _Rule:
    method: str | None
    path: re.Pattern[str]
    remaining: int | None
    code: int = 0
    retry_after: int | None = None
    message: str = ""
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.search(path))


class Faults:
    """``fail`` the next N requests matching a method and path regex, or ``delay`` them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Rule] = []
        self._delays: list[_Rule] = []
        self.injected = 0

    def fail(
        self,
        method: str | None,
        path: str,
        code: int,
        times: int = 1,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next ``times`` requests whose path matches the regex ``path`` fail with ``code``
        (429 and 503 carry ``Retry-After`` when ``retry_after`` is set)."""
        text = message or f"kubesim injected fault: {code}"
        with self._lock:
            self._failures.append(
                _Rule(method.upper() if method else None, re.compile(path), times, code, retry_after, text)
            )

    def drop(self, method: str | None, path: str, times: int = 1) -> None:
        """Close the connection of the next ``times`` matching requests without answering
        (clients see a reset/disconnect, as when a load balancer or apiserver instance dies)."""
        with self._lock:
            self._failures.append(
                _Rule(method.upper() if method else None, re.compile(path), times, DROP, None, "dropped")
            )

    def latency(self, seconds: float, method: str | None = None, path: str = "", times: int | None = None) -> None:
        """Delay matching requests by ``seconds`` (all of them, or the next ``times``)."""
        with self._lock:
            self._delays.append(_Rule(method.upper() if method else None, re.compile(path), times, delay=seconds))

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def _take(self, rules: list[_Rule], method: str, path: str) -> _Rule | None:
        for rule in rules:
            if rule.matches(method, path):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.remove(rule)
                return rule
        return None

    def check(self, method: str, path: str) -> tuple[float, ApiError | None]:
        with self._lock:
            delay_rule = self._take(self._delays, method, path)
            fail_rule = self._take(self._failures, method, path)
        delay = delay_rule.delay if delay_rule else 0.0
        if fail_rule is None:
            return delay, None
        self.injected += 1
        error = ApiError(
            fail_rule.code,
            _REASONS.get(fail_rule.code, "Unknown"),
            fail_rule.message,
            retry_after=fail_rule.retry_after,
        )
        if fail_rule.retry_after is not None:
            error.details = {"retryAfterSeconds": fail_rule.retry_after}
        return delay, error
