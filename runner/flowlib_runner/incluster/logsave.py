"""Saving an attempt's run log to the run's store when the runner is done with it.

Every attempt's end counts (the run succeeded, failed, was cancelled, stopped at an approval node,
or its pod was stopped from outside and the Job may start another): the runner writes the log it
kept (``execution.logarchive``) as ``logs/attempt-<n>``, after the final status, so the archive
holds the run's last lines. A FlowRun that was deleted is left alone: its store goes with it.

It runs inside the pod's grace period (a cancelled run's pod has been sent SIGTERM), so it gives up
after ``SAVE_SECONDS`` and never fails the runner: a log that could not be saved is said on stderr.
The store is opened afresh (not as a first attempt's fresh store: the chunks hold the run's
checkpoints, which must be kept), with the runner's own client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from flowlib_api.meta import FLOWRUNS
from flowlib_api.storespec import StoreLocation
from flowlib_runner.execution.logarchive import LogArchive
from flowlib_runner.kube import KubeClient
from flowlib_runner.kube.client import ApiError
from flowlib_runner.store import StoreError, open_store

SAVE_SECONDS = 8.0
"""How long saving the log may take (the pod's grace period is 30 s, most of it for the run's end)."""

log = logging.getLogger("flowlib.runner")


async def save_run_log(
    archive: LogArchive, location: StoreLocation, *, client: KubeClient, flowrun: dict[str, Any], attempt: int
) -> bool:
    """Write ``archive`` as ``attempt``'s log to the run's store; whether it was written."""
    meta = flowrun["metadata"]
    try:
        async with asyncio.timeout(SAVE_SECONDS):
            current = await client.get_or_none(FLOWRUNS, meta["name"], meta["namespace"])
            if current is None or current["metadata"].get("uid") != meta.get("uid"):
                return False  # deleted (maybe made again under the same name): nothing to keep it for
            store = open_store(location, client=client, owner=flowrun)
            kept = await archive.save(store, attempt)
    except (StoreError, ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
        log.warning("the run log of attempt %d was not saved to the run store: %s", attempt, error)
        return False
    log.info(
        "the run log of attempt %d was saved to %s (%s, %d bytes)",
        attempt,
        location.description,
        kept.folder,
        kept.stored,
    )
    return True
