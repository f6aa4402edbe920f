"""``run: {call: "package.module:attr"}``: bring your own code, installed in the runner image.

The target is either a callable, used as exec: ``fn(shared)`` in plain nodes (the node's prep hands
it the shared store), ``fn(item)`` in batch nodes; ``async def`` is awaited on the event loop; a
sync function runs on a worker thread in the nodes whose items run concurrently (``parallel_batch``,
``worker_pool``, any node inside a parallel batch sub-flow; see ``factories/threads.py``), inline
on the event loop in the others. Its return value (awaited if awaitable) goes to
``shared[output]``. Or it is a flowlib Node subclass, which then *is* the node (its own
prep/exec/post decide; ``output`` and ``action`` do not apply). Validation only checks the
spelling of the target; the import happens at build time.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from flowlib_api.flowspec import RunSpec

from ..problems import Problem, join_path
from . import BuildError, Code, NodeRuntime, is_blocking

_TARGET = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)


def import_target(target: str, *, where: str) -> Any:
    """Import ``package.module:attr`` (attr may be dotted); BuildError says what went wrong."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise BuildError(
            f"{where}: cannot import module '{module_name}' ({exc}); install it in the runner image or fix the name"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise BuildError(f"{where}: '{module_name}' has no attribute '{attr_path}'") from exc
    return obj


class CallKind:
    name = "call"

    def validate(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        target = run.call or ""
        if not _TARGET.match(target):
            return [
                Problem(
                    join_path(path, "call"),
                    f"'{target}' is not a call target; write package.module:attr (e.g. mypkg.nodes:summarize)",
                )
            ]
        return []

    def build(self, run: RunSpec, *, node: str, batch: bool) -> Code:
        import flowlib

        where = f"nodes.{node}.run.call"
        obj = import_target(run.call or "", where=where)
        if isinstance(obj, type) and issubclass(obj, flowlib.BaseNode):
            return NodeClassCode(obj)
        if not callable(obj):
            raise BuildError(f"{where}: '{run.call}' is a {type(obj).__name__}, not a callable or a Node class")
        return CallableCode(obj, batch=batch)


class CallableCode(Code):
    has_exec = True

    def __init__(self, fn: Any, *, batch: bool) -> None:
        self._fn = fn
        self.has_prep = not batch
        if is_blocking(fn):
            self.blocking_hooks = {"exec": fn}  # exec's payload is fn's one argument (shared, or the item)

    async def prep(self, node: NodeRuntime, shared: dict[str, Any]) -> Any:
        return shared

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        result = self._fn(payload)
        if inspect.isawaitable(result):
            result = await result
        return result


class NodeClassCode(Code):
    def __init__(self, cls: type[Any]) -> None:
        self.node_class = cls
