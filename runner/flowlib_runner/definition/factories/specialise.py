"""A class per YAML node whose hot methods do only what that node's spec asks for.

Why: a flow walks a node thousands of times (a loop) and a batch node runs exec once per item. A
general method asking at every call "an expression? a sync hook? an output to store? an action
template? an error edge?" cost more than a trivial step of user code (issue 3's benchmark of the
runner against bare flowlib). So the factory answers those questions once, at build time: each
method below is chosen or built as a closure for the node's ``Code`` and settings, and a method
the node does not need is not overridden at all (flowlib's own default runs).

The behaviour is the one described in ``nodes.py`` (``SpecBehaviour``), whatever was chosen:
prep keeps the shared store and the node snapshot when the code or a template reads them, then
runs the code's prep or resolves ``batch.items``; exec runs the code's exec; post stores exec's
result under ``output``, runs the code's post, then lets the ``action`` template pick the edge; a
node with an ``error`` edge turns its final failure into that edge.

Where sync code runs is decided here too (the rule is in ``threads.py``): a node whose items run
concurrently (its base is a parallel batch or worker pool class) calls the code's
``blocking_hooks`` on worker threads; every other node calls ``direct_hooks`` (coroutine twins of
plain ``def`` hooks) on the event loop with no thread hop. A parallel batch sub-flow, whose items
each walk the sub-flow at once, switches every node of its graph to the class ``threaded_variant``
makes (the same class with threaded hooks), when it is built. Such classes also bound each exec
attempt's ``timeout`` in a way that works for eagerly started items (``threads.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flowlib

from ..runkinds import Code
from ..runkinds.python import NodeInfo
from ..runkinds.twins import PLAIN_RESULTS
from ..templates import Template
from .threads import attempt_within_timeout, on_thread

Method = Callable[..., Any]


@dataclass(frozen=True)
class NodeSettings:
    """A node's settings from its spec, besides its code and flowlib's constructor arguments."""

    name: str
    node_type: str
    output: str | None
    action_template: Template | None
    items_path: str | None
    is_batch: bool
    error_edge: bool
    param_defaults: dict[str, Any]
    max_parallel: int | None = None  # parallel_batch's bound (not a flowlib constructor argument)
    on_item_error: str = "fail"
    max_failures: int | str | None = None
    errors_output: str | None = None


def specialised_class(base: type[Any], code: Code, settings: NodeSettings) -> type[Any]:
    """A subclass of ``base`` (a ``SpecBehaviour`` node class) specialised for ``code`` and ``settings``.

    It keeps ``base``'s name, so logs and events still say ``YamlNode``, ``YamlWorkerPoolBatchNode``...
    One class serves one node, so the node's settings live on it, not on the instance: flows copy a
    node on every visit (PocketFlow's model), and the copy is a dict copy of the instance.
    Sync hooks run on worker threads when ``base`` runs its items concurrently (``threads.py``).
    """
    threaded = runs_items_at_once(base)
    namespace: dict[str, Any] = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "spec_settings": settings,
        "code": code,
        "node_type": settings.node_type,
        "output": settings.output,
        "action_template": settings.action_template,
        "items_path": settings.items_path,
        "error_edge": settings.error_edge,
        "param_defaults": settings.param_defaults,
    }
    if settings.max_parallel is not None:
        namespace["max_parallel"] = settings.max_parallel
    if settings.is_batch:
        namespace["on_item_error"] = settings.on_item_error
        namespace["max_failures"] = settings.max_failures
        namespace["errors_output"] = settings.errors_output
        namespace["keeps_output"] = code.has_exec
    for name, method in (
        ("set_params", None if settings.param_defaults else _plain_set_params),
        ("_run_async", _run_async(base, code, settings)),
    ):
        if method is not None:
            namespace[name] = method
    namespace.update(_hook_methods(code, settings, threaded=threaded))
    return type(base.__name__, (base,), namespace)


def runs_items_at_once(base: type[Any]) -> bool:
    """Whether nodes of ``base`` run their items concurrently (their sync hooks go to threads)."""
    return issubclass(base, flowlib.AsyncParallelBatchNode | flowlib.WorkerPoolBatchNode)


def threaded_variant(cls: type[Any]) -> type[Any] | None:
    """``cls`` (made by ``specialised_class``) as a node whose items run concurrently -- its sync
    hooks on worker threads, its timeout safe for eagerly started items -- for a node inside a
    parallel batch sub-flow; None when ``cls`` is not a specialised class or is one already. A
    subclass: the hoisted settings carry over."""
    settings: NodeSettings | None = getattr(cls, "spec_settings", None)
    code: Code | None = getattr(cls, "code", None)
    if settings is None or code is None or getattr(cls, "on_threads", False):
        return None
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    namespace.update(_hook_methods(code, settings, threaded=True))
    return type(cls.__name__, (cls,), namespace)


def _hook_methods(code: Code, settings: NodeSettings, *, threaded: bool) -> dict[str, Method]:
    """prep/exec/exec_fallback/post for the node (the ones it needs); for a node whose items run
    concurrently (``threaded``) also its per-attempt timeout and the threading flags."""
    from .nodes import resolve_items

    keep_shared = code.reads_node_shared or settings.action_template is not None
    node_info = code.needs_node_info
    methods: dict[str, Any] = {}
    if threaded:
        methods["on_threads"] = True
        methods["_attempt"] = attempt_within_timeout
        # Per-item code on threads: a parallel_batch without maxParallel bounds its items (nodes.py).
        methods["item_threads"] = "exec" in code.blocking_hooks or "exec_fallback" in code.blocking_hooks
    for name, method in (
        ("prep_async", _prep(code, settings, keep_shared, node_info, resolve_items, threaded=threaded)),
        ("exec_async", _exec(code, threaded)),
        ("exec_fallback_async", _fallback(code, threaded)),
        ("post_async", _post(code, settings, threaded)),
    ):
        if method is not None:
            methods[name] = method
    return methods


def _hook(code: Code, name: str, threaded: bool) -> Method | None:
    """The code's hook ``name`` as the node calls it: the sync function on a worker thread (a
    coroutine function) in a threaded node, else the direct hook (``async def``, or a twin)."""
    if threaded:
        blocking = code.blocking_hooks.get(name)
        if blocking is not None:
            return on_thread(blocking)
    return code.direct_hooks.get(name)


# What flowlib's node constructors store on the instance; constant for a YAML node.
CONSTRUCTOR_SETTINGS = ("max_retries", "wait", "backoff", "max_wait", "jitter", "timeout", "max_parallel")


def hoist(node: Any) -> Any:
    """Move the settings flowlib's constructor stored on ``node`` onto its class (made for it alone
    by ``specialised_class``), for the same reason as the rest of its settings live there."""
    cls = type(node)
    for key in CONSTRUCTOR_SETTINGS:
        if key in node.__dict__:
            setattr(cls, key, node.__dict__.pop(key))
    return node


def _plain_set_params(self: Any, params: dict[str, Any]) -> None:
    self.params = params


def _settle_call(fn: Method) -> Method:
    """``fn``'s call as a coroutine function: awaited if ``async def``, else awaited only if its
    result is awaitable (the direct hooks' contract)."""
    if inspect.iscoroutinefunction(fn):
        return fn

    async def call(*args: Any) -> Any:
        result = fn(*args)
        if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
            return result
        return await result

    return call


def _run_async(base: type[Any], code: Code, settings: NodeSettings) -> Method | None:
    """flowlib's ``_run_async`` where nothing needs wrapping; ``ParamsAndErrorEdge``'s for an error
    edge (inherited); either of them inside the code's visit context when it has one."""
    from .nodes import ParamsAndErrorEdge

    parent: Method = super(ParamsAndErrorEdge, base)._run_async
    var = code.visit_context
    if var is None:
        return None if settings.error_edge else parent
    run: Method = ParamsAndErrorEdge._run_async if settings.error_edge else parent

    async def _run_async(self: Any, shared: Any) -> Any:
        token = var.set(self)
        try:
            return await run(self, shared)
        finally:
            var.reset(token)

    return _run_async


def _prep(
    code: Code,
    settings: NodeSettings,
    keep_shared: bool,
    node_info: bool,
    resolve_items: Callable[..., Any],
    *,
    threaded: bool,
) -> Method | None:
    hook = _hook(code, "prep", threaded)
    if hook is not None and not keep_shared and not node_info:
        return staticmethod(_settle_call(hook))  # an `async def` hook: awaited by flowlib, no layer of ours
    # What prep computes, as `compute(node, shared)`: a value, or an awaitable of one.
    compute: Callable[[Any, Any], Any]
    if hook is not None:
        user = hook
        compute = lambda node, shared: user(shared)  # noqa: E731
    elif code.has_prep:
        compute = code.prep
    elif settings.is_batch and settings.items_path is not None:
        items_path, where = settings.items_path, f"nodes.{settings.name}.batch.items"
        compute = lambda node, shared: resolve_items(shared, items_path, where)  # noqa: E731
    elif settings.is_batch:
        compute = lambda node, shared: []  # noqa: E731
    elif not keep_shared and not node_info:
        return None  # flowlib's prep_async: returns None
    else:
        compute = lambda node, shared: None  # noqa: E731

    async def prep_async(self: Any, shared: Any) -> Any:
        if keep_shared:
            self.shared = shared
        if node_info:
            self.node_info = NodeInfo(self)
        result = compute(self, shared)
        if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
            return result
        return await result

    return prep_async


def _exec(code: Code, threaded: bool) -> Method | None:
    if code.exec_method is not None:
        return code.exec_method  # an expression: always on the loop (it costs less than a thread hop)
    hook = _hook(code, "exec", threaded)
    if hook is not None:
        return staticmethod(_settle_call(hook))  # an `async def` hook: awaited by flowlib, no layer of ours
    if code.has_exec:
        code_exec = code.exec

        async def exec_async_code(self: Any, prep_res: Any) -> Any:
            return await code_exec(self, prep_res)

        return exec_async_code
    return None  # flowlib's exec_async: returns None, and nothing is stored


def _fallback(code: Code, threaded: bool) -> Method | None:
    hook = _hook(code, "exec_fallback", threaded)
    if hook is not None:
        return staticmethod(_settle_call(hook))
    if code.has_fallback:
        code_fallback = code.fallback

        async def exec_fallback_code(self: Any, prep_res: Any, exc: Exception) -> Any:
            return await code_fallback(self, prep_res, exc)

        return exec_fallback_code
    return None  # flowlib's: re-raises


def _post(code: Code, settings: NodeSettings, threaded: bool) -> Method | None:
    output = settings.output if code.has_exec else None
    template = settings.action_template
    hook = _hook(code, "post", threaded)
    code_post = code.post if hook is None and code.has_post else None
    if hook is None and code_post is None and output is None and template is None:
        return None  # flowlib's post_async: no action

    if hook is not None and template is None and inspect.iscoroutinefunction(hook):
        user = hook

        def post_async_direct(self: Any, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            # Not a coroutine of its own: flowlib awaits the hook's coroutine that this returns.
            if output is not None:
                shared[output] = exec_res
            return user(shared, prep_res, exec_res)

        return post_async_direct

    call = None if hook is None else _settle_call(hook)

    async def post_async(self: Any, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        if output is not None:
            shared[output] = exec_res
        action: Any = None
        if call is not None:
            action = await call(shared, prep_res, exec_res)
        elif code_post is not None:
            action = await code_post(self, shared, prep_res, exec_res)
        if template is not None:
            context = self.template_context()
            context["result"] = exec_res
            action = template.render(context).strip() or None
        return action

    return post_async


def run_graph_on_threads(start: Any) -> None:
    """Give every spec node reachable from ``start`` -- through edges, sub-flows and ``finally``
    nodes -- its class with sync hooks on worker threads (``threaded_variant``). User
    Node classes (``call`` naming one) and plugin nodes are left as they are."""
    seen: set[int] = set()
    pending = [start]
    while pending:
        node = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variant = threaded_variant(type(node))
        if variant is not None:
            node.__class__ = variant
        pending.extend(getattr(node, "successors", {}).values())
        pending.append(getattr(node, "start_node", None))
        pending.append(getattr(node, "final_node", None))
