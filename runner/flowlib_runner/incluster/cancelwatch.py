"""Noticing ``spec.cancel`` while the run goes on, so a cancelled run ends by itself.

The runner reads its own FlowRun every ``CANCEL_POLL_SECONDS`` (a ``get`` by name: what its Role
allows; a ``watch`` would need a verb the Role does not grant) and, once ``spec.cancel`` is true,
cancels the run's token, as SIGTERM does for a cancelled run. The flow then stops where the token
reaches it (between nodes and items; an async node's task is cancelled at once), the runner reports
Cancelled with its final status, archives its log and exits 0: the pod ends by itself and stays,
with its log, and its Job completes (no retry). The operator deletes the Job only when the runner
has not ended within its grace period (``flowlib_operator.reconcile``), for example while a sync
node holds the event loop, which this poll then cannot run in either.

A read that fails (the API unreachable, a timeout) is tried again at the next tick; a FlowRun
that is gone, or was made again under the same name, is left to the SIGTERM path (the garbage
collector deletes the Job and so the pod).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from flowlib import CancelToken
from flowlib_api.meta import FLOWRUNS
from flowlib_api.views import FlowRunView
from flowlib_runner.kube import KubeClient
from flowlib_runner.kube.client import ApiError

CANCEL_POLL_SECONDS = 3.0
"""Seconds between two reads of the FlowRun: a cancel is noticed within about this long, for one
small ``get`` per running pod every few seconds."""
CANCEL_REASON = "cancelled (spec.cancel)"
"""The token's reason on a cancel, as the SIGTERM path gives it (the run log's last line says it)."""
READ_SECONDS = 10.0
"""How long one read may take before it is abandoned until the next tick."""

log = logging.getLogger("flowlib.runner")


async def watch_cancel(
    client: KubeClient,
    name: str,
    namespace: str,
    uid: str | None,
    token: CancelToken,
    *,
    interval: float = CANCEL_POLL_SECONDS,
) -> None:
    """Cancel ``token`` once FlowRun ``namespace/name`` (of ``uid``) asks for it; return when the
    token is cancelled, whoever cancelled it. Run it as a task and cancel the task when the run ends."""
    while True:
        await asyncio.sleep(interval)
        if token.cancelled:
            return  # cancelled otherwise (SIGTERM), or the run ended
        try:
            current = await asyncio.wait_for(client.get_or_none(FLOWRUNS, name, namespace), timeout=READ_SECONDS)
        except (ApiError, OSError, TimeoutError, aiohttp.ClientError) as error:
            log.debug("could not read FlowRun %s/%s for spec.cancel: %s", namespace, name, error)
            continue
        if current is None or (uid is not None and current["metadata"].get("uid") != uid):
            continue  # deleted: the pod goes with the Job (SIGTERM), whose handler knows what to do
        if FlowRunView(current).cancel_requested:
            log.info("spec.cancel is set on FlowRun %s/%s; stopping the run", namespace, name)
            token.cancel(CANCEL_REASON)
            return
