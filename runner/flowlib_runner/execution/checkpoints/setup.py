"""Setting a run up for checkpoints: which checkpoint it starts from, and its journal.

Shared by ``flowctl run --store/--resume``, ``flowctl retry`` and the in-cluster runner, so a run
resumes the same way on a laptop and in a pod.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowlib_api.runnerpod import Snapshot
from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.checkpoints.journal import Checkpointer, Note, StoreOpener
from flowlib_runner.execution.checkpoints.state import Checkpoint, ResumeMode, load_checkpoint
from flowlib_runner.store import RunStore

DEFINITION_BLOB = "run/definition.json"
"""A local store's copy of the definition it ran, so ``--resume DIR`` and ``retry DIR`` need no file."""


def definition_snapshot(definition: FlowDefinition) -> Snapshot:
    """The definition as the operator freezes it (a Flow manifest and its sub-flows)."""

    def dump(spec: object) -> dict[str, object]:
        data: dict[str, object] = spec.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
        return data

    return Snapshot(definition.name, dump(definition.spec), {n: dump(s) for n, s in definition.subflows.items()})


def definition_digest(definition: FlowDefinition) -> str:
    """What a checkpoint is tied to: a checkpoint of one definition never resumes another."""
    return hashlib.sha256(definition_snapshot(definition).to_json().encode()).hexdigest()


@dataclass
class Prepared:
    """A run's journal and the checkpoint it starts from (None: from the beginning)."""

    checkpointer: Checkpointer
    resumed: Checkpoint | None


async def prepare(
    store: RunStore,
    definition: FlowDefinition,
    *,
    opener: StoreOpener,
    attempt: int = 1,
    source: RunStore | None = None,
    mode: ResumeMode = "retry",
    items_every: int = 200,
    items_seconds: float = 2.0,
    write_interval: float = 0.0,
    note: Note | None = None,
    started_with: dict[str, Any] | None = None,
    resume_own: bool = True,
) -> Prepared:
    """The journal of a run writing to ``store`` (``opener`` opens it again in the writer thread),
    resuming from ``store``'s own latest checkpoint (a new pod of the same run), else from
    ``source``'s (a retry, in ``mode``), else from nothing.

    ``started_with`` (``invocation(...)``) is recorded with the first checkpoint of a run that does
    not resume its own store. ``resume_own=False`` (a run's first attempt) ignores whatever ``store``
    holds already: nothing of this run can be there yet, so a checkpoint found there is not its own.

    Raises ``CheckpointError`` when a checkpoint exists but belongs to another definition or cannot
    be read: resuming from it would be silently wrong, starting over would redo finished work.
    """
    digest = definition_digest(definition)
    resumed = await load_checkpoint(store, definition_digest=digest, mode="resume") if resume_own else None
    own = resumed is not None
    if resumed is None and source is not None:
        resumed = await load_checkpoint(source, definition_digest=digest, mode=mode)
    checkpointer = Checkpointer(
        opener,
        location=store.location,
        definition_digest=digest,
        attempt=attempt,
        resumed=resumed,
        items_every=items_every,
        items_seconds=items_seconds,
        write_interval=write_interval,
        note=note,
        invocation=None if own else started_with,
    )
    return Prepared(checkpointer, resumed)


def invocation(
    params: Mapping[str, object] | None, outputs: list[str] | None, input: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """What a run was started with, as its store records it (``state.INVOCATION``)."""
    return {
        "params": dict(params) if params else None,
        "outputs": outputs or None,
        "input": dict(input) if input else None,
    }
