"""Inline Python: ``run: {python: ...}``.

Two forms. A single expression is exec's body: it sees ``item`` (batch nodes: the current item),
``prep_res`` (plain nodes: prep's result, ``None`` without a prep), ``shared``, ``params`` and
``node`` (``node.name``, ``node.type``). Otherwise the code must define at least one of ``prep``,
``exec``, ``post``, ``exec_fallback`` with PocketFlow's signatures; each may be ``def`` or
``async def`` (awaited). At module level the code also sees ``params`` and ``node``, which always
refer to the node currently running it.

Sync code runs inline on the event loop: blocking calls (``time.sleep``, ``requests``) stall the
whole run, parallel items included. Use ``async def`` and ``await`` for I/O.

Validation compiles nothing it would run: it parses the code (``ast``) to report syntax errors
with line numbers. The code is executed only by ``build``, once per node, in a fresh namespace.
"""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import CodeType
from typing import Any

from ..problems import Problem, join_path
from ..schema import RunSpec
from . import Code, NodeRuntime

HOOKS = ("prep", "exec", "post", "exec_fallback")
_current: ContextVar[NodeRuntime] = ContextVar("flowlib_runner_current_node")


class _CurrentParams(Mapping[str, Any]):
    """``params`` at module level of inline code: the params of the node running right now."""

    def _params(self) -> Mapping[str, Any]:
        node = _current.get(None)
        return node.params if node is not None else {}

    def __getitem__(self, key: str) -> Any:
        return self._params()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params())

    def __len__(self) -> int:
        return len(self._params())

    def __repr__(self) -> str:
        return repr(dict(self._params()))


class _CurrentNode:
    """``node`` at module level of inline code: name, type and params of the running node."""

    @property
    def name(self) -> str:
        return _current.get().name

    @property
    def type(self) -> str:
        return _current.get().node_type

    @property
    def params(self) -> Mapping[str, Any]:
        return _current.get().params

    def __repr__(self) -> str:
        node = _current.get(None)
        return f"<node {node.name}>" if node is not None else "<node (not running)>"


class _NodeInfo:
    """``node`` inside an expression: a plain snapshot of the running node."""

    def __init__(self, node: NodeRuntime) -> None:
        self.name = node.name
        self.type = node.node_type
        self.params = node.params

    def __repr__(self) -> str:
        return f"<node {self.name}>"


def inspect_source(code: str) -> tuple[str, str | None]:
    """``("expression" | "module", None)`` or ``("invalid", message)``; parses, never runs."""
    try:
        ast.parse(code, mode="eval")
    except SyntaxError:
        pass
    except (ValueError, RecursionError, MemoryError) as exc:
        return "invalid", f"the code cannot be parsed: {exc}"
    else:
        return "expression", None
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        return (
            "invalid",
            f"Python syntax error ({where}): {exc.msg}; fix the code (it is parsed, not run, here)",
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        return "invalid", f"the code cannot be parsed: {exc}"
    defined = {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in HOOKS
    }
    if not defined:
        return "invalid", (
            "inline Python must be a single expression or define at least one of "
            "prep, exec, post, exec_fallback (def or async def)"
        )
    return "module", None


class PythonKind:
    name = "python"

    def validate(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        code = run.python or ""
        _form, message = inspect_source(code)
        if message is not None:
            return [Problem(join_path(path, "python"), message)]
        return []

    def build(self, run: RunSpec, *, node: str, batch: bool) -> Code:
        source = run.python or ""
        filename = f"<inline python of node {node}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        form, message = inspect_source(source)
        if form == "expression":
            return ExpressionCode(compile(source, filename, "eval"), batch=batch)
        if message is not None:
            from . import BuildError

            raise BuildError(f"nodes.{node}.run.python: {message}")
        namespace: dict[str, Any] = {
            "__name__": f"flowlib_inline_{node}",
            "params": _CurrentParams(),
            "node": _CurrentNode(),
        }
        exec(compile(source, filename, "exec"), namespace)  # the user's own code, in the runner only
        return ModuleCode(namespace)


async def _call(fn: Any, *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class ExpressionCode(Code):
    has_exec = True

    def __init__(self, code: CodeType, *, batch: bool) -> None:
        self._code = code
        self._batch = batch

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        scope = {
            "item": payload if self._batch else None,
            "prep_res": None if self._batch else payload,
            "shared": node.shared,
            "params": node.params,
            "node": _NodeInfo(node),
        }
        token = _current.set(node)
        try:
            result = eval(self._code, {"__builtins__": __builtins__}, scope)  # the user's own expression
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            _current.reset(token)


class ModuleCode(Code):
    def __init__(self, namespace: dict[str, Any]) -> None:
        self._fns = {h: namespace[h] for h in HOOKS if callable(namespace.get(h))}
        self.has_prep = "prep" in self._fns
        self.has_exec = "exec" in self._fns
        self.has_post = "post" in self._fns
        self.has_fallback = "exec_fallback" in self._fns

    async def _run(self, node: NodeRuntime, hook: str, *args: Any) -> Any:
        token = _current.set(node)
        try:
            return await _call(self._fns[hook], *args)
        finally:
            _current.reset(token)

    async def prep(self, node: NodeRuntime, shared: dict[str, Any]) -> Any:
        return await self._run(node, "prep", shared)

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        return await self._run(node, "exec", payload)

    async def post(self, node: NodeRuntime, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        return await self._run(node, "post", shared, prep_res, exec_res)

    async def fallback(self, node: NodeRuntime, payload: Any, exc: Exception) -> Any:
        return await self._run(node, "exec_fallback", payload, exc)
