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

Why the expression form is compiled into a function: a 100,000-item worker pool evaluates it
100,000 times, and ``eval`` with a fresh scope dict per item cost several times the user's own
work. ``build`` turns ``item + 1`` into ``lambda item, shared, params, node, prep_res=None:
(item + 1)`` (the original positions kept, so tracebacks point at the user's line), and the node
calls it directly (see ``Code.expression``). A side benefit over ``eval`` with a locals dict:
comprehensions and lambdas inside the expression see ``item``, ``shared``... as closures do.
Whether a hook needs awaiting is decided at build time for module code (``async def`` or not);
an expression, or a sync hook, may still return an awaitable (``shared['client'].get(item)``), which
is awaited -- checked by a type lookup first, so plain results never reach ``inspect``.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from ..problems import Problem, join_path
from ..schema import RunSpec
from . import Code, NodeRuntime

HOOKS = ("prep", "exec", "post", "exec_fallback")
# The names an expression sees; the first is its payload (``item`` or ``prep_res``), see ExpressionCode.
EXPRESSION_NAMES = ("item", "prep_res", "shared", "params", "node")
# Results of these types are never awaitable: the common case skips `inspect.isawaitable`.
PLAIN_RESULTS = frozenset({int, float, str, bytes, bool, type(None), list, dict, tuple, set})
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


class NodeInfo:
    """``node`` inside an expression: a plain snapshot of the running node (built once per visit)."""

    __slots__ = ("name", "params", "type")

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
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in HOOKS}
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
            return ExpressionCode(source, filename, batch=batch)
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


def compile_expression(source: str, filename: str, *, batch: bool) -> Callable[..., Any]:
    """The expression as ``fn(payload, shared, params, node)``; ``payload`` is ``item`` in batch
    nodes, ``prep_res`` otherwise (the other one is a defaulted ``None``)."""
    tree = ast.parse(source, filename, mode="eval")
    first, other = ("item", "prep_res") if batch else ("prep_res", "item")
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(name) for name in (first, "shared", "params", "node", other)],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[ast.Constant(None)],
    )
    lam = ast.Lambda(args=args, body=tree.body)
    ast.copy_location(lam, tree.body)
    wrapper = ast.fix_missing_locations(ast.Expression(body=lam))
    # The same globals `eval` had: builtins only; the five names are the lambda's arguments.
    fn: Callable[..., Any] = eval(compile(wrapper, filename, "eval"), {"__builtins__": builtins})
    return fn


def uses_name(source: str, names: tuple[str, ...]) -> bool:
    """Whether an expression mentions any of ``names`` (so ``node`` is built only when used)."""
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(ast.parse(source, mode="eval")))


async def _call(fn: Any, *args: Any) -> Any:
    result = fn(*args)
    if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
        return result
    return await result


class ExpressionCode(Code):
    """A single expression, called as a plain function by the node (``Code.expression``).

    No context variable is set around it (module code needs one for its module-level ``params`` and
    ``node``; an expression gets both as arguments, and can reach nothing that reads it).
    """

    has_exec = True

    def __init__(self, source: str, filename: str, *, batch: bool) -> None:
        self.expression = compile_expression(source, filename, batch=batch)
        # `node` is a snapshot built once per visit, and only when the expression mentions it.
        self.expression_uses_node = uses_name(source, ("node",))

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        info = NodeInfo(node) if self.expression_uses_node else None
        return await _call(self.expression, payload, node.shared, node.params, info)


class ModuleCode(Code):
    """Module code's hooks. Each is called with the running node in ``_current`` (what the module's
    ``params`` and ``node`` read); ``async def`` hooks are awaited, sync ones called directly
    (awaiting their result only if it is awaitable)."""

    visit_context = _current

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._fns = {h: namespace[h] for h in HOOKS if callable(namespace.get(h))}
        self._async = {h for h, fn in self._fns.items() if inspect.iscoroutinefunction(fn)}
        self.has_prep = "prep" in self._fns
        self.has_exec = "exec" in self._fns
        self.has_post = "post" in self._fns
        self.has_fallback = "exec_fallback" in self._fns
        # Sync hooks are called directly by the node (Code.sync_*), with `_current` set for the visit.
        sync = {h: fn for h, fn in self._fns.items() if h not in self._async}
        self.sync_prep = sync.get("prep")
        self.sync_exec = sync.get("exec")
        self.sync_post = sync.get("post")
        self.sync_fallback = sync.get("exec_fallback")

    async def _run(self, node: NodeRuntime, hook: str, *args: Any) -> Any:
        token = _current.set(node)
        try:
            if hook in self._async:
                return await self._fns[hook](*args)
            result = self._fns[hook](*args)
            if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
                return result
            return await result
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
