"""The life of a FlowRun as the operator sees it: start (create or adopt the runner Job), cancel,
reconcile with what the Job and its pods say, and a periodic resync for what no watch signals
(timeouts, TTL). The decisions themselves are pure functions in ``reconcile``; this module fetches
and writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.meta import CONFIGMAPS, FLOWRUNS, JOBS, STATUS_SUBRESOURCE, ResourceRef
from flowlib_api.resources import StatusKey, succeeded_condition
from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.times import now_utc, parse_time
from flowlib_api.views import FlowRunView
from flowlib_operator import metrics
from flowlib_operator.cache import ClusterCache, Key
from flowlib_operator.events import EventRecorder
from flowlib_operator.identity import RunnerIdentities
from flowlib_operator.jobspec import RunnerSettings, runner_job, snapshot_configmap
from flowlib_operator.naming import job_name
from flowlib_operator.reconcile import Decision, decide, final_status, ttl_expired
from flowlib_operator.resolve import resolve_run

log = logging.getLogger("flowlib.operator")


class LeftoverObject(Exception):
    """An object of the run's name still belongs to a deleted FlowRun that is being collected: the
    start is retried after ``delay`` seconds (the kopf wiring turns this into a temporary error)."""

    delay = 5.0


@dataclass
class RunLifecycle:
    """Starts, cancels and follows FlowRuns; shares the watch cache with the kopf handlers."""

    client: KubeClient
    runner: RunnerSettings
    events: EventRecorder
    identities: RunnerIdentities
    pod_start_timeout: float = 120.0
    resync_interval: float = 10.0
    cache: ClusterCache = field(default_factory=ClusterCache)
    finalized: set[Key] = field(default_factory=set)
    phases: dict[Key, str] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    # -- start and cancel -----------------------------------------------------------------------

    async def start(self, body: dict[str, Any], status_patch: MutableMapping[str, Any]) -> None:
        """Create (or adopt) the runner Job of a FlowRun. Idempotent: safe after any restart."""
        run = FlowRunView(body)
        key = run.key
        if run.finished:
            return
        self.first_seen.setdefault(key, time.monotonic())
        moment = now_utc()
        if run.cancel_requested:
            message = "cancelled before it started (spec.cancel)"
            self._final(status_patch, body, "Cancelled", "Cancelled", message)
            await self.events.record(body, "Normal", "Cancelled", message)
            return
        if run.job_name and await self.client.get_or_none(JOBS, run.job_name, run.namespace):
            return  # created before a restart; the Job watch follows it from here
        resolution = await resolve_run(self.client, body)
        if resolution.snapshot is None:
            message = "invalid flow: " + "; ".join(resolution.problems)
            metrics.INVALID_DEFINITIONS.labels(kind="FlowRun").inc()
            self._final(status_patch, body, "Failed", "InvalidFlow", message)
            status_patch[StatusKey.FLOW] = resolution.flow_name
            await self.events.record(body, "Warning", "InvalidFlow", message)
            return
        if not run.service_account_name:
            await self.identities.ensure(run.namespace)
        job = runner_job(body, resolution.flow_name, self.runner)
        job_name_ = job["metadata"]["name"]
        if run.job_name != job_name_:
            # Pending is written before the Job exists, so the runner's own updates (which can only
            # start once the Job does) are never overwritten by it.
            pending = {
                StatusKey.PHASE: run.phase or "Pending",
                StatusKey.FLOW: resolution.flow_name,
                StatusKey.JOB_NAME: job_name_,
                StatusKey.OBSERVED_GENERATION: run.generation,
                StatusKey.CONDITIONS: [
                    succeeded_condition("Unknown", "JobCreated", f"creating Job {job_name_}", run.generation, moment)
                ],
            }
            status_written: Any = self.client.patch(
                FLOWRUNS, run.name, {"status": pending}, run.namespace, subresource=STATUS_SUBRESOURCE
            )
        else:
            status_written = asyncio.sleep(0)
        configmap = snapshot_configmap(body, resolution.flow_name, resolution.snapshot)
        # Both must exist before the Job (the pod mounts the snapshot), neither depends on the other.
        await asyncio.gather(status_written, _create_or_adopt(self.client, CONFIGMAPS, configmap, run.uid))
        created = await _create_or_adopt(self.client, JOBS, job, run.uid)
        if created:
            metrics.RUNS_STARTED.inc()
            metrics.JOB_CREATION_LATENCY.observe(time.monotonic() - self.first_seen.get(key, time.monotonic()))
            await self.events.record(
                body, "Normal", "Created", f"created runner Job {job_name_} for flow {resolution.flow_name}"
            )

    def _final(
        self, status_patch: MutableMapping[str, Any], body: dict[str, Any], phase: str, reason: str, message: str
    ) -> None:
        status_patch.update(final_status(body, phase, reason, message, now_utc()))
        status_patch[StatusKey.OBSERVED_GENERATION] = FlowRunView(body).generation

    async def cancel(self, body: dict[str, Any]) -> None:
        """``spec.cancel`` became true: stop the runner by deleting the Job (its pod gets SIGTERM)."""
        self.cache.put_flowrun(body, deleted=False)
        await self.reconcile(FlowRunView(body).key)

    # -- following runs -------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        """Bring the FlowRun's status in line with its Job and pods (see ``reconcile.decide``)."""
        async with self.lock(key):
            flowrun = self.cache.flowruns.get(key)
            if flowrun is None or key in self.finalized:
                return
            decision = self._decide(key, flowrun)
            if (decision.status or {}).get(StatusKey.PHASE) in FINISHED_PHASES:
                # Watch streams are independent: the Job's end can arrive before the runner's final
                # status patch does. Before the operator writes a final state of its own, it reads
                # the FlowRun afresh and decides again.
                fresh = await self.client.get_or_none(FLOWRUNS, key[1], key[0])
                if fresh is None:
                    return
                self.cache.put_flowrun(fresh, deleted=False)
                flowrun = fresh
                decision = self._decide(key, flowrun)
            await self._apply(key, flowrun, decision)

    def _decide(self, key: Key, flowrun: dict[str, Any]) -> Decision:
        return decide(
            flowrun,
            self.cache.jobs.get(key),
            self.cache.pods_of(key),
            job_seen=key in self.cache.jobs_seen,
            moment=now_utc(),
            start_timeout=self.pod_start_timeout,
        )

    async def _apply(self, key: Key, flowrun: dict[str, Any], decision: Decision) -> None:
        namespace, name = key
        if decision.delete_job:
            job = FlowRunView(flowrun).job_name or job_name(name)
            await self.client.delete(JOBS, job, namespace, propagation="Background")
        if decision.status:
            if decision.status.get(StatusKey.PHASE) in FINISHED_PHASES:
                self.finalized.add(key)
            try:
                await self.client.patch(
                    FLOWRUNS, name, {"status": decision.status}, namespace, subresource=STATUS_SUBRESOURCE
                )
            except ApiError as error:
                self.finalized.discard(key)
                if error.not_found:
                    return
                raise
        if decision.event:
            if decision.event[1] == "PodCreationFailed":
                self.identities.forget(namespace)
            await self.events.record(flowrun, *decision.event)

    def observe(self, body: dict[str, Any], event_type: str | None) -> Key:
        """A watch event of a FlowRun: keep the cache and the finished-run metrics current."""
        run = FlowRunView(body)
        key = run.key
        deleted = event_type == "DELETED"
        self.cache.put_flowrun(body, deleted)
        phase = run.phase
        if deleted:
            for table in (self.phases, self.locks, self.first_seen):
                table.pop(key, None)
            self.finalized.discard(key)
            return key
        self.first_seen.setdefault(key, time.monotonic())
        previous = self.phases.get(key)
        if phase != previous:
            self.phases[key] = phase or ""
            if phase in FINISHED_PHASES:
                self.finalized.discard(key)
                if previous is not None:  # a transition we watched, not a restart's replay
                    metrics.RUNS_FINISHED.labels(phase=phase).inc()
                    created = parse_time(run.creation_timestamp)
                    finished = parse_time(run.completion_time)
                    if created and finished:
                        metrics.RUN_DURATION.observe(max(0.0, (finished - created).total_seconds()))
        return key

    async def resync(self) -> None:
        """Periodic pass over every run: timeouts the watch cannot signal, and finished runs' TTL."""
        moment = now_utc()
        for key, flowrun in list(self.cache.flowruns.items()):
            try:
                if ttl_expired(flowrun, moment):
                    await self.client.delete(FLOWRUNS, key[1], key[0], propagation="Background")
                elif not FlowRunView(flowrun).finished:
                    await self.reconcile(key)
            except (TimeoutError, ApiError, OSError) as error:
                metrics.RECONCILE_ERRORS.labels(kind="resync").inc()
                log.warning("resync of %s/%s failed (retried next pass): %s", key[0], key[1], error)

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            await self.resync()

    async def reconcile_quietly(self, key: Key) -> None:
        """Reconcile from a watch event; failures are counted and retried by the next resync pass."""
        try:
            await self.reconcile(key)
        except (TimeoutError, ApiError, OSError) as error:
            metrics.RECONCILE_ERRORS.labels(kind="watch").inc()
            log.warning("reconcile of %s/%s failed (retried at the next resync): %s", key[0], key[1], error)


async def _create_or_adopt(
    client: KubeClient, ref: ResourceRef, manifest: dict[str, Any], owner_uid: str | None
) -> bool:
    """Create ``manifest``; if it exists and belongs to this FlowRun, adopt it. True if created."""
    meta = manifest["metadata"]
    try:
        await client.create(ref, manifest, meta["namespace"])
        return True
    except ApiError as error:
        if not error.already_exists:
            raise
    existing = await client.get(ref, meta["name"], meta["namespace"])
    owners = [o.get("uid") for o in existing["metadata"].get("ownerReferences") or []]
    if owner_uid not in owners:
        # Left over from an earlier FlowRun of the same name that is still being garbage collected.
        raise LeftoverObject(
            f"{manifest['kind']} {meta['name']} still belongs to a deleted FlowRun of the same name; waiting"
        )
    return False
