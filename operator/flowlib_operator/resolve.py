"""Turn a FlowRun's ``flowRef``/``flow`` into the definition snapshot its runner will execute.

Referenced Flows (and the Flows their ``type: flow`` nodes name, transitively) are read once,
validated with the shared loader -- which never imports or runs user code -- and frozen into a
compressed JSON document. The run uses that snapshot even if a Flow is edited while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_runner.definition.loader import flow_refs, load_object
from flowlib_runner.definition.problems import REPORTED_PROBLEMS, too_slow
from flowlib_runner.kube.client import KubeClient

from flowlib_api.meta import FLOWS
from flowlib_api.params import parse_schema, run_params_problems
from flowlib_api.resources import flow_source_problem
from flowlib_api.runnerpod import Snapshot, snapshot_size_problem
from flowlib_api.text import STATUS_PROBLEMS_BYTES
from flowlib_api.views import FlowRunView

INLINE_NAME = "inline"
MAX_SUB_FLOWS = 200
"""Distinct Flows one definition may reach through sub-flow nodes (each is read from the API)."""
VALIDATION_SECONDS = 20.0
"""How long the operator validates one definition (with its sub-flows) before reporting it as too
big to check: a 5,000-node flow takes about a second, so only a perverse one gets near."""
ADMISSION_VALIDATION_SECONDS = 8.0
"""The admission webhook's bound, under the API server's 10 s ``timeoutSeconds`` for the webhook."""
_HARD_STOP_SECONDS = 5.0
"""How much longer than ``VALIDATION_SECONDS`` a reconcile waits for the validating thread, should one
step of validation not reach the loader's deadline checks in time."""


@dataclass
class Resolution:
    """The outcome: the flow's name, the snapshot (when valid), and every problem found."""

    flow_name: str
    snapshot: bytes | None = None
    """The compressed snapshot (``Snapshot.to_bytes``), within what a ConfigMap holds."""
    problems: list[str] = field(default_factory=list)
    node_count: int = 0
    pod: Mapping[str, Any] | None = None
    """The main flow's pod controls (its ``spec.pod``), which the run's own lie over (``rundefaults``)."""
    spec: Mapping[str, Any] | None = None
    """The main flow's spec (when valid): what the run's params are checked against (``params_problems``)."""


class TooManySubFlows(Exception):
    """The definition reaches more Flows than a run may hold (``MAX_SUB_FLOWS``)."""


async def fetch_library(
    client: KubeClient, namespace: str, spec: Mapping[str, Any], skip: str | None = None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The spec of every Flow that ``spec`` reaches through sub-flow nodes, by name; plus the missing.

    At most ``MAX_SUB_FLOWS`` are read (each is an API call), else ``TooManySubFlows``.
    """
    library: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    pending = [name for _, name in flow_refs(spec) if name != skip]
    while pending:
        name = pending.pop()
        if name in library or name in missing or name == skip:
            continue
        if len(library) + len(missing) >= MAX_SUB_FLOWS:
            raise TooManySubFlows(
                f"the definition reaches more than {MAX_SUB_FLOWS} Flows through its sub-flow nodes, more than "
                "one run may hold; merge some of them or run parts as separate FlowRuns"
            )
        flow = await client.get_or_none(FLOWS, name, namespace)
        if flow is None:
            missing.append(name)
            continue
        library[name] = flow.get("spec") or {}  # a bare spec: the loader names it by its key
        pending.extend(name for _, name in flow_refs(library[name]))
    return library, missing


def lint(
    name: str,
    spec: object,
    library: Mapping[str, Mapping[str, Any]],
    *,
    time_limit: float | None = None,
) -> tuple[bool, list[str]]:
    """``flowctl lint``'s errors for the Flow ``name`` with its sub-flows; and whether it loaded.

    The one entry point to validation for the operator and the admission webhook, and bounded
    whatever the definition: the loader reports a few dozen errors, each cut to size, and stops
    after ``time_limit`` seconds (default ``VALIDATION_SECONDS``) with a problem saying so. It is
    synchronous: the operator runs it in a worker thread (``validate_in_thread``), kopf runs the
    webhook's handlers in threads. ``spec`` is whatever was applied (the webhook sees objects
    before any schema check of ours).
    """
    if not isinstance(spec, Mapping):
        return False, [f"spec: a Flow's spec must be a mapping with nodes, got {type(spec).__name__}"]
    limit = VALIDATION_SECONDS if time_limit is None else time_limit
    result = load_object(Snapshot(name, spec).manifest(), library=library, time_limit=limit)
    return result.definition is not None, [str(p) for p in result.problems if p.severity == "error"]


def within_status(problems: list[str]) -> list[str]:
    """``problems`` as status lists them: the first ones within ``STATUS_PROBLEMS_BYTES``, then one
    line counting the rest (a status over etcd's limit could not be written at all)."""
    kept: list[str] = []
    size = 0
    for index, problem in enumerate(problems):
        size += len(problem.encode()) + 8  # with the quotes and comma of the JSON list
        if size > STATUS_PROBLEMS_BYTES - 64:
            return [*kept, f"… and {len(problems) - index} more problems"]
        kept.append(problem)
    return kept


def validate(
    name: str, spec: Mapping[str, Any], library: Mapping[str, Mapping[str, Any]], missing: list[str]
) -> Resolution:
    """Validate ``spec`` with its library; on success freeze everything into a snapshot."""
    loaded, problems = lint(name, spec, library)
    reported = "\n".join(problems)  # lint's own: a missing Flow it names is not said twice
    for flow in missing if len(problems) <= REPORTED_PROBLEMS else ():  # else lint's report was cut, and says so
        text = f"sub-flow '{flow}' does not exist in this namespace; create the Flow '{flow}' or fix the node's flow:"
        if f"'{flow}'" not in reported:
            problems.append(text)
    problems = within_status(problems)
    resolution = Resolution(flow_name=name, problems=problems, node_count=_node_count(spec))
    if not loaded or problems:
        if not problems:
            problems.append("the definition is invalid")
        return resolution
    snapshot = Snapshot(name, spec, library).to_bytes()
    too_big = snapshot_size_problem(snapshot)
    if too_big is not None:
        problems.append(too_big)
        return resolution
    resolution.snapshot = snapshot
    resolution.spec = spec
    pod = spec.get("pod")
    resolution.pod = pod if isinstance(pod, Mapping) else None
    return resolution


INVALID_PARAMS_REASON = "InvalidParams"
"""The status reason of a run whose params its flow's ``spec.paramSchema`` refuses."""


def params_problems(flow_spec: Mapping[str, Any] | None, run_spec: Mapping[str, Any]) -> list[str]:
    """What is wrong with a run's ``spec.params`` (a retry's: its own, else its source's) for its flow,
    each naming the param, within what status holds; checked before the Job exists so that a typo'd
    or mistyped param fails the run at once rather than in its pod."""
    if flow_spec is None:
        return []
    schema = parse_schema(flow_spec.get("paramSchema"))
    run_params = run_spec.get("params")
    found = run_params_problems(
        schema,
        flow_spec.get("params") if isinstance(flow_spec.get("params"), Mapping) else None,
        run_params if isinstance(run_params, Mapping) else None,
        prefix="spec.params",
    )
    return within_status(found)


INLINE_VALIDATION_NODES = 50
"""Definitions with at most this many nodes (sub-flows included) are validated on the event loop."""


def _node_count(spec: object) -> int:
    nodes = spec.get("nodes") if isinstance(spec, Mapping) else None
    return len(nodes) if isinstance(nodes, Mapping) else 0


async def validate_in_thread(
    name: str, spec: Mapping[str, Any], library: Mapping[str, Mapping[str, Any]], missing: list[str]
) -> Resolution:
    """``validate`` in a worker thread, so that checking a big definition never holds up the event
    loop (every other Flow, run, probe and webhook call waits on it: 5,000 nodes once took 40 s).

    ``lint`` stops itself after ``VALIDATION_SECONDS``; should one step run on past its checks, the
    reconcile stops waiting ``_HARD_STOP_SECONDS`` later and reports the same problem (the thread
    ends on its own: threads cannot be stopped from outside).
    """
    if _node_count(spec) + sum(_node_count(sub) for sub in library.values()) <= INLINE_VALIDATION_NODES:
        return validate(name, spec, library, missing)  # a millisecond or two: less than the thread hop
    work = asyncio.to_thread(validate, name, spec, library, missing)
    try:
        return await asyncio.wait_for(work, VALIDATION_SECONDS + _HARD_STOP_SECONDS)
    except TimeoutError:
        return Resolution(flow_name=name, problems=[str(too_slow(VALIDATION_SECONDS))])


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
    return await resolve_definition(client, namespace, name, spec)


async def resolve_definition(client: KubeClient, namespace: str, name: str, spec: Mapping[str, Any]) -> Resolution:
    """The Flow ``name`` with the sub-flows it reaches, validated (off the event loop) and frozen."""
    try:
        library, missing = await fetch_library(client, namespace, spec, skip=name)
    except TooManySubFlows as error:
        return Resolution(flow_name=name, problems=[str(error)])
    return await validate_in_thread(name, spec, library, missing)
