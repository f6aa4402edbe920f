"""Coroutine twins of inline code's plain ``def`` hooks.

Why: every YAML node is an async flowlib node, so a sync hook (``def exec(prep_res): ...``) needs a
coroutine around it, which flowlib awaits -- one call more per hook and visit than a hand-written
``async def exec_async``, and in a 10,000-step loop of trivial steps that layer was a tenth of the
runner's time. A twin is the hook's own code compiled once more as ``async def`` from the same
syntax tree, in the same module namespace, with the same defaults, name and line numbers, and every
``return value`` turned into "return the value, awaited first if it is awaitable" -- exactly what
the wrapper did (a sync hook may return an awaitable, which is awaited) -- unless the value is
one that never is (``never_awaitable``: ``return "done"``, ``return n + 1``). The node installs the twin
where the wrapper went. The module's own names keep the original functions, so module code that
calls its hooks itself sees no difference.

The "return it, awaited first if it is awaitable" statements (``settled_return``) also end the
exec method that an inline expression compiles into (``python.py``).

A twin runs the hook's body on the event loop, so it is for the nodes that run sync code there
(base, batch, async_batch). The nodes whose items run concurrently (``parallel_batch``,
``worker_pool``, nodes inside a parallel batch sub-flow) never call it: they run the original
function on a worker thread (``Code.blocking_hooks``, ``factories/threads.py``), where blocking is
harmless.

Only plain cases get a twin: a top-level ``def`` with no decorators (a decorator may wrap it in
anything), that is not a generator, and that is still what the module's name refers to after the
module ran. Every other hook keeps the wrapper.
"""

from __future__ import annotations

import ast
import inspect
import types
from collections.abc import Callable
from typing import Any

RESULT = "__flowlib_result__"
# Results of these types are never awaitable: the common case skips `inspect.isawaitable`.
PLAIN_RESULTS = frozenset({int, float, str, bytes, bool, type(None), list, dict, tuple, set})
# The globals that settled returns read, under names nobody writes.
SETTLE_GLOBALS = {"__flowlib_plain__": PLAIN_RESULTS, "__flowlib_isawaitable__": inspect.isawaitable}
# Expressions whose value is never an awaitable, so returning them needs no check: literals,
# displays, comprehensions, f-strings, operators and comparisons. (An operator could in theory be
# overloaded to return a coroutine; no library does, and the check costs more than a trivial step.)
_NEVER_AWAITABLE = (
    ast.Constant,
    ast.JoinedStr,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Set,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
)


def never_awaitable(expression: ast.expr) -> bool:
    """Whether ``expression``'s value can be returned without checking that it is awaitable.

    Conditional and boolean expressions qualify when every value they may return does
    (``"again" if n < 10 else "done"``); calls, names, attributes and subscripts never do.
    """
    if isinstance(expression, _NEVER_AWAITABLE):
        return True
    if isinstance(expression, ast.IfExp):
        return never_awaitable(expression.body) and never_awaitable(expression.orelse)
    if isinstance(expression, ast.BoolOp):
        return all(never_awaitable(value) for value in expression.values)
    if isinstance(expression, ast.NamedExpr):
        return never_awaitable(expression.value)
    return False


# Names the twins' code reads from the module's globals (set by `coroutine_twins`).


def settled_return(value: ast.expr, at: ast.AST) -> list[ast.stmt]:
    """Statements returning ``value``, awaited first if it is awaitable (unless it never is).

    They read ``SETTLE_GLOBALS`` and carry ``at``'s position; ``value`` keeps its own, so a
    traceback points at the user's code.
    """
    if never_awaitable(value):
        return [ast.copy_location(ast.Return(value=value), at)]
    statements = ast.parse(
        f"{RESULT} = None\n"
        f"if {RESULT}.__class__ in __flowlib_plain__ or not __flowlib_isawaitable__({RESULT}):\n"
        f"    return {RESULT}\n"
        f"return await {RESULT}\n"
    ).body
    for statement in statements:
        place(statement, at)
    assign = statements[0]
    assert isinstance(assign, ast.Assign)
    assign.value = value
    return statements


def place(tree: ast.AST, at: ast.AST) -> None:
    """Give generated code ``at``'s position, so a traceback never shows an unrelated line."""
    for node in ast.walk(tree):
        if "lineno" in node._attributes:
            ast.copy_location(node, at)


def coroutine_twins(
    tree: ast.Module, namespace: dict[str, Any], filename: str, hooks: tuple[str, ...]
) -> dict[str, Callable[..., Any]]:
    """Twins of the plain ``def`` hooks named in ``hooks`` (see the module docstring)."""
    definitions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name in hooks}
    twins: dict[str, Callable[..., Any]] = {}
    for name, definition in definitions.items():
        original = namespace.get(name)
        if not _is_plain_function(original, definition, filename) or _is_generator(definition):
            continue
        assert isinstance(original, types.FunctionType)
        namespace.update(SETTLE_GLOBALS)
        twin_tree = _twin(definition)
        code = compile(ast.fix_missing_locations(ast.Module(body=[twin_tree], type_ignores=[])), filename, "exec")
        exec(code, namespace)  # defines the twin under the hook's name (defaults are placeholders)
        twin = namespace[name]
        namespace[name] = original  # the module's own name keeps the original function
        twin.__defaults__ = original.__defaults__
        twin.__kwdefaults__ = original.__kwdefaults__
        twins[name] = twin
    return twins


def _is_plain_function(value: Any, definition: ast.FunctionDef, filename: str) -> bool:
    return (
        isinstance(value, types.FunctionType)
        and not definition.decorator_list
        and value.__code__.co_filename == filename
        and value.__code__.co_firstlineno == definition.lineno
        and value.__name__ == definition.name
    )


class _OwnScope(ast.NodeVisitor):
    """Finds ``yield`` in a function's own body (nested functions, lambdas and classes aside)."""

    def __init__(self) -> None:
        self.yields = False

    def visit_Yield(self, node: ast.Yield) -> None:
        self.yields = True

    def visit_YieldFrom(self, node: ast.YieldFrom) -> None:
        self.yields = True

    def _skip(self, node: ast.AST) -> None:
        return None

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip


def _is_generator(definition: ast.FunctionDef) -> bool:
    finder = _OwnScope()
    for statement in definition.body:
        finder.visit(statement)
    return finder.yields


class _SettleReturns(ast.NodeTransformer):
    """``return value`` -> return it, awaited first if awaitable; nested scopes left alone."""

    def visit_Return(self, node: ast.Return) -> Any:
        if node.value is None:
            return node
        return settled_return(self.visit(node.value), node)

    def _keep(self, node: ast.AST) -> ast.AST:
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _keep


def _twin(definition: ast.FunctionDef) -> ast.AsyncFunctionDef:
    args = definition.args
    placeholder = ast.Constant(None)
    twin_args = ast.arguments(
        posonlyargs=args.posonlyargs,
        args=args.args,
        vararg=args.vararg,
        kwonlyargs=args.kwonlyargs,
        kw_defaults=[None if d is None else placeholder for d in args.kw_defaults],
        kwarg=args.kwarg,
        defaults=[placeholder for _ in args.defaults],
    )
    transformer = _SettleReturns()
    body: list[ast.stmt] = []
    for statement in definition.body:
        result = transformer.visit(statement)
        body.extend(result if isinstance(result, list) else [result])
    twin = ast.AsyncFunctionDef(
        name=definition.name,
        args=twin_args,
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    return ast.copy_location(twin, definition)
