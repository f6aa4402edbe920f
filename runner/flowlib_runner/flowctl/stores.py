"""`flowctl`'s local run stores: `run --store DIR`, `run --resume DIR` and `retry DIR`.

A local store is a directory (``store.directory``) holding the run's checkpoints, as a ``pvc`` store
does in a cluster, plus a copy of the definition and the params the run was started with, so a
killed run can be continued and a failed one retried from the directory alone. It also keeps the
outputs too big for the status (``execution.outputs``) and each attempt's log (``save_local_log``),
which ``flowctl output DIR`` and ``flowctl logs DIR`` print.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from flowlib_api.runnerpod import Snapshot
from flowlib_runner.definition.loader import FlowDefinition, load_object
from flowlib_runner.execution.checkpoints import CheckpointError, ResumeMode, read_meta
from flowlib_runner.execution.checkpoints.journal import StoreOpener
from flowlib_runner.execution.checkpoints.setup import DEFINITION_BLOB, definition_snapshot, invocation, prepare
from flowlib_runner.execution.checkpoints.state import read_invocation
from flowlib_runner.execution.logarchive import LogArchive, archived_attempts
from flowlib_runner.execution.logs import RunLogger
from flowlib_runner.flowctl.common import EXIT_INVALID
from flowlib_runner.store import RunStore, StoreError, put
from flowlib_runner.store.directory import DirectoryStore


@dataclass
class StoredRun:
    """What a local store says about the run it holds."""

    definition: FlowDefinition
    params: dict[str, Any] | None
    outputs: list[str] | None
    input: dict[str, Any] | None
    ended: str | None
    resumable: bool


def _fail(message: str) -> None:
    click.echo(f"flowctl: {message}", err=True)
    raise SystemExit(EXIT_INVALID)


def read_stored_run(directory: str) -> StoredRun:
    """The run a store directory holds; exits with a message when it holds none."""
    store = DirectoryStore(directory)

    async def read() -> tuple[bytes | None, dict[str, Any] | None, dict[str, Any] | None]:
        return await store.get(DEFINITION_BLOB), await read_invocation(store), await read_meta(store)

    try:
        definition_bytes, started_with, meta = asyncio.run(read())
    except (CheckpointError, StoreError) as error:
        _fail(str(error))
        raise  # unreachable: _fail exits
    if definition_bytes is None or meta is None:
        _fail(f"{directory} holds no run (start one with: flowctl run FILE --store {directory})")
        raise AssertionError
    snapshot = Snapshot.from_bytes(definition_bytes)
    result = load_object(snapshot.manifest(), library=snapshot.library)
    if result.definition is None:
        _fail(f"{directory}: the stored definition is no longer valid: " + "; ".join(map(str, result.problems)))
        raise AssertionError
    started_with = started_with or {}
    return StoredRun(
        result.definition,
        started_with.get("params"),
        started_with.get("outputs"),
        started_with.get("input"),
        meta.get("ended"),
        bool(meta.get("resumable")),
    )


def check_fresh(directory: str) -> None:
    """``--store DIR`` starts a new run: DIR must not hold one already (it would be overwritten)."""
    store = DirectoryStore(directory)
    try:
        meta = asyncio.run(read_meta(store))
    except (CheckpointError, StoreError) as error:
        _fail(str(error))
        return
    if meta is None:
        return
    if meta.get("ended"):
        _fail(
            f"{directory} holds a run that ended {meta['ended']}: retry it with `flowctl retry {directory}`, "
            "or give --store an empty directory"
        )
    _fail(
        f"{directory} holds an unfinished run: continue it with `flowctl run --resume {directory}`, "
        "or give --store an empty directory"
    )


def next_retry_directory(directory: str) -> str:
    """Where ``flowctl retry DIR`` keeps the retry's own checkpoints by default: ``DIR-retry<N>``."""
    base = Path(directory.rstrip("/"))
    n = 1
    while (base.parent / f"{base.name}-retry{n}").exists():
        n += 1
    return str(base.parent / f"{base.name}-retry{n}")


def store_setup(
    directory: str,
    definition: FlowDefinition,
    *,
    log: RunLogger,
    params: Mapping[str, Any] | None,
    outputs: list[str] | None,
    input: Mapping[str, Any] | None = None,
    source: str | None = None,
    mode: ResumeMode = "retry",
    fresh: bool = False,
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The ``setup`` of ``execute`` for a run that checkpoints into ``directory`` (resuming from
    its own checkpoint, else from ``source``'s). ``fresh``: ``directory`` was found to hold no run
    (``check_fresh``), so its checkpoint is not looked for again."""
    store = DirectoryStore(directory)

    def note(text: str) -> None:
        log.line("WARNING", (), f"checkpoints: {text}")

    async def setup() -> dict[str, Any]:
        await put(store, DEFINITION_BLOB, definition_snapshot(definition).to_bytes())
        prepared = await prepare(
            store,
            definition,
            opener=opened_directory(directory),
            source=None if source is None else DirectoryStore(source),
            mode=mode,
            note=note,
            started_with=invocation(params, outputs, input),
            resume_own=not fresh,
        )
        return {"checkpointer": prepared.checkpointer, "resumed": prepared.resumed}

    return setup


def save_local_log(directory: str | None, archive: LogArchive | None) -> None:
    """Save the run's log in its store directory, as the next attempt's (``logs/attempt-<n>``: the
    first run is attempt 1, each ``--resume`` one more); a log that cannot be saved is said."""
    if directory is None or archive is None:
        return
    store = DirectoryStore(directory)

    async def save() -> None:
        attempts = await archived_attempts(store)
        await archive.save(store, (attempts[-1] if attempts else 0) + 1)

    try:
        asyncio.run(save())
    except (StoreError, OSError) as error:
        click.echo(f"flowctl: the run's log was not saved in {directory}: {error}", err=True)


def opened_directory(directory: str | Path) -> StoreOpener:
    """The checkpoint writer's opener of a directory store (a directory needs no client; the writer's
    loop has its thread to itself, so the store does its file I/O on it)."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[RunStore]:
        yield DirectoryStore(directory, own_thread=True)

    return opened


__all__ = [
    "StoredRun",
    "check_fresh",
    "next_retry_directory",
    "opened_directory",
    "read_stored_run",
    "save_local_log",
    "store_setup",
]
