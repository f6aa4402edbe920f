"""Run kinds: what a node runs (``run: {python: ...}``, ``call``, ``shell``/``command``, ``http``).

A run kind has two halves. ``validate`` checks a ``run`` block without importing or running
anything (the operator calls it). ``build`` turns the block into a ``Code``: the prep/exec/post
hooks a generated flowlib node delegates to. Third-party kinds register under the entry-point group
``flowlib.run_kinds`` (name = the key in ``run``; value = a RunKind object or class); validation
knows their names from package metadata without importing them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from flowlib_api.flowspec import RunSpec

from ..problems import Problem

RUN_KINDS_GROUP = "flowlib.run_kinds"

# Keys of `run` that configure a kind instead of naming one.
MODIFIER_KEYS = {
    "parse": ("shell", "command"),
    "env": ("shell", "command"),
    "workingDir": ("shell", "command"),
}
# `command` is the argv spelling of the shell kind.
KIND_KEYS = {"python": "python", "call": "call", "shell": "shell", "command": "shell", "http": "http"}


@runtime_checkable
class NodeRuntime(Protocol):
    """What Code sees of the running node: its name, type, params and the shared store."""

    name: str
    node_type: str
    params: dict[str, Any]
    shared: dict[str, Any]

    def template_context(self, item: Any = None) -> dict[str, Any]: ...


class Code:
    """The hooks a run kind gives a node; each ``has_*`` flag says whether the hook is provided.

    ``payload`` is prep's result for plain nodes and the current item for batch nodes. When
    ``node_class`` is set (``call`` naming a flowlib Node subclass) it replaces the generated node.

    The coroutines (``prep``, ``exec``, ``post``, ``fallback``) are the general form. Because the
    node class is generated per node at build time (``factories/specialise.py``) a code may offer
    a hook in a faster form instead; the node then calls that form only, never the coroutine:

    - ``direct_hooks``: plain functions with PocketFlow's arguments and no node (``"prep"``,
      ``"exec"``, ``"post"``, ``"exec_fallback"``), ``def`` or ``async def``; the node calls them
      itself (a sync one's result is awaited only if it is awaitable).
    - ``exec_method``: an ``async def (node, payload)`` installed as the node's ``exec_async``.
    - ``blocking_hooks``: the hooks that are plain (sync) functions, by the same names and with the
      same arguments as ``direct_hooks``: the user's own functions, never coroutine twins. A node
      whose items run concurrently (``parallel_batch``, ``worker_pool``, any node inside a parallel
      batch sub-flow) calls these on worker threads instead (``factories/threads.py``); every other
      node ignores them and calls ``direct_hooks`` or the coroutines on the event loop. A code
      whose only exec is a coroutine leaves ``exec`` out.

    And what a visit must prepare for the code:

    - ``visit_context``: a context variable the node sets to itself for its whole visit (module
      code's ``params`` and ``node`` read it), so the direct calls need no per-call setup.
    - ``needs_node_info``: the node keeps a ``NodeInfo`` snapshot as ``node_info`` for each visit.
    - ``reads_node_shared``: the code reads ``node.shared`` (or ``template_context``), so the node
      keeps the shared store as ``shared`` each visit; True unless the code knows better.

    Why: a batch node runs exec once per item and a loop visits a node thousands of times; a
    coroutine of ours around a trivial user function cost more than the function.
    """

    has_prep = False
    has_exec = False
    has_post = False
    has_fallback = False
    node_class: type[Any] | None = None
    direct_hooks: Mapping[str, Callable[..., Any]] = {}
    exec_method: Callable[..., Any] | None = None
    blocking_hooks: Mapping[str, Callable[..., Any]] = {}
    visit_context: ContextVar[Any] | None = None
    needs_node_info = False
    reads_node_shared = True

    async def prep(self, node: NodeRuntime, shared: dict[str, Any]) -> Any:
        return None

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        return None

    async def post(self, node: NodeRuntime, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> Any:
        return None

    async def fallback(self, node: NodeRuntime, payload: Any, exc: Exception) -> Any:
        raise exc


def is_blocking(fn: Any) -> bool:
    """Whether ``fn`` is sync code, which may block: anything callable but an ``async def`` (or an
    object whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(fn):
        return False
    call = getattr(type(fn), "__call__", None)  # noqa: B004 (the method itself, not callable())
    return not (call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call))


class RunKind(Protocol):
    """A kind of ``run`` block. ``name`` is its key in ``run``."""

    name: str

    def validate(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        """Problems in ``run`` (``path`` points at the run block); must not import or run user code."""
        ...

    def build(self, run: RunSpec, *, node: str, batch: bool) -> Code:
        """The node's Code; may import user modules; raises ``BuildError`` with a readable message."""
        ...


class BuildError(RuntimeError):
    """A validated definition still cannot be built (a ``call`` target that does not import...)."""


def run_block_keys(run: RunSpec) -> list[str]:
    """The keys actually set in a run block, in canonical spelling (built-ins and plugin keys)."""
    keys = [RunSpec.model_fields[f].alias or f for f in run.model_fields_set if f in RunSpec.model_fields]
    keys.extend((run.model_extra or {}).keys())
    return sorted(keys)


class RunKindRegistry:
    """Built-in run kinds plus those from the ``flowlib.run_kinds`` entry-point group (loaded lazily)."""

    def __init__(self, builtins: Mapping[str, RunKind], *, discover: bool = True) -> None:
        self._kinds: dict[str, RunKind] = dict(builtins)
        self._plugins = {ep.name: ep for ep in entry_points(group=RUN_KINDS_GROUP)} if discover else {}

    def names(self) -> set[str]:
        return set(self._kinds) | set(self._plugins)

    def is_loaded(self, name: str) -> bool:
        return name in self._kinds

    def loaded(self, name: str) -> RunKind | None:
        """The kind if it is built in or already loaded; never imports a plugin."""
        return self._kinds.get(name)

    def register(self, kind: RunKind) -> None:
        self._kinds[kind.name] = kind

    def get(self, name: str) -> RunKind:
        """The kind, importing its plugin if needed (build time only)."""
        if name not in self._kinds:
            if name not in self._plugins:
                raise BuildError(f"unknown run kind '{name}'; known kinds: {', '.join(sorted(self.names()))}")
            obj = self._plugins[name].load()
            kind = obj() if isinstance(obj, type) else obj
            self._kinds[name] = kind
        return self._kinds[name]


def default_run_kinds(*, discover: bool = True) -> RunKindRegistry:
    """A registry with the built-in kinds (python, call, shell, http) and, by default, plugins."""
    from .call import CallKind
    from .http import HttpKind
    from .python import PythonKind
    from .shell import ShellKind

    builtins: list[RunKind] = [PythonKind(), CallKind(), ShellKind(), HttpKind()]
    return RunKindRegistry({k.name: k for k in builtins}, discover=discover)
