"""Node factories: one per ``type``, in a registry that plugins extend through entry points.

A factory has two halves, like a run kind. ``validate`` checks the type-specific rules of a node
without importing user code (the operator runs it). ``build`` returns the flowlib node for a
validated spec. Third-party types register under the entry-point group ``flowlib.node_types``
(name = the ``type`` value; value = a NodeFactory object or class); validation knows their names
from package metadata alone and imports them only when a flow is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from flowlib_api.flowspec import NodeSpec

from ..problems import Problem
from ..runkinds import BuildError, RunKindRegistry, default_run_kinds

NODE_TYPES_GROUP = "flowlib.node_types"
TYPE_ALIASES = {"worker_pool_batch": "worker_pool"}


@dataclass
class ValidationContext:
    """What a factory may consult while validating: the known run kinds and flows."""

    run_kinds: RunKindRegistry
    flows: set[str] = field(default_factory=set)


@dataclass
class BuildContext:
    """What a factory needs to build: run kinds and a way to build a named sub-flow afresh."""

    run_kinds: RunKindRegistry
    subflow: Callable[[str], Any]
    flow_name: str = ""


class NodeFactory(Protocol):
    """Builds the flowlib node for one ``type``."""

    type_name: str
    #: True when the type runs exec per item (validation then requires a source of items).
    batch: bool

    def validate(self, name: str, node: NodeSpec, path: str, ctx: ValidationContext) -> list[Problem]:
        """Type-specific problems of ``node`` (``path`` is ``nodes.<name>``); never imports user code."""
        ...

    def build(self, name: str, node: NodeSpec, ctx: BuildContext) -> Any:
        """The flowlib node (``node.name`` = ``name``); may import user code; raises BuildError."""
        ...


class NodeTypeRegistry:
    """Built-in factories, aliases, and plugin factories from entry points (loaded lazily)."""

    def __init__(
        self,
        builtins: Mapping[str, NodeFactory],
        *,
        aliases: Mapping[str, str] | None = None,
        discover: bool = True,
    ) -> None:
        self._factories: dict[str, NodeFactory] = dict(builtins)
        self.aliases: dict[str, str] = dict(aliases or {})
        self._plugins = {ep.name: ep for ep in entry_points(group=NODE_TYPES_GROUP)} if discover else {}

    def canonical(self, type_name: str) -> str:
        return self.aliases.get(type_name, type_name)

    def names(self) -> set[str]:
        """Every spelling validation accepts (built-ins, aliases, plugins)."""
        return set(self._factories) | set(self.aliases) | set(self._plugins)

    def loaded(self, type_name: str) -> NodeFactory | None:
        """The factory if built in or already loaded; never imports a plugin."""
        return self._factories.get(self.canonical(type_name))

    def register(self, factory: NodeFactory) -> None:
        self._factories[factory.type_name] = factory

    def get(self, type_name: str) -> NodeFactory:
        """The factory, importing its plugin if needed (build time only)."""
        name = self.canonical(type_name)
        if name not in self._factories:
            if name not in self._plugins:
                raise BuildError(f"unknown node type '{type_name}'; known types: {', '.join(sorted(self.names()))}")
            obj = self._plugins[name].load()
            self._factories[name] = obj() if isinstance(obj, type) else obj
        return self._factories[name]


def default_registry(*, discover: bool = True) -> NodeTypeRegistry:
    """Built-in types (base, batch, async_batch, parallel_batch, worker_pool, flow) and plugins."""
    from .builtin import builtin_factories

    return NodeTypeRegistry({f.type_name: f for f in builtin_factories()}, aliases=TYPE_ALIASES, discover=discover)


__all__ = [
    "NODE_TYPES_GROUP",
    "BuildContext",
    "BuildError",
    "NodeFactory",
    "NodeTypeRegistry",
    "ValidationContext",
    "default_registry",
    "default_run_kinds",
]
