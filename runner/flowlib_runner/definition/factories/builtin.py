"""Factories for the built-in types: base, batch, async_batch, parallel_batch, worker_pool, flow.

Every node of a YAML flow becomes an async flowlib node (the flow is an ``AsyncFlow``): ``batch``
and ``async_batch`` are both ``AsyncBatchNode`` (items one after another; the two names exist for
the seed format), ``parallel_batch`` is ``AsyncParallelBatchNode``, ``worker_pool`` is
``WorkerPoolBatchNode`` and ``flow`` is an ``AsyncFlow`` (with ``batch``: ``AsyncBatchFlow``, or
``AsyncParallelBatchFlow`` when ``batch.maxParallel`` > 1).
"""

from __future__ import annotations

import ast
from typing import Any

from flowlib_api.flowspec import ERROR_ACTION, NodeSpec

from ..problems import Problem, join_path
from ..runkinds import BuildError, Code, run_block_keys
from ..runkinds.python import HOOKS
from ..templates import Template
from . import BuildContext, ValidationContext
from .specialise import NodeSettings, hoist, run_graph_on_threads, specialised_class

BATCH_TYPES = ("batch", "async_batch", "parallel_batch", "worker_pool")
DEFAULT_MAX_PARALLEL = 8


def _python_defines(code: str) -> set[str]:
    """The prep/exec/post/exec_fallback functions inline code defines (parsing only)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in HOOKS}


def retry_kwargs(node: NodeSpec) -> dict[str, Any]:
    """flowlib Node keyword arguments for the node's retry and timeout settings."""
    kwargs: dict[str, Any] = {}
    if node.retry is not None:
        r = node.retry
        kwargs.update(max_retries=r.max_retries, wait=r.wait, backoff=r.backoff, max_wait=r.max_wait, jitter=r.jitter)
    if node.timeout is not None:
        kwargs["timeout"] = node.timeout
    return kwargs


class _SpecNodeFactory:
    """A node whose behaviour comes from its ``run`` block."""

    batch = False
    node_class: type[Any]

    def __init__(self, type_name: str, node_class: type[Any], *, batch: bool) -> None:
        self.type_name = type_name
        self.node_class = node_class
        self.batch = batch

    def validate(self, name: str, node: NodeSpec, path: str, ctx: ValidationContext) -> list[Problem]:
        problems: list[Problem] = []
        if node.flow is not None:
            problems.append(
                Problem(join_path(path, "flow"), "only type flow runs a sub-flow; set type: flow or remove flow")
            )
        if not self.batch:
            if node.batch is not None:
                problems.append(
                    Problem(
                        join_path(path, "batch"),
                        f"type {self.type_name} does not take batch; use type worker_pool (or batch, "
                        "async_batch, "
                        "parallel_batch) to run exec per item, or remove batch",
                    )
                )
            return problems
        has_items = node.batch is not None and node.batch.items is not None
        if not has_items and node.run is None:
            problems.append(
                Problem(
                    join_path(path, "batch", "items"),
                    f"a {self.type_name} node without batch.items and without code processes zero items; "
                    "set batch.items to a dotted path into shared (e.g. batch: {items: docs})",
                    "warning",
                )
            )
        elif not has_items and not self._prep_may_supply_items(node):
            problems.append(
                Problem(
                    join_path(path, "batch", "items"),
                    f"a {self.type_name} node needs items: set batch.items to a dotted path into shared "
                    "(e.g. batch: {items: docs}) or define prep in the node's python code to return them",
                )
            )
        problems.extend(batch_policy_problems(node, path, sub_flow=False))
        if (
            self.type_name in ("batch", "async_batch")
            and node.batch is not None
            and node.batch.max_parallel is not None
        ):
            problems.append(
                Problem(
                    join_path(path, "batch", "maxParallel"),
                    f"type {self.type_name} runs items one after another, so maxParallel has no effect; "
                    "use type worker_pool or parallel_batch to run items in parallel",
                    "warning",
                )
            )
        return problems

    @staticmethod
    def _prep_may_supply_items(node: NodeSpec) -> bool:
        if node.run is None:
            return False
        if node.run.python is not None:
            return "prep" in _python_defines(node.run.python)
        # call targets and plugin kinds may well bring their own prep: only the build can tell.
        return any(k not in ("python", "shell", "command", "http") for k in run_block_keys(node.run))

    def build(self, name: str, node: NodeSpec, ctx: BuildContext) -> Any:
        code = _build_code(name, node, ctx, batch=self.batch)
        if code.node_class is not None:
            return _user_node(name, node, code.node_class)
        kwargs = retry_kwargs(node)
        if self.type_name == "worker_pool":
            max_parallel = node.batch.max_parallel if node.batch is not None else None
            kwargs["max_parallel"] = max_parallel or DEFAULT_MAX_PARALLEL
        settings = NodeSettings(
            name=name,
            node_type=self.type_name,
            output=node.output or name,
            action_template=Template(node.action, f"nodes.{name}.action") if node.action else None,
            items_path=node.batch.items if node.batch is not None else None,
            is_batch=self.batch,
            error_edge=ERROR_ACTION in node.next,
            param_defaults=dict(node.params or {}),
            max_parallel=node.batch.max_parallel
            if self.type_name == "parallel_batch" and node.batch is not None
            else None,
            on_item_error=node.batch.on_item_error if node.batch is not None else "fail",
            max_failures=node.batch.max_failures if node.batch is not None else None,
            errors_output=node.batch.errors_output if node.batch is not None else None,
        )
        return hoist(specialised_class(self.node_class, code, settings)(name=name, **kwargs))


def _build_code(name: str, node: NodeSpec, ctx: BuildContext, *, batch: bool) -> Code:
    if node.run is None:
        return Code()
    keys = run_block_keys(node.run)
    from ..runkinds import KIND_KEYS

    kinds = {KIND_KEYS.get(k, k) for k in keys if k not in ("parse", "env", "workingDir")}
    if len(kinds) != 1:
        raise BuildError(f"nodes.{name}.run: expected exactly one run kind, found {sorted(kinds) or 'none'}")
    return ctx.run_kinds.get(kinds.pop()).build(node.run, node=name, batch=batch)


def _user_node(name: str, node: NodeSpec, cls: type[Any]) -> Any:
    """A user's flowlib Node subclass, given the node's name, retries, params defaults and error edge."""
    import flowlib

    from .nodes import ParamsAndErrorEdge

    where = f"nodes.{name}"
    if node.output is not None or node.action is not None:
        raise BuildError(
            f"{where}: output and action do not apply when run.call names a Node class ({cls.__name__}); "
            "its post() stores results and returns the action; remove them"
        )
    wrapped = type(cls.__name__, (ParamsAndErrorEdge, cls), {"__module__": cls.__module__})
    try:
        instance = wrapped()
    except TypeError as exc:
        raise BuildError(f"{where}: cannot create {cls.__name__}() without arguments: {exc}") from exc
    instance.name = name
    settings = retry_kwargs(node)
    if "timeout" in settings and not isinstance(instance, flowlib.AsyncNode):
        raise BuildError(f"{where}.timeout: {cls.__name__} is a sync node; timeouts need an AsyncNode subclass")
    for attr, value in settings.items():
        setattr(instance, attr, value)
    if node.batch is not None and node.batch.max_parallel is not None:
        instance.max_parallel = node.batch.max_parallel
    instance.error_edge = ERROR_ACTION in node.next
    instance.param_defaults = dict(node.params or {})
    return instance


def batch_policy_problems(node: NodeSpec, path: str, *, sub_flow: bool) -> list[Problem]:
    """The item error policy's fields used where they cannot apply."""
    batch = node.batch
    if batch is None:
        return []
    problems: list[Problem] = []
    if batch.on_item_error != "continue":
        for field, value in (("maxFailures", batch.max_failures), ("errorsOutput", batch.errors_output)):
            if value is not None:
                problems.append(
                    Problem(
                        join_path(path, "batch", field),
                        f"batch.{field} applies when failed items are let through; set batch.onItemError: "
                        f"continue, or remove {field}",
                    )
                )
    if batch.item_output is not None and not sub_flow:
        problems.append(
            Problem(
                join_path(path, "batch", "itemOutput"),
                "batch.itemOutput picks each item's result in a batch sub-flow (type flow); a batch node's "
                "results are exec's return values; remove itemOutput",
            )
        )
    return problems


class FlowNodeFactory:
    """type: flow: another Flow, by name, run as a node (optionally once per batch item)."""

    type_name = "flow"
    batch = False

    def validate(self, name: str, node: NodeSpec, path: str, ctx: ValidationContext) -> list[Problem]:
        problems: list[Problem] = []
        if node.flow is None:
            problems.append(
                Problem(join_path(path, "flow"), "type flow needs flow: <name of the Flow to run as a sub-flow>")
            )
        for field, why in (
            ("run", "the sub-flow is what runs; remove run or change type"),
            ("retry", "a sub-flow is not retried; put retry on its nodes"),
            ("timeout", "a sub-flow has no timeout; put timeout on its nodes"),
        ):
            if getattr(node, field) is not None:
                problems.append(Problem(join_path(path, field), f"not supported on type flow: {why}"))
        if node.output is not None and node.batch is None:
            problems.append(
                Problem(
                    join_path(path, "output"),
                    "not supported on type flow without batch: the sub-flow writes to the same shared store "
                    "directly; remove output (a batch sub-flow's output is the list of its items' results)",
                )
            )
        if node.batch is not None and node.batch.items is None:
            problems.append(
                Problem(
                    join_path(path, "batch", "items"),
                    "a batch sub-flow needs batch.items: a dotted path into shared whose items become the "
                    "sub-flow's params (dict items as they are, others as {item: value})",
                )
            )
        problems.extend(batch_policy_problems(node, path, sub_flow=True))
        return problems

    def build(self, name: str, node: NodeSpec, ctx: BuildContext) -> Any:
        from .nodes import YamlBatchFlow, YamlParallelBatchFlow, YamlSubFlow

        assert node.flow is not None
        inner = ctx.subflow(node.flow)
        cls: type[Any] = YamlSubFlow
        max_parallel = node.batch.max_parallel if node.batch is not None else None
        if node.batch is not None:
            cls = YamlParallelBatchFlow if (max_parallel or 1) > 1 else YamlBatchFlow
        built = cls(inner.start_node, max_steps=inner.max_steps, name=name)
        if cls is YamlSubFlow:
            built.final_node = getattr(inner, "final_node", None)
        if cls is YamlParallelBatchFlow:
            run_graph_on_threads(built.start_node)
        if node.batch is not None:
            built.max_parallel = max_parallel or 1
            built.output = node.output or name
            built.item_output = node.batch.item_output
            built.on_item_error = node.batch.on_item_error
            built.max_failures = node.batch.max_failures
            built.errors_output = node.batch.errors_output
        built.param_defaults = {**inner.params, **(node.params or {})}
        built.items_path = node.batch.items if node.batch is not None else None
        built.action_template = Template(node.action, f"nodes.{name}.action") if node.action else None
        built.error_edge = ERROR_ACTION in node.next
        return built


def builtin_factories() -> list[Any]:
    from .approval import ApprovalNodeFactory
    from .nodes import YamlBatchNode, YamlNode, YamlParallelBatchNode, YamlWorkerPoolBatchNode

    return [
        _SpecNodeFactory("base", YamlNode, batch=False),
        _SpecNodeFactory("batch", YamlBatchNode, batch=True),
        _SpecNodeFactory("async_batch", YamlBatchNode, batch=True),
        _SpecNodeFactory("parallel_batch", YamlParallelBatchNode, batch=True),
        _SpecNodeFactory("worker_pool", YamlWorkerPoolBatchNode, batch=True),
        FlowNodeFactory(),
        ApprovalNodeFactory(),
    ]
