"""The Kubernetes resources of the project: what a ``FlowRun`` asks for and what its status says.

These models are the contract between the operator and the runner: the operator turns a FlowRun
into a Job, the runner in that Job reads the same FlowRun and writes its status. The CRDs in
``crds/`` are generated from them (``make crds``), so ``kubectl explain`` shows the descriptions
written here, and the CEL rules of the CRD are generated from the rules stated here.

Who writes which status field (the rule both sides follow; ``RUNNER_FIELDS``/``OPERATOR_FIELDS``):

- The runner owns the run's story: ``phase`` once its pod runs, ``startTime``, ``completionTime``,
  ``currentNode``, ``progress``, ``nodes``, ``output``, ``message``, ``notes``, ``resumedFrom``,
  ``itemsReused``, ``outputRefs``, ``podName``, ``attempt``, ``duration``, the ``Succeeded``
  condition and ``flow``.
  Its merge patches clear what it no longer sets and never touch the operator's fields.
- The operator owns ``jobName``, ``observedGeneration``, ``store`` (the run's store, resolved
  before the Job exists; a retry reads its source's from there) and ``defaults`` (the namespace
  defaults the run got, ``flowlib_api.defaults``). It also writes the runner's fields
  in exactly three cases, each when no runner can: ``Pending`` before the Job exists (with ``flow``
  and a ``Succeeded=Unknown/JobCreated`` condition); ``message`` while a pod waits to start; and a
  final phase for a run whose runner never ran or was lost (invalid flow or store, a retry whose
  source cannot be retried, cancelled before start, pod never started, runner crashed, timeout, Job
  deleted). Before writing a final phase it reads the FlowRun afresh, and it never writes over one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from flowlib_api.concurrency import QueueStatus
from flowlib_api.defaults import DefaultsApplied
from flowlib_api.podcontrols import PodControls
from flowlib_api.runstatus import RunStatus
from flowlib_api.storespec import StoreSpec
from flowlib_api.structural import PRESERVE_UNKNOWN
from flowlib_api.times import DURATION_PATTERN, MAX_DURATION_TEXT, rfc3339, timeout_problem


@dataclass(frozen=True)
class SpecRule:
    """A rule across FlowRun spec fields: checked in Python (``holds``), generated as the CRD's CEL."""

    rule: str
    """The CEL expression, over ``self`` = the spec."""
    message: str

    def cel(self) -> dict[str, str]:
        """The CRD's ``x-kubernetes-validations`` entry for the rule."""
        return {"rule": self.rule, "message": self.message}


ONE_FLOW_SOURCE = SpecRule(
    "has(self.retryOf) ? !(has(self.flowRef) && has(self.flow)) : has(self.flowRef) != has(self.flow)",
    "set exactly one of spec.flowRef (a Flow's name) and spec.flow (an inline flow); with spec.retryOf "
    "(a finished FlowRun to retry) both may be left out, to reuse that run's definition",
)
"""A FlowRun names a Flow (``flowRef``) or carries one inline (``flow``), never both; neither only
for a retry (``retryOf``), which then runs its source's definition as that source ran it."""
RESUBMIT_NEEDS_RETRY = SpecRule(
    "!has(self.resubmit) || !self.resubmit || has(self.retryOf)",
    "spec.resubmit starts a retry over from the start: set spec.retryOf (the FlowRun to run again) or remove "
    "spec.resubmit",
)
"""``resubmit`` only means something for a retry."""
INLINE_KEEPS_NO_HISTORY = SpecRule(
    "!has(self.flow) || !has(self.flow.history)",
    "spec.flow.history: an inline flow has no other runs to keep or delete; remove history, set "
    "spec.ttlSecondsAfterFinished to delete this run when it ends, or move the flow into a Flow and set its history",
)
"""``history`` is a Flow's, counting the runs that name it; an inline flow's would be ignored."""
INLINE_HAS_NO_CONCURRENCY = SpecRule(
    "!has(self.flow) || !has(self.flow.concurrency)",
    "spec.flow.concurrency: an inline flow has no other runs to limit; remove concurrency, or move the flow into "
    "a Flow and set its concurrency (the operator's --max-runs and --max-runs-per-namespace hold every run)",
)
"""``concurrency`` counts the runs that name a Flow; an inline flow's would be ignored."""
SPEC_RULES = (ONE_FLOW_SOURCE, RESUBMIT_NEEDS_RETRY, INLINE_KEEPS_NO_HISTORY, INLINE_HAS_NO_CONCURRENCY)
"""Every cross-field rule of a FlowRun spec, in the order the CRD lists them."""


def flow_source_problem(spec: Mapping[str, Any]) -> str | None:
    """The problem with where a FlowRun spec's definition comes from (``flowRef``, ``flow``,
    ``retryOf``, ``resubmit``), as admission and the operator report it; None when there is none."""
    ref, inline, retry = spec.get("flowRef"), spec.get("flow"), spec.get("retryOf")
    given = (ref is not None) + (inline is not None)
    if given > 1 or (given == 0 and not retry):
        return f"spec: {ONE_FLOW_SOURCE.message}"
    if ref is not None and not (isinstance(ref, Mapping) and ref.get("name")):
        return "spec.flowRef.name: name the Flow to run (a Flow in the FlowRun's namespace)"
    if spec.get("resubmit") and not retry:
        return f"spec: {RESUBMIT_NEEDS_RETRY.message}"
    if isinstance(inline, Mapping) and "history" in inline:
        return INLINE_KEEPS_NO_HISTORY.message
    if isinstance(inline, Mapping) and "concurrency" in inline:
        return INLINE_HAS_NO_CONCURRENCY.message
    return None


class _Model(BaseModel):
    # defer_build: validators are built at the first validation, not at import; the in-cluster
    # runner imports these models (for their wire names) but validates none before its first node.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)


class FlowRef(_Model):
    """A Flow in the FlowRun's namespace."""

    name: str = Field(description="Name of the Flow to run; it must be in the same namespace as the FlowRun.")


class Approval(_Model):
    """A decision for an approval node of the run (type approval)."""

    node: str = Field(
        min_length=1,
        max_length=512,
        description="Path of the approval node (names joined by '/', as in status.suspended.node).",
    )
    action: str = Field(
        "default",
        min_length=1,
        max_length=256,
        description="The edge the node takes: one of its next actions (default: the default edge).",
    )
    by: str | None = Field(None, max_length=256, description="Who decided (for people; flowctl approve sets it).")
    message: str | None = Field(None, max_length=1024, description="Why (for people).")


class FlowRunSpec(_Model):
    """What to run and how. Only ``cancel`` and ``approvals`` may change after the FlowRun is created."""

    flow_ref: FlowRef | None = Field(None, description=("The Flow to run. Set exactly one of flowRef and flow."))
    flow: dict[str, Any] | None = Field(
        None,
        description="An inline flow definition (the same fields as a Flow's spec). Set exactly one of "
        "flowRef and flow.",
    )
    retry_of: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description="Name of a finished FlowRun in this namespace to retry: this run starts from that run's "
        "last checkpoint, so the nodes and batch items it finished are not run again, and its failed node "
        "and failed or unfinished items are. flowRef and flow may then be left out (the source's definition "
        "is reused as it ran); input, params and outputs default to the source's. The source must have "
        "finished (Succeeded, Failed or Cancelled) and have kept a store (status.store); its store is kept "
        "while this FlowRun exists. With the admission webhook you must be allowed to get the source "
        "FlowRun. Else the run fails with reason RetrySourceNotFound, RetrySourceNotFinished, "
        "NothingToRetry or Forbidden.",
    )
    resubmit: bool | None = Field(
        None,
        description="With retryOf: start over from the start, with the source's definition and inputs, "
        "instead of from its last checkpoint.",
    )
    input: dict[str, Any] | None = Field(
        None, description="The initial shared store: any JSON object.", json_schema_extra=PRESERVE_UNKNOWN
    )
    params: dict[str, Any] | None = Field(
        None,
        description="Params for every node, merged over the flow's own params.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    outputs: list[str] | None = Field(
        None,
        description="Keys of the shared store to publish in status.output when the run ends "
        "(dotted paths allowed). Empty: nothing is published.",
    )
    cancel: bool | None = Field(
        None,
        description="Set to true to cancel the run: in-flight work is cancelled, the runner pod ends and "
        "the phase becomes Cancelled. It cannot be set back to false.",
    )
    approvals: list[Approval] | None = Field(
        None,
        max_length=64,
        description="Decisions for the flow's approval nodes, in the order they are taken: a node's first "
        "visit takes the first entry naming it, its next visit the next one. A run Suspended at a node "
        "(status.suspended) resumes in a new pod once an entry for that visit is added; entries may be "
        "added but not changed or removed. flowctl approve RUN [--action A] appends one.",
    )
    timeout: str | None = Field(
        None,
        description="Longest time the run may take, e.g. 30m or 1h30m (the Job's activeDeadlineSeconds), at "
        f"most {MAX_DURATION_TEXT}; past it the run fails with reason Timeout.",
        json_schema_extra={"pattern": DURATION_PATTERN},
    )
    retries: int | None = Field(
        None,
        ge=0,
        le=20,
        description="How many times the runner pod is started again after it crashed or was evicted "
        "(the Job's backoffLimit, default 0). Node-level retries belong in the flow, not here.",
    )
    image: str | None = Field(None, description="Runner image for this run; defaults to the operator's runner image.")
    service_account_name: str | None = Field(
        None,
        description="Service account of the runner pod. By default every run gets its own (<run>-runner), "
        "which may read this FlowRun and write its status, nothing else. Naming one borrows it: allowed "
        "when a namespace admin labelled it flowlib.dev/runner-access=true or, with the admission webhook, "
        "when you may create pods in the namespace; else the run fails with reason Forbidden.",
    )
    env: list[dict[str, Any]] | None = Field(
        None,
        description="Environment variables of the runner container (Kubernetes EnvVar objects: value, "
        "or valueFrom with secretKeyRef, configMapKeyRef or fieldRef). A Secret or ConfigMap may be read "
        "only when a namespace admin labelled it flowlib.dev/runner-access=true or, with the admission "
        "webhook, when you may get it yourself; values from Secrets are masked in logs, status and Events.",
    )
    resources: dict[str, Any] | None = Field(
        None,
        description="CPU and memory requests and limits of the runner container (Kubernetes ResourceRequirements).",
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        ge=0,
        description="Delete the FlowRun (and with it its Job and pod) this many seconds after it finished.",
    )
    priority: int | None = Field(
        None,
        ge=-1000000,
        le=1000000,
        description="Order in a concurrency queue: a Queued run of higher priority starts first (default 0); "
        "equal priorities go first come, first served, sharing the cluster's limit fairly between namespaces.",
    )
    pod: PodControls | None = Field(
        None,
        description="Placement and extras of the runner pod: nodeSelector, tolerations, affinity, volumes and "
        "volumeMounts, imagePullSecrets, labels, annotations, priorityClassName. Laid over the Flow's spec.pod "
        "and the namespace's FlowRunDefaults: maps merge by key, volumes, mounts and pull secrets by name (or "
        "path), every other field is taken whole from the highest level that sets it.",
    )
    store: StoreSpec | None = Field(
        None,
        description="Where the run keeps its checkpoints, so a new pod (spec.retries) or a retry (spec.retryOf) "
        "resumes where it stopped. Unset: the operator's default store (--default-store; "
        "out of the box configmap). With type set it is used as written; without type its fields are laid "
        "over the operator's default. enabled: false keeps no store: the run cannot be resumed or retried.",
    )

    @model_validator(mode="after")
    def _one_flow_source(self) -> FlowRunSpec:
        problem = flow_source_problem(self.model_dump(by_alias=True, exclude_none=True))
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _timeout_fits(self) -> FlowRunSpec:
        """Past ``MAX_DURATION_TEXT`` a timeout would overflow the Job's int64 deadline."""
        problem = timeout_problem(self.timeout)
        if problem is not None:
            raise ValueError(problem)
        return self

    MUTABLE_FIELDS: ClassVar[frozenset[str]] = frozenset({"cancel", "approvals"})
    """Spec fields that may change after creation; the CRD forbids changing any other."""

    @classmethod
    def immutable_fields(cls) -> list[str]:
        """The wire names of every spec field but ``cancel`` and ``approvals``, in declaration order."""
        return [f.alias or n for n, f in cls.model_fields.items() if (f.alias or n) not in cls.MUTABLE_FIELDS]


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_Model):
    """A condition as the Kubernetes API conventions define it."""

    type: str = Field(description="Kind of condition; FlowRuns report Succeeded, Flows report Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word for machines, e.g. JobCreated, InvalidFlow, Timeout.")
    message: str = Field("", description="Details for people.")
    observed_generation: int | None = Field(
        None, description="The metadata.generation this condition was computed from."
    )
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).", json_schema_extra={"format": "date-time"}
    )


class StoreStatus(_Model):
    """Where a run keeps its store, as the operator resolved it before the run's Job existed."""

    type: str = Field(description="configmap, s3 or pvc.")
    location: str = Field(
        description="Where the store is, for people: configmap <namespace>/<run>-store-*, s3://bucket/prefix/, "
        "or a directory of the claim."
    )
    ref: str = Field(
        description="The resolved location as JSON: what the run's runner opens, and what a retry of the run "
        "(spec.retryOf) resumes from."
    )


class FlowRunStatus(RunStatus):
    """Status of a FlowRun: the runner's view of the run plus the operator's bookkeeping."""

    conditions: list[Condition] | None = Field(
        None, description="The Succeeded condition: Unknown while the run is going, then True or False."
    )
    observed_generation: int | None = Field(None, description="The FlowRun generation the operator acted on.")
    job_name: str | None = Field(None, description="The runner Job.")
    pod_name: str | None = Field(None, description="The runner pod of the latest attempt (kubectl logs -f).")
    attempt: int | None = Field(None, description="Which runner pod attempt wrote this status (1 = first).")
    duration: str | None = Field(None, description="How long the run took, e.g. 1m12s (set when it ends).")
    flow: str | None = Field(None, description="Name of the flow being run (the Flow's name, or inline).")
    queue: QueueStatus | None = Field(
        None, description="While the run is Queued: the limit that holds it and its place in line."
    )
    store: StoreStatus | None = Field(
        None, description="The run's store (written by the operator); unset when the run keeps none."
    )
    defaults: DefaultsApplied | None = Field(
        None,
        description="The namespace's FlowRunDefaults the run got, and which fields they supplied (written by "
        "the operator when it creates the run's Job); unset when they supplied none.",
    )


class FlowStatus(_Model):
    """Whether a Flow is valid, as the operator's validation found it."""

    observed_generation: int | None = Field(None, description="The Flow generation that was validated.")
    conditions: list[Condition] | None = Field(
        None,
        description=("The Ready condition: True when the definition is valid, else False with the problems."),
    )
    node_count: int | None = Field(None, description="Number of nodes in the flow.")
    problems: list[str] | None = Field(None, description="Every validation problem, with its path and a fix.")


def field_key(model: type[BaseModel], name: str) -> str:
    """The wire (camelCase) name of a model field: the one spelling of each key in the code."""
    info = model.model_fields[name]
    return info.alias or name


class StatusKey:
    """Wire names of FlowRun and Flow status fields, derived from the models: each key is spelled once."""

    PHASE = field_key(FlowRunStatus, "phase")
    START_TIME = field_key(FlowRunStatus, "start_time")
    COMPLETION_TIME = field_key(FlowRunStatus, "completion_time")
    CURRENT_NODE = field_key(FlowRunStatus, "current_node")
    NODES = field_key(FlowRunStatus, "nodes")
    OUTPUT = field_key(FlowRunStatus, "output")
    MESSAGE = field_key(FlowRunStatus, "message")
    CONDITIONS = field_key(FlowRunStatus, "conditions")
    OBSERVED_GENERATION = field_key(FlowRunStatus, "observed_generation")
    JOB_NAME = field_key(FlowRunStatus, "job_name")
    POD_NAME = field_key(FlowRunStatus, "pod_name")
    ATTEMPT = field_key(FlowRunStatus, "attempt")
    DURATION = field_key(FlowRunStatus, "duration")
    FLOW = field_key(FlowRunStatus, "flow")
    QUEUE = field_key(FlowRunStatus, "queue")
    STORE = field_key(FlowRunStatus, "store")
    DEFAULTS = field_key(FlowRunStatus, "defaults")
    SUSPENDED = field_key(FlowRunStatus, "suspended")
    NODE_COUNT = field_key(FlowStatus, "node_count")
    PROBLEMS = field_key(FlowStatus, "problems")


class SpecKey:
    """Wire names of FlowRun spec fields, derived from the model."""

    FLOW_REF = field_key(FlowRunSpec, "flow_ref")
    FLOW = field_key(FlowRunSpec, "flow")
    RETRY_OF = field_key(FlowRunSpec, "retry_of")
    RESUBMIT = field_key(FlowRunSpec, "resubmit")
    INPUT = field_key(FlowRunSpec, "input")
    PARAMS = field_key(FlowRunSpec, "params")
    OUTPUTS = field_key(FlowRunSpec, "outputs")
    CANCEL = field_key(FlowRunSpec, "cancel")
    TIMEOUT = field_key(FlowRunSpec, "timeout")
    RETRIES = field_key(FlowRunSpec, "retries")
    PRIORITY = field_key(FlowRunSpec, "priority")
    IMAGE = field_key(FlowRunSpec, "image")
    SERVICE_ACCOUNT_NAME = field_key(FlowRunSpec, "service_account_name")
    ENV = field_key(FlowRunSpec, "env")
    RESOURCES = field_key(FlowRunSpec, "resources")
    TTL_SECONDS_AFTER_FINISHED = field_key(FlowRunSpec, "ttl_seconds_after_finished")
    STORE = field_key(FlowRunSpec, "store")
    POD = field_key(FlowRunSpec, "pod")
    APPROVALS = field_key(FlowRunSpec, "approvals")


RETRY_INHERITED: tuple[str, ...] = (SpecKey.INPUT, SpecKey.PARAMS, SpecKey.OUTPUTS)
"""Spec fields a retry (``retryOf``) takes from its source when it leaves them out."""


def retried_spec(spec: Mapping[str, Any], source_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec a retry runs with: its own, plus each field of ``RETRY_INHERITED`` that it leaves out
    taken from its source's spec (a retry names what changes, the rest is the run it retries)."""
    merged = dict(spec)
    for key in RETRY_INHERITED:
        if merged.get(key) is None and source_spec.get(key) is not None:
            merged[key] = source_spec[key]
    return merged


RUNNER_FIELDS: tuple[str, ...] = tuple(
    field_key(FlowRunStatus, n)
    for n in (
        "phase",
        "start_time",
        "completion_time",
        "current_node",
        "progress",
        "nodes",
        "output",
        "message",
        "reason",
        "notes",
        "resumed_from",
        "items_reused",
        "output_refs",
        "suspended",
        "pod_name",
        "attempt",
        "duration",
        "conditions",
        "flow",
    )
)
"""Status fields the runner owns (see the module docstring)."""
OPERATOR_FIELDS: tuple[str, ...] = tuple(
    field_key(FlowRunStatus, n) for n in ("job_name", "observed_generation", "store", "defaults", "queue")
)
"""Status fields only the operator writes."""

SUCCEEDED = "Succeeded"
"""The FlowRun's condition type: Unknown while the run goes on, then True or False."""
READY = "Ready"
"""The Flow's condition type: True when the definition is valid."""

FINAL_REASONS: dict[str, str] = {"Succeeded": "Succeeded", "Failed": "FlowFailed", "Cancelled": "Cancelled"}
"""The ``Succeeded`` condition's reason when the runner itself reports a final phase."""


def condition(
    kind: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    moment: datetime | str,
) -> dict[str, Any]:
    """A condition as the API conventions want it (``moment`` as a datetime or an RFC 3339 text)."""
    built: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        field_key(Condition, "last_transition_time"): moment if isinstance(moment, str) else rfc3339(moment),
    }
    if generation is not None:
        built[field_key(Condition, "observed_generation")] = generation
    return built


def transition_time(
    previous: list[dict[str, Any]] | None, kind: str, status: str, fallback: str, reason: str | None = None
) -> str:
    """``lastTransitionTime`` for a condition: kept from ``previous`` while its status (and, when
    given, its reason) stays the same, as the API conventions ask."""
    for old in previous or []:
        if old.get("type") == kind and old.get("status") == status and reason in (None, old.get("reason")):
            return str(old.get(field_key(Condition, "last_transition_time")) or fallback)
    return fallback


def succeeded_condition(
    status: ConditionStatus, reason: str, message: str, generation: int | None, moment: datetime | str
) -> dict[str, Any]:
    """The FlowRun's ``Succeeded`` condition."""
    return condition(SUCCEEDED, status, reason, message, generation=generation, moment=moment)


def final_condition_status(phase: str) -> ConditionStatus:
    return "True" if phase == "Succeeded" else "False"
