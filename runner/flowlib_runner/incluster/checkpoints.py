"""The in-cluster run's store: opening it, and setting the run up to checkpoint into it.

The operator hands the runner its store as a resolved location (``ENV_STORE``) and, for a retry,
the source run's (``ENV_RESUME_FROM``, with ``ENV_RESUME_MODE``). What a pod of the run starts from:

- a later attempt of the same run (the Job started the pod again): the run's own latest
  checkpoint, so finished nodes and items are not done again;
- a retry (``spec.retryOf``): the source's last checkpoint, failed items left out so they run
  again; a resubmit: nothing of the source but what it was started with;
- otherwise nothing. A run's first attempt does not even read its own store (nothing of it can be
  there yet, and a configmap store then saves its reads).

A retry that names no params, input or outputs of its own takes its source's (as ``flowctl retry
DIR`` does locally), so a plain manifest with ``spec.retryOf`` alone reruns the same invocation.

The checkpoint writer runs in a thread with an event loop of its own (``execution.checkpoints``),
so it opens the store again there, with a Kubernetes client of its own: a client's connection pool
belongs to the loop that made it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from flowlib_api.runnerpod import ENV_RESUME_FROM, ENV_RESUME_MODE, ENV_STORE
from flowlib_api.storespec import StoreLocation
from flowlib_api.views import FlowRunView
from flowlib_runner import __version__
from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.checkpoints import CheckpointError
from flowlib_runner.execution.checkpoints.journal import Note, StoreOpener
from flowlib_runner.execution.checkpoints.setup import Prepared, invocation, prepare
from flowlib_runner.execution.checkpoints.state import read_invocation
from flowlib_runner.kube import ClusterConfig, KubeClient
from flowlib_runner.store import RunStore, StoreError, open_store

CONFIGMAP_WRITE_INTERVAL = 0.25
"""Seconds between two checkpoint writes to a configmap store: each write is an API request that
etcd keeps, so a fast loop's checkpoints are coalesced (a lost pod loses at most this much)."""


class StoreSetupError(RuntimeError):
    """The run cannot start from where it must (its store or its retry source cannot be read)."""


@dataclass
class DurableRun:
    """What the run starts with: its journal and checkpoint, and the inputs it runs with."""

    prepared: Prepared
    params: dict[str, Any] | None
    input: dict[str, Any]
    outputs: list[str]


def store_location(environ: Mapping[str, str] = os.environ) -> StoreLocation | None:
    """The run's store as the operator resolved it (None: the run keeps no checkpoints)."""
    text = environ.get(ENV_STORE)
    if not text:
        return None
    try:
        return StoreLocation.from_json(text)
    except ValueError as error:
        raise StoreSetupError(f"{ENV_STORE} is not a store location the runner understands: {error}") from error


async def set_up(
    location: StoreLocation,
    *,
    client: KubeClient,
    config: ClusterConfig,
    flowrun: dict[str, Any],
    definition: FlowDefinition,
    attempt: int,
    note: Note,
    environ: Mapping[str, str] = os.environ,
) -> DurableRun:
    """Open the run's store (and its retry source) and prepare its checkpoints; raises
    ``StoreSetupError`` with a message for people when that cannot be done."""
    view = FlowRunView(flowrun)
    first = attempt <= 1
    own = open_store(location, client=client, owner=flowrun, fresh=first)
    source, mode = _source(client, environ)
    params, input, outputs = view.params, view.input, view.outputs
    try:
        if source is not None:
            started = await read_invocation(source) or {}
            params = {**(started.get("params") or {}), **(params or {})} or None
            input = input or dict(started.get("input") or {})
            outputs = outputs or list(started.get("outputs") or [])
        prepared = await prepare(
            own,
            definition,
            opener=_opener(location, config, flowrun, fresh=first),
            attempt=attempt,
            source=None if mode == "resubmit" else source,
            mode="retry",
            items_every=location.checkpoint_items,
            items_seconds=location.checkpoint_seconds,
            write_interval=CONFIGMAP_WRITE_INTERVAL if location.type == "configmap" else 0.0,
            note=note,
            started_with=invocation(params, outputs, input),
            resume_own=not first,
        )
    except (StoreError, CheckpointError) as error:
        raise StoreSetupError(f"the run cannot start from its checkpoints: {error}") from error
    return DurableRun(prepared, params, input, outputs)


def _source(client: KubeClient, environ: Mapping[str, str]) -> tuple[RunStore | None, str]:
    text = environ.get(ENV_RESUME_FROM)
    mode = environ.get(ENV_RESUME_MODE) or "retry"
    if mode not in ("retry", "resubmit"):
        raise StoreSetupError(f"{ENV_RESUME_MODE} must be retry or resubmit, not {mode!r}")
    if not text:
        return None, mode
    try:
        location = StoreLocation.from_json(text)
    except ValueError as error:
        raise StoreSetupError(f"{ENV_RESUME_FROM} is not a store location: {error}") from error
    return open_store(location, client=client), mode


def _opener(location: StoreLocation, config: ClusterConfig, flowrun: dict[str, Any], *, fresh: bool) -> StoreOpener:
    """Opens the store in the checkpoint writer's thread, with a client of that thread's loop."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[RunStore]:
        async with KubeClient(config, user_agent=f"flowlib-runner/{__version__} checkpoints") as client:
            yield open_store(location, client=client, owner=flowrun, fresh=fresh, own_thread=True)

    return opened


__all__ = ["CONFIGMAP_WRITE_INTERVAL", "DurableRun", "StoreSetupError", "set_up", "store_location"]
