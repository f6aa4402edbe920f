"""How many runs go at once: a Flow's ``spec.concurrency``, a FlowRun's ``spec.priority`` and the
``status.queue`` of a run held back (``flowlib_operator.queue`` decides).

Three limits can hold a run: its Flow's ``maxRuns``, the operator's per-namespace limit and its
cluster-wide one (``--max-runs-per-namespace``, ``--max-runs``). A held run is ``Queued``: no Job,
no pod, and its ``spec.timeout`` has not started. Runs leave the queue by priority (higher first),
then the namespace with the fewest running runs (so one team's burst cannot starve the others of
the cluster limit), then first come, first served.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

QUEUED_PHASE = "Queued"
QUEUED_REASON = "Queued"
FORBIDDEN_CONCURRENCY_REASON = "ConcurrencyForbidden"
"""The reason of a run refused by a Flow's ``policy: Forbid`` while it is at ``maxRuns``."""
ConcurrencyPolicy = Literal["Queue", "Forbid", "Replace"]


class _Model(BaseModel):
    # defer_build: validators are built at the first validation, not at import; FlowSpec's own
    # validator includes these models, and the in-cluster runner validates none of them alone.
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, populate_by_name=True, defer_build=True
    )


class Concurrency(_Model):
    """How many runs of this Flow go at once, and what a run past that does."""

    max_runs: int = Field(ge=1, description="How many runs of this Flow may be going at once (Pending or Running).")
    policy: ConcurrencyPolicy = Field(
        "Queue",
        description="What a new run does while maxRuns are going: Queue (wait, phase Queued, until one ends), "
        "Forbid (fail at once, reason ConcurrencyForbidden) or Replace (cancel the oldest going run and start "
        "when it has ended).",
    )


class QueueStatus(_Model):
    """Why a Queued run waits, and where it is in line."""

    position: int = Field(
        ge=1,
        description="Place in line among the runs waiting for the same limit (1: next). Kept exact for the first "
        "places; further back it is rewritten each time it has halved, so a long queue costs few writes.",
    )
    held_by: str = Field(
        description="The limit that holds the run: its Flow's maxRuns, the namespace's or the cluster's."
    )
    since: str = Field(description="When the run was queued (RFC 3339).")
