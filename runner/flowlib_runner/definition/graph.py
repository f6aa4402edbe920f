"""Draw a flow definition as Mermaid or Graphviz dot (`flowctl graph`).

Why: a flow with branches and loops is easier to check by looking at it than by reading YAML.
Edges carry their action (the default edge stays unlabelled, the error edge is dashed); each
sub-flow that a `type: flow` node runs is drawn once, as its own cluster, with a dotted edge from
the node that runs it to the sub-flow's start node. Only the definition is read: no user code runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from flowlib_api.flowspec import FlowSpec, NodeSpec
from flowlib_runner.definition.loader import FlowDefinition

GraphFormat = Literal["mermaid", "dot"]
GRAPH_FORMATS: tuple[GraphFormat, ...] = ("mermaid", "dot")
ERROR_ACTION = "error"


@dataclass(frozen=True)
class _Node:
    id: str
    label: str


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    label: str
    style: Literal["solid", "dashed", "dotted"]


@dataclass(frozen=True)
class _Cluster:
    id: str
    title: str
    nodes: list[_Node]


def start_node(spec: FlowSpec) -> str | None:
    """The node a run starts at: `start`, else the only node without incoming edges (None if unclear)."""
    if spec.start:
        return spec.start
    targets = {target for node in spec.nodes.values() for target in node.next.values()}
    roots = [name for name in spec.nodes if name not in targets]
    return roots[0] if len(roots) == 1 else None


def _label(name: str, node: NodeSpec) -> str:
    """Two lines: the node's name, then its type, run kind, sub-flow and parallelism."""
    parts = [node.type]
    if node.run is not None:
        kinds = [k for k in node.run.model_dump(exclude_none=True) if k not in _RUN_OPTIONS]
        parts.extend(kinds[:1])
    if node.flow:
        parts.append(node.flow)
    if node.batch is not None and node.batch.max_parallel:
        parts.append(f"{node.batch.max_parallel} at once")
    return f"{name}\n{' · '.join(parts)}"


_RUN_OPTIONS = frozenset({"parse", "env", "working_dir"})


class _Layout:
    """Nodes, edges and clusters of the whole drawing, with ids safe for both output formats."""

    def __init__(self, definition: FlowDefinition) -> None:
        self.definition = definition
        self.edges: list[_Edge] = []
        self.clusters: list[_Cluster] = []
        self.entry: dict[str, str] = {}  # flow name -> id of its start node
        self._count = 0
        self.main = self._flow(definition.name, definition.spec)

    def _flow(self, flow_name: str, spec: FlowSpec) -> _Cluster:
        ids = {name: self._new_id() for name in spec.nodes}
        cluster = _Cluster(
            f"c{len(self.clusters)}", flow_name, [_Node(ids[n], _label(n, s)) for n, s in spec.nodes.items()]
        )
        self.clusters.append(cluster)
        first = start_node(spec)
        if first in ids:
            self.entry[flow_name] = ids[first]
        for name, node in spec.nodes.items():
            for action, target in node.next.items():
                if target not in ids:
                    continue  # a dangling edge is a lint problem; the drawing shows what exists
                style: Literal["solid", "dashed"] = "dashed" if action == ERROR_ACTION else "solid"
                self.edges.append(_Edge(ids[name], ids[target], "" if action == "default" else action, style))
            if node.flow and node.flow in self.definition.subflows:
                if node.flow not in self.entry and node.flow != flow_name:
                    self._flow(node.flow, self.definition.subflows[node.flow])
                if node.flow in self.entry:
                    self.edges.append(_Edge(ids[name], self.entry[node.flow], "runs", "dotted"))
        return cluster

    def _new_id(self) -> str:
        self._count += 1
        return f"n{self._count}"


def render(definition: FlowDefinition, fmt: GraphFormat = "mermaid") -> str:
    """The drawing as text in `fmt`."""
    layout = _Layout(definition)
    lines = _mermaid(layout) if fmt == "mermaid" else _dot(layout)
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def _mermaid(layout: _Layout) -> Iterator[str]:
    yield "flowchart TD"
    start = layout.entry.get(layout.definition.name)
    for cluster in layout.clusters:
        nested = cluster is not layout.main
        if nested:
            yield f'  subgraph {cluster.id}["flow {_mermaid_text(cluster.title)}"]'
        for node in cluster.nodes:
            yield f'  {"  " if nested else ""}{node.id}["{_mermaid_text(node.label)}"]'
        if nested:
            yield "  end"
    if start is not None:
        yield "  start((start))"
        yield f"  start --> {start}"
    arrows = {"solid": "-->", "dashed": "-.->", "dotted": "-.->"}
    for edge in layout.edges:
        label = f"|{_mermaid_text(edge.label)}|" if edge.label else ""
        yield f"  {edge.source} {arrows[edge.style]}{label} {edge.target}"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(layout: _Layout) -> Iterator[str]:
    yield f"digraph {_dot_text(layout.definition.name)} {{"
    yield "  node [shape=box, style=rounded];"
    start = layout.entry.get(layout.definition.name)
    for cluster in layout.clusters:
        nested = cluster is not layout.main
        indent = "    " if nested else "  "
        if nested:
            yield f"  subgraph cluster_{cluster.id} {{"
            yield f"    label={_dot_text('flow ' + cluster.title)};"
        for node in cluster.nodes:
            yield f"{indent}{node.id} [label={_dot_text(node.label)}];"
        if nested:
            yield "  }"
    if start is not None:
        yield "  start [shape=circle, label=start];"
        yield f"  start -> {start};"
    for edge in layout.edges:
        attrs = [f"label={_dot_text(edge.label)}"] if edge.label else []
        if edge.style != "solid":
            attrs.append(f"style={edge.style}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        yield f"  {edge.source} -> {edge.target}{suffix};"
    yield "}"
