"""How many finished runs of a Flow are kept (``Flow.spec.history``).

Finished FlowRuns otherwise pile up until each sets its own TTL. A Flow says how many of its newest
Succeeded runs and how many of its newest Failed or Cancelled runs to keep; the operator deletes the
older ones (``flowlib_operator.history``). A limit the Flow leaves out falls back to the operator's
(``--history-succeeded``/``--history-failed``); unset there too, every run is kept.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SUCCEEDED_PHASES = frozenset({"Succeeded"})
"""The phases ``succeeded`` counts."""
FAILED_PHASES = frozenset({"Failed", "Cancelled"})
"""The phases ``failed`` counts: every way a run can end without succeeding."""


class RunHistory(BaseModel):
    """How many finished runs to keep, by outcome; the oldest beyond are deleted."""

    # defer_build: validators are built at the first validation, not at import; FlowSpec's own
    # validator includes these models, and the in-cluster runner validates none of them alone.
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, populate_by_name=True, defer_build=True
    )

    succeeded: int | None = Field(
        None,
        ge=0,
        description="How many of the newest Succeeded runs of this Flow to keep; older ones are deleted. "
        "Default: the operator's --history-succeeded (unset there: all are kept).",
    )
    failed: int | None = Field(
        None,
        ge=0,
        description="How many of the newest Failed or Cancelled runs of this Flow to keep; older ones are "
        "deleted. Default: the operator's --history-failed (unset there: all are kept).",
    )

    def over(self, fallback: RunHistory) -> RunHistory:
        """These limits, each one left out taken from ``fallback`` (the operator's)."""
        return RunHistory(
            succeeded=fallback.succeeded if self.succeeded is None else self.succeeded,
            failed=fallback.failed if self.failed is None else self.failed,
        )

    @property
    def unlimited(self) -> bool:
        return self.succeeded is None and self.failed is None


KEEP_ALL = RunHistory(succeeded=None, failed=None)
"""No limit: every finished run is kept."""
