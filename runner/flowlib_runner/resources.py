"""The Kubernetes resources of the project: what a ``FlowRun`` asks for and what its status says.

They live in the runner package, below the operator, because both sides read them: the operator
turns a FlowRun into a Job, the runner in that Job reads the same FlowRun and writes its status.
The CRDs in ``crds/`` are generated from these models (``make crds``), so ``kubectl explain``
shows the descriptions written here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flowlib_runner.status import RunStatus
from flowlib_runner.structural import PRESERVE_UNKNOWN

API_GROUP = "flowlib.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$|^[0-9]+(\.[0-9]+)?$"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class FlowRef(_Model):
    """A Flow in the FlowRun's namespace."""

    name: str = Field(description="Name of the Flow to run; it must be in the same namespace as the FlowRun.")


class FlowRunSpec(_Model):
    """What to run and how. Only ``cancel`` may change after the FlowRun is created."""

    flow_ref: FlowRef | None = Field(None, description=("The Flow to run. Set exactly one of flowRef and flow."))
    flow: dict[str, Any] | None = Field(
        None,
        description="An inline flow definition (the same fields as a Flow's spec). Set exactly one of "
        "flowRef and flow.",
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
    timeout: str | None = Field(
        None,
        description="Longest time the run may take, e.g. 30m or 1h30m (the Job's activeDeadlineSeconds); "
        "past it the run fails with reason Timeout.",
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
        description="Service account of the runner pod. Defaults to flowlib-runner, which the operator "
        "creates with the least privilege a runner needs. A custom one needs the same permissions.",
    )
    env: list[dict[str, Any]] | None = Field(
        None,
        description="Environment variables of the runner container (Kubernetes EnvVar objects: value, "
        "or valueFrom with secretKeyRef, configMapKeyRef or fieldRef).",
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


class FlowStatus(_Model):
    """Whether a Flow is valid, as the operator's validation found it."""

    observed_generation: int | None = Field(None, description="The Flow generation that was validated.")
    conditions: list[Condition] | None = Field(
        None,
        description=("The Ready condition: True when the definition is valid, else False with the problems."),
    )
    node_count: int | None = Field(None, description="Number of nodes in the flow.")
    problems: list[str] | None = Field(None, description="Every validation problem, with its path and a fix.")


def human_duration(seconds: float) -> str:
    """``status.duration`` as people read it: 45s, 1m12s, 2h3m4s (whole seconds, sub-second as 0s)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp from a status (``...Z`` or an offset); None for a missing one."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
