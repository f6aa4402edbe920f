"""Small node classes shared by the engine's tests."""

from __future__ import annotations

import asyncio
from typing import Any

import flowlib


class Record(flowlib.Node):
    """Appends its name to shared['trace'] and returns a scripted action."""

    def __init__(self, label: str, action: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=label, **kwargs)
        self.label, self.action = label, action

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str | None:
        shared.setdefault("trace", []).append(self.label)
        return self.action


class InFlight:
    """Counts concurrent executions and remembers the highest count seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started: list[Any] = []
        self.finished: list[Any] = []

    async def run(self, item: Any, delay: float = 0.0) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(item)
        try:
            await asyncio.sleep(delay)
        finally:
            self.now -= 1
        self.finished.append(item)
        return item


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks still alive besides the current one: a clean run leaves none."""
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
