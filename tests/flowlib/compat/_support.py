"""Helpers shared by the side-by-side compatibility tests.

Every test builds the same program against one implementation (the module ``pocketflow`` or
``flowlib``) and records everything a PocketFlow user can observe: the return value, the exception
(type and message), the warnings (category and text), the shared store and the order of side effects.
"""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

IMPLEMENTATIONS = ("pocketflow", "flowlib")

# Captured before any test patches ``asyncio.sleep``: test code uses it to yield to the event loop.
_REAL_ASYNC_SLEEP = asyncio.sleep


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


async def tick(times: int = 1) -> None:
    """Yield to the event loop ``times`` times (never sleeps for real)."""
    for _ in range(times):
        await _REAL_ASYNC_SLEEP(0)


@dataclass
class Outcome:
    """What a run looked like from the outside."""

    result: Any = None
    error: tuple[type[BaseException], tuple[Any, ...], str] | None = None
    warnings: list[tuple[type[Warning], str]] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [text for _, text in self.warnings]


def _error(exc: BaseException) -> tuple[type[BaseException], tuple[Any, ...], str]:
    return (type(exc), exc.args, str(exc))


def capture(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn()`` recording its result or exception and every warning it emits, in order."""
    out = Outcome()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out.result = fn()
        except Exception as exc:
            out.error = _error(exc)
    out.warnings = [(w.category, str(w.message)) for w in caught]
    return out


def capture_async(make: Callable[[], Awaitable[Any]]) -> Outcome:
    """Like :func:`capture`, for a coroutine run to completion in a fresh event loop."""

    async def main() -> Any:
        return await make()

    return capture(lambda: asyncio.run(main()))


class SleepRecorder:
    """Stands in for ``time.sleep`` and ``asyncio.sleep``; records calls instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def sync(self, seconds: float) -> None:
        self.calls.append(("time.sleep", seconds))

    async def async_(self, seconds: float, result: Any = None) -> Any:
        self.calls.append(("asyncio.sleep", seconds))
        await _REAL_ASYNC_SLEEP(0)
        return result
