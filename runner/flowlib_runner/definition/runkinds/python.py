"""Inline Python: ``run: {python: ...}``.

Two forms. A single expression is exec's body: it sees ``item`` (batch nodes: the current item),
``prep_res`` (plain nodes: prep's result, ``None`` without a prep), ``shared``, ``params`` and
``node`` (``node.name``, ``node.type``). It may ``await``; a result that is awaitable
(``shared['client'].get(item)``) is awaited, unless the expression is an operator, a comparison,
a literal, a comprehension or an f-string, whose value is taken as it is. Otherwise the code must
define at least one of ``prep``, ``exec``, ``post``, ``exec_fallback`` with PocketFlow's
signatures; each may be ``def`` or ``async def`` (awaited). At module level the code also sees
``params`` and ``node``, which always refer to the node currently running it.

Where sync code runs: in the nodes whose items run concurrently -- ``parallel_batch``,
``worker_pool``, and every node inside a parallel batch sub-flow (``type: flow`` with
``batch.maxParallel`` > 1) -- the hooks written with plain ``def`` (prep, exec, post,
exec_fallback) run on worker threads, at most ``maxParallel`` at once, so blocking calls
(``time.sleep``, ``requests``, a database driver) overlap and the event loop stays free for status
and cancellation (``factories/threads.py``; ``Code.blocking_hooks`` hands them over). Everywhere
else (base, batch, async_batch) they run inline on the event loop, as do ``async def`` hooks and
expressions in every node: a blocking call there stalls the run until it returns. An expression is
never sent to a thread (``item + 1`` costs far less than the hop); write a ``def exec`` for a
blocking call in a parallel node, or ``async def`` and ``await`` for I/O anywhere.

Validation compiles nothing it would run: it parses the code (``ast``) to report syntax errors
with line numbers. The code is executed only by ``build``, once per node, in a fresh namespace.

Why the expression form is compiled into a method: a 100,000-item worker pool evaluates it
100,000 times, and ``eval`` with a fresh scope dict per item cost several times the user's own
work. ``build`` turns ``item + 1`` into ``async def exec_async(self, item): return (item + 1)``
-- plus ``shared = self.shared`` and the like for the names the expression uses, and the
awaiting of an awaitable result where one is possible (``twins.never_awaitable``) -- with the
original positions kept, so tracebacks point at the user's line; the node class installs it as
its ``exec_async`` (``Code.exec_method``). A side benefit over ``eval`` with a locals dict:
comprehensions and lambdas inside the expression see ``item``, ``shared``... as closures do.
Module code's hooks are handed to the node (``Code.direct_hooks``): ``async def`` ones as they
are, plain ``def`` ones as their coroutine twins (``twins.py``), which await a result only if it
is awaitable -- checked by a type lookup first, so plain results never reach ``inspect``. The
sync hooks themselves (never their twins: a twin runs the blocking body on the loop) are also
handed over as ``Code.blocking_hooks``, for the nodes that run them on threads.
Module-level ``params`` and ``node`` read a context variable that the node sets for its visit,
and only for modules that mention those names (``Code.visit_context``).
"""

from __future__ import annotations

import ast
import builtins
import dis
import linecache
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from types import CodeType
from typing import Any

from flowlib_api.flowspec import RunSpec

from ..problems import Problem, join_path
from . import Code, NodeRuntime, is_blocking
from .twins import SETTLE_GLOBALS, coroutine_twins, place, settled_return

HOOKS = ("prep", "exec", "post", "exec_fallback")
# The names an expression sees; the first is its payload (``item`` or ``prep_res``), see ExpressionCode.
EXPRESSION_NAMES = ("item", "prep_res", "shared", "params", "node")
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
        tree = ast.parse(source, filename, mode="exec")
        compiled = compile(tree, filename, "exec")
        exec(compiled, namespace)  # the user's own code, in the runner only
        twins = coroutine_twins(tree, namespace, filename, HOOKS)
        return ModuleCode(namespace, compiled, twins)


SELF = "__flowlib_node__"
# Attributes of the running node behind the names an expression may use.
NODE_ATTRIBUTES = {"shared": "shared", "params": "params", "node": "node_info"}


def compile_exec_method(source: str, filename: str, *, batch: bool) -> Callable[..., Any]:
    """The expression as an ``async def exec_async(self, payload)`` method (module docstring).

    ``payload`` is called ``item`` in batch nodes and ``prep_res`` otherwise (the other name is
    ``None``); ``shared``, ``params`` and ``node`` are read from the node, only if used.
    """
    tree = ast.parse(source, filename, mode="eval")
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    first, other = ("item", "prep_res") if batch else ("prep_res", "item")
    lines = [f"{name} = {SELF}.{attr}" for name, attr in NODE_ATTRIBUTES.items() if name in used]
    if other in used:
        lines.append(f"{other} = None")
    prologue = ast.parse("\n".join(lines)).body
    for statement in prologue:
        place(statement, tree.body)
    body = [*prologue, *settled_return(tree.body, tree.body)]  # `item + 1` is returned as it is
    method = ast.AsyncFunctionDef(
        name="exec_async",
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(SELF), ast.arg(first)],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    ast.copy_location(method, tree.body)
    module = ast.fix_missing_locations(ast.Module(body=[method], type_ignores=[]))
    # The same globals `eval` had (builtins only), plus what settled returns read.
    namespace: dict[str, Any] = {"__builtins__": builtins, **SETTLE_GLOBALS}
    exec(compile(module, filename, "exec"), namespace)  # defines the method; runs no user code
    fn: Callable[..., Any] = namespace["exec_async"]
    return fn


def mentions(code: CodeType, names: frozenset[str]) -> bool:
    """Whether compiled code (nested functions, classes and comprehensions included) reads any of
    ``names`` as a global.

    Over-approximates on purpose: any global read of ``globals``, ``vars``, ``eval``, ``exec`` or
    ``locals`` counts too, as those could reach a module-level name without spelling it.
    """
    wanted = names | DYNAMIC_LOOKUPS
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and instruction.argval in wanted:
            return True
    return any(isinstance(const, CodeType) and mentions(const, names) for const in code.co_consts)


DYNAMIC_LOOKUPS = frozenset({"globals", "vars", "eval", "exec", "locals"})
CONTEXT_NAMES = frozenset({"params", "node"})


class ExpressionCode(Code):
    """A single expression, installed as the node's ``exec_async`` (``Code.exec_method``).

    No context variable is set around it (module code needs one for its module-level ``params`` and
    ``node``; an expression gets both from the node, and can reach nothing that reads it).
    """

    has_exec = True

    def __init__(self, source: str, filename: str, *, batch: bool) -> None:
        self.exec_method = compile_exec_method(source, filename, batch=batch)
        used = {n.id for n in ast.walk(ast.parse(source, mode="eval")) if isinstance(n, ast.Name)}
        # `node` is a snapshot built once per visit, and only when the expression mentions it.
        self.needs_node_info = "node" in used
        self.reads_node_shared = "shared" in used


class ModuleCode(Code):
    """Module code's hooks, handed to the node as they are (``Code.direct_hooks``); the node sets
    ``_current`` (what the module's ``params`` and ``node`` read) for its visit when the module
    mentions them (``Code.visit_context``)."""

    reads_node_shared = False

    def __init__(
        self, namespace: dict[str, Any], compiled: CodeType, twins: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        # A plain `def` hook is handed over as its coroutine twin (twins.py): same behaviour, one
        # wrapper less per call.
        twins = twins or {}
        self.direct_hooks = {h: twins.get(h) or namespace[h] for h in HOOKS if callable(namespace.get(h))}
        # The user's sync functions, for nodes that run them on worker threads (never the twins).
        self.blocking_hooks = {h: namespace[h] for h in self.direct_hooks if is_blocking(namespace[h])}
        self.has_prep = "prep" in self.direct_hooks
        self.has_exec = "exec" in self.direct_hooks
        self.has_post = "post" in self.direct_hooks
        self.has_fallback = "exec_fallback" in self.direct_hooks
        self.visit_context = _current if mentions(compiled, CONTEXT_NAMES) else None
