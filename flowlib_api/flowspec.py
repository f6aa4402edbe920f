"""The canonical Flow spec as pydantic models: one source of truth for loading and for the CRD.

Field names are Kubernetes style (camelCase aliases over snake_case attributes). Every field has a
description because the same text ends up in the CRD's OpenAPI schema, where ``kubectl explain``
shows it. The models check shapes and ranges only; cross-field rules (graph, run kinds, templates,
inline code) live in ``validate.py`` so that all problems can be collected and reported together.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from flowlib_api.concurrency import Concurrency
from flowlib_api.history import RunHistory
from flowlib_api.params import ParamSpec
from flowlib_api.podcontrols import PodControls
from flowlib_api.times import parse_duration

NODE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
ERROR_ACTION = "error"
DEFAULT_ACTION = "default"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": "A duration: 500ms, 10s, 1m30s, 2h, or a whole number of seconds.",
        }
    ),
]


class _Model(BaseModel):
    """camelCase on the wire, unknown fields rejected (typos must not be silently ignored)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class RetrySpec(_Model):
    """How a failing exec is retried (flowlib Node's max_retries, wait, backoff, max_wait, jitter)."""

    max_retries: int = Field(
        1,
        ge=1,
        description="How many times exec is attempted in total, as PocketFlow's max_retries: "
        "1 means no retry, 3 means the first attempt and two retries.",
    )
    wait: Duration = Field(0.0, description="Pause before the next attempt (the first pause with exponential backoff).")
    backoff: Literal["fixed", "exponential"] = Field(
        "fixed", description="fixed: always wait; exponential: wait, 2*wait, 4*wait... capped at maxWait."
    )
    max_wait: Duration | None = Field(None, description="Upper bound of one pause with exponential backoff.")
    jitter: float = Field(
        0.0, ge=0.0, le=1.0, description="Spread each pause randomly by up to this fraction (0 to 1)."
    )


MAX_FAILURES_SHARE = r"^[0-9]+(\.[0-9]+)?%$"


def _max_failures(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError('maxFailures is a count (5) or a share of the items ("1%"), not true or false')
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


MaxFailures = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=MAX_FAILURES_SHARE)],
    BeforeValidator(_max_failures),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "description": 'A count of items (5) or a share of them ("1%").',
        }
    ),
]


class BatchSpec(_Model):
    """Where a batch node gets its items and how many it runs at once."""

    items: str | None = Field(
        None,
        description="Dotted path into the shared store holding the items (e.g. docs or result.pages). "
        "Without it, the node's prep must return the items.",
    )
    max_parallel: int | None = Field(
        None,
        ge=1,
        description="At most this many items at once (worker_pool, parallel_batch and parallel sub-flows). "
        "worker_pool defaults to 8; parallel_batch and flow default to all items at once.",
    )
    on_item_error: Literal["fail", "continue"] = Field(
        "fail",
        description="What an item that still fails after its retries does: fail (the default) fails the node "
        "at once, keeping the results already finished in the output; continue leaves null at its place in "
        "the output, records the failure in errorsOutput and goes on with the other items.",
    )
    max_failures: MaxFailures | None = Field(
        None,
        description="With onItemError continue: the node fails, after every item ran, when more items than "
        'this failed; a count (5) or a share of the items ("1%"). Default: any number.',
    )
    errors_output: str | None = Field(
        None,
        description="With onItemError continue: shared-store key that receives the list of failed items, "
        "each {index, item, error, attempts}; default: the output key followed by _errors.",
    )
    item_output: str | None = Field(
        None,
        description="Batch sub-flows: the key of each item's own store whose value becomes the item's result; "
        "default: every key the item's run wrote, as an object.",
    )


class HttpSpec(_Model):
    """An HTTP request; url, headers, query, json and body strings are Jinja2 templates."""

    method: str = Field("GET", description="HTTP method: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.")
    url: str = Field(description="Request URL (a template).")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers (values are templates).")
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters (values are templates).")
    json_body: Any = Field(None, alias="json", description="A JSON request body; strings inside are templates.")
    body: str | None = Field(None, description="A raw request body (a template); use either json or body.")
    timeout: Duration | None = Field(None, description="Timeout of the whole request; default 5 minutes.")
    expected_status: list[int] | None = Field(None, description="Status codes that count as success; default any 2xx.")


class RunSpec(_Model):
    """What a node runs: exactly one of python, call, shell, command, http, or a plugin's kind.

    Extra keys are kept (not rejected by the model) because plugins add run kinds; validation
    checks every key against the known kinds.
    """

    model_config = ConfigDict(alias_generator=to_camel, extra="allow", frozen=True)

    python: str | None = Field(
        None,
        description="Inline Python: a single expression (exec's result, with item, prep_res, shared, "
        "params and node in scope) or code defining any of prep, exec, post, exec_fallback (sync or async).",
    )
    call: str | None = Field(
        None,
        description="package.module:attr of a callable used as exec, or of a flowlib Node subclass, "
        "importable in the runner image.",
    )
    shell: str | None = Field(
        None,
        description=("A command line run by /bin/sh (a template); stdout without its trailing newlines is the result."),
    )
    command: list[str] | None = Field(
        None, description="A command as argv, run without a shell (each element a template)."
    )
    http: HttpSpec | None = Field(None, description="An HTTP request; the response JSON (or text) is the result.")
    parse: Literal["text", "json"] | None = Field(
        None, description="For shell and command: text (default) or json to parse stdout."
    )
    env: dict[str, str] | None = Field(
        None, description="For shell and command: extra environment variables (values are templates)."
    )
    working_dir: str | None = Field(None, description="For shell and command: the working directory.")


class ApprovalSpec(_Model):
    """What an approval node asks (type approval)."""

    message: str | None = Field(
        None,
        max_length=4096,
        description="What the person approving is asked, shown in status.suspended.message and by flowctl "
        "(a template, rendered with shared and params when the run reaches the node).",
    )


class NodeSpec(_Model):
    """One node of the graph; its key in nodes is its name (in events, logs and status)."""

    type: str = Field(
        "base",
        description="Node type: base, batch, async_batch, parallel_batch, worker_pool (or "
        "worker_pool_batch), flow, approval (pause the run until someone chooses an action, see approval), "
        "or a plugin's type.",
    )
    description: str | None = Field(None, description="What the node is for (documentation only).")
    run: RunSpec | None = Field(None, description="What the node runs; without it the node does nothing.")
    output: str | None = Field(
        None, description="Shared-store key that receives exec's result; default: the node's name."
    )
    action: str | None = Field(
        None,
        description="A template choosing the action (the next edge), rendered after exec with shared, "
        "params, node and result; default: post's return value, else 'default'.",
    )
    next: dict[str, str] = Field(
        default_factory=dict,
        description="Edges: action -> node name. 'default' is taken when no action is chosen; 'error' is "
        "taken when the node still fails after its retries.",
    )
    retry: RetrySpec | None = Field(None, description="Retries of exec; default: a single attempt.")
    timeout: Duration | None = Field(
        None,
        description="Limit of each exec attempt; a timeout counts as a failure. On an approval node: how long "
        "the run waits for a decision before it takes the node's timeout edge (or fails without one).",
    )
    approval: ApprovalSpec | None = Field(
        None,
        description="For type approval: the run stops at this node (phase Suspended, no pod held) until an "
        "action is chosen (flowctl approve RUN --action A, or an entry in the FlowRun's spec.approvals); "
        "the run then resumes from its checkpoint along that action's edge.",
    )
    batch: BatchSpec | None = Field(None, description="Items and parallelism for batch types and batch sub-flows.")
    flow: str | None = Field(None, description="For type flow: the name of the Flow run as a sub-flow.")
    params: dict[str, Any] | None = Field(
        None, description="Default params for this node; params from the flow, the run or a batch item win."
    )


class FlowSpec(_Model):
    """A flow graph: nodes joined by action edges, run from a start node until no edge matches."""

    description: str | None = Field(None, description="What the flow does (documentation only).")
    start: str | None = Field(
        None, description="Name of the first node; default: the only node without incoming edges."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="PocketFlow params shared by all nodes; a run may override them."
    )
    param_schema: dict[str, ParamSpec] = Field(
        default_factory=dict,
        description="The params the flow declares, by name: type, default, enum, required and bounds, checked "
        "for every FlowRun before it runs (see docs/params.md). A run's params win over spec.params, which win "
        "over a declared default; when any param is declared, a run's param neither declared nor in spec.params "
        "is refused.",
    )
    max_steps: int | None = Field(
        None, ge=1, description="Loop guard: the run fails when it would start more than this many nodes."
    )
    nodes: dict[str, NodeSpec] = Field(min_length=1, description="The nodes, by name.")
    finally_: str | None = Field(
        None,
        alias="finally",
        description="A node run once after the graph ends, whether it succeeded, failed, timed out or was "
        "cancelled (within the grace period); it sees shared.run (phase, error, failedNode). Its own failure "
        "is reported and does not change the run's result. It must not be reachable from the graph.",
    )
    pod: PodControls | None = Field(
        None,
        description="Runner pod controls for every FlowRun of this Flow (node selector, tolerations, volumes, "
        "pull secrets, labels...); a FlowRun's own spec.pod wins field by field. Ignored by flowctl run.",
    )
    concurrency: Concurrency | None = Field(
        None,
        description="How many runs of this Flow go at once (maxRuns) and what a run past that does (policy: "
        "Queue, Forbid or Replace). Runs of an inline flow have no Flow limit. Ignored by flowctl run.",
    )
    history: RunHistory | None = Field(
        None,
        description="How many finished FlowRuns of this Flow to keep: the oldest Succeeded runs beyond "
        "history.succeeded and the oldest Failed or Cancelled ones beyond history.failed are deleted (runs a "
        "FlowSchedule started follow the schedule's own limits). Ignored by flowctl run.",
    )
