"""Building a validated definition into its flowlib graph: where user code is imported and compiled.

Apart from ``loader`` so that validation (the operator's part) never imports flowlib, the node
classes or anything a ``call`` names; only the runner and ``flowctl run`` build.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flowlib
from flowlib_api.flowspec import FlowSpec
from flowlib_api.params import flow_params

from .factories import BuildContext, NodeTypeRegistry
from .factories.nodes import YamlFlow
from .loader import FlowDefinition, default_loader
from .runkinds import BuildError, RunKindRegistry
from .validate import find_start


class _Builder:
    def __init__(self, defn: FlowDefinition, registry: NodeTypeRegistry, run_kinds: RunKindRegistry) -> None:
        self.defn = defn
        self.registry = registry
        self.ctx = BuildContext(run_kinds, self.subflow, defn.name)

    def subflow(self, name: str) -> flowlib.AsyncFlow:
        if name not in self.defn.subflows:
            raise BuildError(f"sub-flow '{name}' is not part of the definition; load it with its library")
        return self.flow(self.defn.subflows[name], name)

    def flow(self, spec: FlowSpec, name: str) -> flowlib.AsyncFlow:
        nodes = {n: self.registry.get(node.type).build(n, node, self.ctx) for n, node in spec.nodes.items()}
        for n, node in spec.nodes.items():
            for action, target in node.next.items():
                nodes[n].next(nodes[target], action)
        flow = YamlFlow(nodes[find_start(spec)], max_steps=spec.max_steps, name=name)
        if spec.finally_ is not None:
            flow.final_node = nodes[spec.finally_]
        flow.set_params(flow_params(spec.param_schema, spec.params))  # declared defaults under spec.params
        return flow


def build_flow(
    defn: FlowDefinition,
    *,
    params: Mapping[str, Any] | None = None,
    registry: NodeTypeRegistry | None = None,
    run_kinds: RunKindRegistry | None = None,
) -> flowlib.AsyncFlow:
    """The flowlib graph of a definition; run params override the spec's params.

    This is where user code is imported (``call``) and compiled and executed (inline ``python``
    module code); a ``call`` target that cannot be imported raises ``BuildError`` naming the node.
    Node names are the YAML keys, so event paths are the YAML names.
    """
    loader = default_loader()
    builder = _Builder(defn, registry or loader.registry, run_kinds or loader.run_kinds)
    flow = builder.flow(defn.spec, defn.name)
    flow.set_params({**flow_params(defn.spec.param_schema, defn.spec.params), **(params or {})})
    return flow


__all__ = ["BuildError", "build_flow"]
