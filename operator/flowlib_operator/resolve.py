"""Turn a FlowRun's ``flowRef``/``flow`` into the definition snapshot its runner will execute.

Referenced Flows (and the Flows their ``type: flow`` nodes name, transitively) are read once,
validated with the shared loader -- which never imports or runs user code -- and frozen into a
JSON document. The run uses that snapshot even if a Flow is edited while it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_runner.definition.loader import flow_refs, load_object
from flowlib_runner.kube.client import KubeClient

from flowlib_api.meta import FLOWS
from flowlib_api.resources import flow_source_problem
from flowlib_api.runnerpod import Snapshot
from flowlib_api.views import FlowRunView

INLINE_NAME = "inline"


@dataclass
class Resolution:
    """The outcome: the flow's name, the snapshot (when valid), and every problem found."""

    flow_name: str
    snapshot: str | None = None
    problems: list[str] = field(default_factory=list)
    node_count: int = 0


async def fetch_library(
    client: KubeClient, namespace: str, spec: Mapping[str, Any], skip: str | None = None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The spec of every Flow that ``spec`` reaches through sub-flow nodes, by name; plus the missing."""
    library: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    pending = [name for _, name in flow_refs(spec) if name != skip]
    while pending:
        name = pending.pop()
        if name in library or name in missing or name == skip:
            continue
        flow = await client.get_or_none(FLOWS, name, namespace)
        if flow is None:
            missing.append(name)
            continue
        library[name] = flow.get("spec") or {}  # a bare spec: the loader names it by its key
        pending.extend(name for _, name in flow_refs(library[name]))
    return library, missing


def lint(name: str, spec: Mapping[str, Any], library: Mapping[str, Mapping[str, Any]]) -> tuple[bool, list[str]]:
    """``flowctl lint``'s errors for the Flow ``name`` with its sub-flows; and whether it loaded."""
    result = load_object(Snapshot(name, spec).manifest(), library=library)
    return result.definition is not None, [str(p) for p in result.problems if p.severity == "error"]


def validate(
    name: str, spec: Mapping[str, Any], library: Mapping[str, Mapping[str, Any]], missing: list[str]
) -> Resolution:
    """Validate ``spec`` with its library; on success freeze everything into a snapshot."""
    loaded, problems = lint(name, spec, library)
    for flow in missing:
        text = f"sub-flow '{flow}' does not exist in this namespace; create the Flow '{flow}' or fix the node's flow:"
        if not any(f"'{flow}'" in p for p in problems):
            problems.append(text)
    resolution = Resolution(flow_name=name, problems=problems, node_count=len(spec.get("nodes") or {}))
    if not loaded or problems:
        if not problems:
            problems.append("the definition is invalid")
        return resolution
    resolution.snapshot = Snapshot(name, spec, library).to_json()
    return resolution


async def resolve_run(client: KubeClient, flowrun: Mapping[str, Any]) -> Resolution:
    """Resolve and validate what a FlowRun asks to run."""
    run = FlowRunView(flowrun)
    namespace, ref, inline = run.namespace, run.flow_ref, run.inline_flow
    problem = flow_source_problem(run.spec)
    if problem is not None:
        return Resolution(flow_name=ref or INLINE_NAME, problems=[problem])
    if ref:
        flow = await client.get_or_none(FLOWS, ref, namespace)
        if flow is None:
            return Resolution(
                flow_name=ref,
                problems=[
                    f"spec.flowRef.name: Flow '{ref}' does not exist in namespace '{namespace}'; create it first"
                ],
            )
        spec = flow.get("spec") or {}
        name = ref
    else:
        spec, name = inline or {}, INLINE_NAME
    library, missing = await fetch_library(client, namespace, spec, skip=name)
    return validate(name, spec, library, missing)
