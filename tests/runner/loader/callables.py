"""Targets for ``run: {call: ...}`` in the build tests (imported by module path at build time)."""

from __future__ import annotations

import asyncio
from typing import Any

import flowlib


def double(x: Any) -> Any:
    return x * 2


def keys(shared: dict[str, Any]) -> list[str]:
    return sorted(shared)


async def slow_upper(item: str) -> str:
    await asyncio.sleep(0)
    return item.upper()


class Greeter(flowlib.AsyncNode):
    """A user's own node class: its post stores and chooses the action."""

    async def prep_async(self, shared: Any) -> Any:
        return shared.get("who", "world")

    async def exec_async(self, prep_res: Any) -> Any:
        return f"{self.params.get('greeting', 'hello')} {prep_res}"

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["greeting"] = exec_res
        return "greeted"


class Exploding(flowlib.Node):
    def exec(self, prep_res: Any) -> Any:
        raise RuntimeError("boom from a sync node")


class NeedsArgs(flowlib.AsyncNode):
    def __init__(self, required: int) -> None:
        super().__init__()


NOT_CALLABLE = 42
