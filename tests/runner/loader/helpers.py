"""Small helpers shared by the loader tests."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.loader import FlowDefinition, LoadResult, load_text


def load(text: str, **kwargs: Any) -> LoadResult:
    return load_text(textwrap.dedent(text), **kwargs)


def definition(text: str, **kwargs: Any) -> FlowDefinition:
    result = load(text, **kwargs)
    assert result.definition is not None, [str(p) for p in result.problems]
    assert not result.errors
    return result.definition


def messages(text: str, **kwargs: Any) -> list[str]:
    """Every problem as its string form (path: message)."""
    return [str(p) for p in load(text, **kwargs).problems]


def run(text: str, shared: dict[str, Any] | None = None, **params: Any) -> tuple[Any, dict[str, Any]]:
    flow = build_flow(definition(text), params=params)
    shared = {} if shared is None else shared
    action = asyncio.run(flow.run_async(shared))
    return action, shared


def spec(nodes: str, extra: str = "") -> str:
    """A bare spec with the given (already indented by 2) nodes block."""
    return f"{extra}nodes:\n{textwrap.indent(textwrap.dedent(nodes), '  ')}"
