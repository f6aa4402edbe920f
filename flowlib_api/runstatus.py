"""The run status: one model for `flowctl run --json`, the status file and the FlowRun CRD.

Why one model: the local runner and the in-cluster runner report the same thing, and the FlowRun
CRD's `status` schema is generated from here (`RunStatus.to_json_schema()`), so `kubectl explain`
shows these descriptions. Field names are camelCase in JSON (Kubernetes style) through aliases.

The status must fit in a Kubernetes object whatever the graph or batch size, so `bounded()` shortens
messages and outputs and collapses node states, leaving a note for each thing it shortened.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flowlib_api.structural import PRESERVE_UNKNOWN, structural_schema
from flowlib_api.text import NODE_MESSAGE_BYTES, STATUS_MESSAGE_BYTES, shorten

RunPhase = Literal["Queued", "Pending", "Running", "Suspended", "Succeeded", "Failed", "Cancelled"]
NodePhase = Literal["Running", "Retrying", "Waiting", "Succeeded", "Failed", "Cancelled"]
FINISHED_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Cancelled"})

STATUS_LIMIT = 64 * 1024
"""Hard bound on the serialized status (bytes); what the acceptance criteria promise."""
DEFAULT_BUDGET = 48 * 1024
"""What `bounded()` aims for by default: 16 KiB below the bound, left to the FlowRun's own fields
(conditions, job and pod names) that the operator adds around this model."""

ACTION_BYTES = 256
NAME_BYTES = 512
MAX_NOTES = 10
_OUTPUT_PREVIEW_BYTES = 256


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ItemCounts(_Model):
    """Progress of a batch node's items."""

    total: int | None = Field(None, description="Number of items, or null when the items have no length.")
    done: int = Field(0, description="Items finished, failed ones included.")
    failed: int = Field(0, description="Items that failed after their retries.")


class NodeState(_Model):
    """What one node did during the run (all its visits, for nodes inside loops)."""

    phase: NodePhase = Field(
        description="Running, Retrying (waiting before a new attempt), Waiting (an approval node waiting for a "
        "decision), or finished."
    )
    kind: str | None = Field(None, description="The node's type as flowlib reports it (base, batch, flow...).")
    attempts: int = Field(0, description="Attempts in the node's latest visit; above 1 means it was retried.")
    visits: int = Field(0, description="How many times the flow entered this node (loops visit it again).")
    action: str | None = Field(None, description="Action returned by the node's latest finished visit.")
    message: str | None = Field(None, description="Latest error or retry note for this node, shortened.")
    items: ItemCounts | None = Field(None, description="Item counts, for batch nodes only.")
    item_retries: int | None = Field(None, description="Retries of single batch items (not of the whole node).")
    handled: bool | None = Field(
        None, description="True when the node failed and its error edge took the failure (message says why)."
    )
    duration_seconds: float | None = Field(None, description="Seconds spent in the node over all visits.")


class SuspendedState(_Model):
    """Where a Suspended run waits: its approval node, what it asks, since when and until when."""

    node: str = Field(description="Path of the approval node the run waits at (names joined by '/').")
    message: str | None = Field(None, description="What the node asks (its approval.message, rendered).")
    actions: list[str] = Field(default_factory=list, description="The actions that may be chosen (its edges).")
    since: str = Field(description="When the run stopped there (RFC 3339).", json_schema_extra={"format": "date-time"})
    deadline: str | None = Field(
        None,
        description="When the node's timeout ends (RFC 3339): the run then resumes along its timeout edge, or "
        "fails without one. Unset: it waits until someone decides.",
        json_schema_extra={"format": "date-time"},
    )
    count: int = Field(1, description="How many times this run has been suspended so far (this suspension included).")
    taken: int = Field(
        0,
        description="How many spec.approvals entries for this node earlier visits took: the next entry naming "
        "the node is this visit's decision.",
    )


class RunStatus(_Model):
    """Status of one run of a flow: the FlowRun CRD's `status` and `flowctl run --json`'s output."""

    phase: RunPhase = Field(
        "Pending",
        description="Queued (held by a concurrency limit, no pod yet: see queue), Pending, Running, Suspended "
        "(stopped at an approval node, no pod held: see suspended), Succeeded, Failed or Cancelled.",
    )
    start_time: str | None = Field(
        None, description="When the run started (RFC 3339, UTC).", json_schema_extra={"format": "date-time"}
    )
    completion_time: str | None = Field(
        None, description="When the run finished (RFC 3339, UTC).", json_schema_extra={"format": "date-time"}
    )
    current_node: str | None = Field(
        None,
        description="Path (names joined by '/') of the node started most recently, while the run goes on "
        "(a looping node stays current between its visits).",
    )
    progress: str = Field("0/0", description="Nodes finished / nodes visited so far, e.g. '3/4'.")
    nodes: dict[str, NodeState] = Field(
        default_factory=dict,
        description="State per node, keyed by node path (names joined by '/'); may be collapsed, see notes.",
    )
    output: dict[str, Any] | None = Field(
        None,
        description="Selected keys of the shared store at the end of the run; large values are shortened.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    message: str | None = Field(None, description="Why the run failed or was cancelled, or a summary.")
    reason: str | None = Field(
        None,
        description="Why the run did not succeed, one CamelCase word for machines, when it is more specific "
        "than its phase: UserCodeExit (user code raised SystemExit or KeyboardInterrupt).",
    )
    notes: list[str] = Field(
        default_factory=list, description="What was shortened or left out to keep the status small."
    )
    resumed_from: str | None = Field(
        None,
        description="Set when this attempt (or this retry) did not start from the beginning: the node it "
        "resumed at and the checkpoint it used, e.g. 'step2 (checkpoint of attempt 1)'.",
    )
    items_reused: int | None = Field(
        None, description="Batch items finished before and reused from the checkpoint instead of being run again."
    )
    output_refs: dict[str, dict[str, Any]] | None = Field(
        None,
        description="Output values kept whole in the run's store, by output key: every value whose JSON is over "
        "4 KiB, and any other the status had to shorten (output then holds a preview). Each says where: blob (the "
        "store folder, e.g. outputs/report, whose parts blob/0, blob/1... hold the zlib-compressed JSON), parts, "
        "bytes (of the JSON) and storedBytes (compressed). Print one with: flowctl output RUN KEY.",
        json_schema_extra={
            "additionalProperties": {
                "type": "object",
                "description": "Where one output value is kept.",
                "properties": {
                    "blob": {"type": "string", "description": "The store folder holding the value's parts."},
                    "parts": {"type": "integer", "description": "How many parts (blob/0 ...) hold it."},
                    "bytes": {"type": "integer", "description": "Bytes of the value's JSON."},
                    "storedBytes": {"type": "integer", "description": "Bytes kept in the store (compressed)."},
                },
            }
        },
    )
    suspended: SuspendedState | None = Field(
        None,
        description="Set while the run is Suspended: the approval node it waits at. Choose an action with "
        "flowctl approve RUN --action A, or add {node, action} to the FlowRun's spec.approvals.",
    )

    def to_json(self, *, indent: int | None = None) -> str:
        """The status as camelCase JSON, without null fields."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, indent=indent, ensure_ascii=False, separators=None if indent else (",", ":"))

    @classmethod
    def to_json_schema(cls) -> dict[str, Any]:
        """A structural OpenAPI v3 schema for embedding as the CRD's `status` (no `$ref`)."""
        return structural_schema(cls)


def json_safe(value: Any) -> Any:
    """`value` as plain JSON data; objects JSON cannot hold become their `repr`."""
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): json_safe(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [json_safe(v) for v in value]
        return repr(value)


def _size(data: Any) -> int:
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def bounded(status: RunStatus, budget: int = DEFAULT_BUDGET) -> RunStatus:
    """A copy of `status` whose JSON is at most `budget` bytes (never more than `STATUS_LIMIT`).

    Cheap when nothing needs cutting (one serialization). Otherwise, in order: messages and actions
    are shortened, large output values become previews, then node states are dropped, least
    interesting first (running and failed nodes are kept longest), each step leaving a note.
    """
    budget = min(budget, STATUS_LIMIT - 1)
    data = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if _size(data) <= budget:
        return status
    notes: list[str] = list(data.get("notes", []))
    _shorten_texts(data)
    if _size(data) > budget and data.get("output"):
        _bound_output(data, budget // 2, notes)
    if _size(data) > budget and data.get("nodes"):
        _collapse_nodes(data, budget, notes)
    data["notes"] = notes
    if _size(data) > budget and "output" in data:
        del data["output"]
        notes.append("output left out: it did not fit in the status")
    if _size(data) > budget and data.get("nodes"):
        notes.append(f"all {len(data['nodes'])} node states left out: they did not fit in the status")
        data["nodes"] = {}
    data["notes"] = [shorten(n, 512) for n in notes[-MAX_NOTES:]]
    return RunStatus.model_validate(data)


def _shorten_texts(data: dict[str, Any]) -> None:
    for key, limit in (("message", STATUS_MESSAGE_BYTES), ("currentNode", NAME_BYTES)):
        if key in data:
            data[key] = shorten(data[key], limit)
    for node in data.get("nodes", {}).values():
        if "message" in node:
            node["message"] = shorten(node["message"], NODE_MESSAGE_BYTES)
        if "action" in node:
            node["action"] = shorten(node["action"], ACTION_BYTES)


def _bound_output(data: dict[str, Any], budget: int, notes: list[str]) -> None:
    output: dict[str, Any] = data["output"]
    sizes = {key: _size(value) + len(key) for key, value in output.items()}
    total = sum(sizes.values())
    cut = 0
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= budget:
            break
        text = json.dumps(output[key], ensure_ascii=False)
        preview = shorten(text, _OUTPUT_PREVIEW_BYTES)
        output[key] = f"<{sizes[key]} bytes of JSON, shortened> {preview}"
        total -= sizes[key] - _size(output[key])
        cut += 1
    if cut:
        notes.append(f"{cut} output value(s) shortened to previews to fit the status")
    if total > budget:
        keys = sorted(output)
        kept: dict[str, Any] = {}
        used = 2
        for key in keys:
            size = _size(output[key]) + len(key) + 4
            if used + size > budget:
                continue
            kept[key] = output[key]
            used += size
        notes.append(f"{len(keys) - len(kept)} of {len(keys)} output keys left out to fit the status")
        data["output"] = kept


_KEEP_ORDER = {"Running": 0, "Retrying": 0, "Failed": 1, "Cancelled": 2, "Succeeded": 3}


def _collapse_nodes(data: dict[str, Any], budget: int, notes: list[str]) -> None:
    nodes: dict[str, Any] = data["nodes"]
    base = _size({**data, "nodes": {}}) + 300  # room for the note about what was left out
    # Stable sort: within a phase, nodes keep the order in which the run first reached them.
    order = sorted(nodes, key=lambda k: _KEEP_ORDER.get(nodes[k].get("phase", ""), 4))
    kept: dict[str, Any] = {}
    used = base
    for key in order:
        size = _size(nodes[key]) + len(key.encode()) + 4
        if used + size > budget:
            continue
        kept[key] = nodes[key]
        used += size
    left = [nodes[k].get("phase", "?") for k in nodes if k not in kept]
    if left:
        counts = ", ".join(f"{n} {phase}" for phase, n in sorted(Counter(left).items()))
        notes.append(f"{len(left)} of {len(nodes)} node states left out to fit the status ({counts})")
        # Keep the run's own order for readers, not the priority order used to choose.
        data["nodes"] = {k: v for k, v in nodes.items() if k in kept}
