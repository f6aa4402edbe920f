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
from datetime import datetime
from http import HTTPStatus
from typing import Any

import aiohttp
from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.concurrency import FORBIDDEN_CONCURRENCY_REASON, QUEUED_PHASE, QUEUED_REASON
from flowlib_api.meta import (
    CONFIGMAPS,
    FLOWRUNS,
    FLOWS,
    JOBS,
    LABEL_FLOW,
    LABEL_FLOWRUN,
    PODS,
    STATUS_SUBRESOURCE,
    ResourceRef,
)
from flowlib_api.resources import SpecKey, StatusKey, retried_spec, succeeded_condition
from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.storespec import StoreLocation, StoreSpec
from flowlib_api.times import now_utc, parse_time, rfc3339, timeout_problem
from flowlib_api.views import FlowRunView
from flowlib_operator import metrics
from flowlib_operator.access import FORBIDDEN_REASON, borrowing_problems, flow_pod_problems
from flowlib_operator.cache import ClusterCache, Key
from flowlib_operator.events import EventRecorder
from flowlib_operator.history import HistoryKeeper, flow_of_run, labelled_flow, run_order
from flowlib_operator.identity import run_identity
from flowlib_operator.jobspec import RunnerSettings, runner_job, snapshot_configmap
from flowlib_operator.naming import job_name, label_value
from flowlib_operator.queue import RunQueue, Waiting, position_due, priority_of, queued_status
from flowlib_operator.reconcile import (
    CANCEL_GRACE,
    CANCEL_SEEN_ANNOTATION,
    Decision,
    decide,
    final_status,
    ttl_expired,
)
from flowlib_operator.resolve import INVALID_PARAMS_REASON, Resolution, params_problems, resolve_run
from flowlib_operator.retries import keep_source_store, source_definition
from flowlib_operator.rundefaults import (
    INVALID_SPEC_REASON,
    NamespaceDefaults,
    effective_run,
    namespace_defaults,
    own_pod_refusal,
)
from flowlib_operator.runner_token import LeftoverSecret, runner_tokens
from flowlib_operator.stores import (
    DEFAULT_STORE_TEXT,
    INVALID_STORE_REASON,
    NOTHING_TO_RETRY,
    Refusal,
    Resume,
    StoreProblem,
    parse_store_spec,
    plan_resume,
    store_conflict,
    store_location,
)

log = logging.getLogger("flowlib.operator")

TRANSIENT_ERRORS = (TimeoutError, ApiError, OSError, aiohttp.ClientError)
"""What a request can still fail with after the client's retries (an unreachable or erring API):
the reconcile is retried by the next resync pass."""
"""A spec field the CRD's schema let through but no Job can carry (a ``timeout`` past the bound)."""

RESYNC_CONCURRENCY = 16
"""Runs a resync pass reconciles at once."""
POSITION_WRITES_PER_PASS = 100
"""How many places in line one resync pass rewrites at most (``write_positions``)."""
QUEUE_SYNC_WAIT = 60.0
"""Seconds a new run's start waits for the queue's first listing (``sync_queue``) before it fails
with a TimeoutError that kopf retries."""
VERIFY_AFTER = 300.0
"""Seconds after which a resync pass reads an unfinished run's objects afresh even though nothing
asked for it: kopf's relist after a 410 never reports deletions, so a Job or pod deleted while a
watch was away would otherwise stay in the cache for good and hold its run unfinished."""


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
    authorized_at_admission: bool = False
    """True when the admission webhook checks each run's author (``access``); else only labels open objects."""
    pod_start_timeout: float = 120.0
    resync_interval: float = 10.0
    default_store: StoreSpec = field(default_factory=lambda: parse_store_spec(DEFAULT_STORE_TEXT))
    """The store of runs whose spec.store does not say otherwise (``--default-store``; see ``stores``)."""
    cache: ClusterCache = field(default_factory=ClusterCache)
    finalized: set[Key] = field(default_factory=set)
    phases: dict[Key, str] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)
    unwritten: dict[Key, Decision] = field(default_factory=dict)
    """Decisions that deleted their Job but could not write their status yet (``reconcile``)."""
    fresh_at: dict[Key, float] = field(default_factory=dict)
    """When each run's objects were last read afresh (monotonic seconds; see ``VERIFY_AFTER``)."""
    cancel_grace: float = CANCEL_GRACE
    """Seconds a cancelled run's runner has to end by itself before its Job is deleted (``reconcile``)."""
    cancels_seen: dict[Key, str] = field(default_factory=dict)
    """When this process recorded seeing each run's cancel, for a cache that lags its annotation."""
    history: HistoryKeeper | None = None
    """Deletes each Flow's oldest finished runs beyond its ``spec.history`` (``history``)."""
    queue: RunQueue = field(default_factory=RunQueue)
    """Which runs may go now under the concurrency limits (``queue``)."""
    _pump: asyncio.Task[None] | None = None
    _pump_again: bool = False

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    # -- start and cancel -----------------------------------------------------------------------

    async def start(
        self,
        body: dict[str, Any],
        status_patch: MutableMapping[str, Any],
        labels_patch: MutableMapping[str, Any] | None = None,
        *,
        admitted: bool = False,
    ) -> None:
        """Create (or adopt) the runner Job of a FlowRun. Idempotent: safe after any restart.

        ``labels_patch`` gets the run's ``flowlib.dev/flow`` label when its definition is a Flow's
        (what a Flow's history finds its runs by), also on runs that finished before it existed.
        A run that never had a Job goes through the queue first (``queue``): over a limit it is
        Queued instead, unless the queue itself let it go (``admitted``)."""
        run = FlowRunView(body)
        key = run.key
        _label_flow(run, run.flow_ref, labels_patch)
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
        too_long = timeout_problem(run.timeout)
        if too_long is not None:  # without the webhook nothing refused it before: the Job could not exist
            await self._refuse(status_patch, body, Refusal(INVALID_SPEC_REASON, f"invalid FlowRun: {too_long}"))
            return
        bad_pod = own_pod_refusal(run)
        if bad_pod is not None:
            await self._refuse(status_patch, body, bad_pod)
            return
        defaults = await namespace_defaults(self.client, run.namespace)
        if isinstance(defaults, Refusal):
            await self._refuse(status_patch, body, defaults)
            return
        try:
            store = store_location(defaults.store(self.default_store), run)
        except StoreProblem as problem:
            await self._refuse(status_patch, body, Refusal(INVALID_STORE_REASON, f"invalid store: {problem}"))
            return
        source = await self.client.get_or_none(FLOWRUNS, run.retry_of, run.namespace) if run.retry_of else None
        queue_flow = run.flow_ref
        if source is not None and not run.own_definition:
            queue_flow = labelled_flow(source)
            _label_flow(run, queue_flow, labels_patch)
        if not self.authorized_at_admission:
            refused = await borrowing_problems(self.client, run, source=source)
            if refused:
                message = "not allowed: " + "; ".join(refused)
                metrics.FORBIDDEN_RUNS.inc()
                await self._refuse(status_patch, body, Refusal(FORBIDDEN_REASON, message))
                return
        resume = self._resume(run, store, source) if run.retry_of else None
        if isinstance(resume, Refusal):
            await self._refuse(status_patch, body, resume)
            return
        if resume is not None and not run.own_definition:
            resolution = await source_definition(self.client, run.namespace, resume)
            if resolution.snapshot is None:
                status_patch[StatusKey.FLOW] = resolution.flow_name
                await self._refuse(status_patch, body, Refusal(NOTHING_TO_RETRY, "; ".join(resolution.problems)))
                return
        else:
            resolution = await resolve_run(self.client, body)
        if resolution.snapshot is None:
            message = "invalid flow: " + "; ".join(resolution.problems)
            metrics.INVALID_DEFINITIONS.labels(kind="FlowRun").inc()
            self._final(status_patch, body, "Failed", "InvalidFlow", message)
            status_patch[StatusKey.FLOW] = resolution.flow_name
            await self.events.record(body, "Warning", "InvalidFlow", message)
            return
        given = retried_spec(run.spec, source.get("spec") or {}) if source is not None else run.spec
        bad_params = params_problems(resolution.spec, given)
        if bad_params:
            message = "invalid params: " + "; ".join(bad_params)
            self._final(status_patch, body, "Failed", INVALID_PARAMS_REASON, message)
            status_patch[StatusKey.FLOW] = resolution.flow_name
            await self.events.record(body, "Warning", INVALID_PARAMS_REASON, message)
            return
        if resolution.pod and run.inline_flow is None and not self.authorized_at_admission:
            refused = await flow_pod_problems(self.client, run.namespace, resolution.flow_name, resolution.pod)
            if refused:
                metrics.FORBIDDEN_RUNS.inc()
                await self._refuse(status_patch, body, Refusal(FORBIDDEN_REASON, "not allowed: " + "; ".join(refused)))
                return
        if not run.job_name and not admitted and key not in self.queue.going:  # going: the queue let it go
            if run.flow_ref and resolution.spec is not None:  # the Flow as it is now (a retry's is frozen)
                self.queue.flow_seen(run.namespace, run.flow_ref, resolution.spec)
            if await self._held(body, queue_flow, status_patch):
                return
        try:
            await self._start_admitted(
                body,
                status_patch,
                resolution=resolution,
                snapshot=resolution.snapshot,
                defaults=defaults,
                store=store,
                resume=resume,
                moment=moment,
            )
        except BaseException:
            current = self.cache.flowruns.get(key)
            if current is None or not FlowRunView(current).job_name:
                self.queue.release(key)  # nothing was created for it: the place is free again
            raise

    async def sync_queue(self, namespaces: tuple[str, ...]) -> None:
        """List every FlowRun the operator watches (``namespaces``; empty: all) into the queue once,
        retrying until it succeeds: until then no run is let go, since a count from a cache still
        filling could give a place that is taken."""
        delay = 1.0
        while True:
            try:
                if namespaces:
                    flows = [f for ns in namespaces for f in await self.client.list(FLOWS, ns)]
                    listed = [run for ns in namespaces for run in await self.client.list(FLOWRUNS, ns)]
                else:
                    flows = await self.client.list(FLOWS)
                    listed = await self.client.list(FLOWRUNS)
                for flow in flows:  # their limits, before any run is let go under them
                    self.queue.flow_seen(flow["metadata"]["namespace"], flow["metadata"]["name"], flow.get("spec"))
            except TRANSIENT_ERRORS as error:
                log.warning("listing FlowRuns for the queue failed (retried in %gs): %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.queue.sync(listed)
            self.wake_queue()
            return

    async def _held(self, body: dict[str, Any], flow: str | None, status_patch: MutableMapping[str, Any]) -> bool:
        """Whether a limit holds the run back: then it is Queued (its status says by what and where
        in line), refused (its Flow's ``policy: Forbid``), or Queued after the oldest going run of
        its Flow was cancelled (``policy: Replace``). Otherwise it takes its place at once."""
        run = FlowRunView(body)
        await asyncio.wait_for(self.queue.ready.wait(), timeout=QUEUE_SYNC_WAIT)
        async with self.lock(run.key):  # the queue's own start of the run holds it too
            if run.key in self.queue.going:
                return False  # the queue let it go meanwhile (a restart's pump): start it as admitted
            return await self._hold_or_admit(body, run, flow, status_patch)

    async def _hold_or_admit(
        self, body: dict[str, Any], run: FlowRunView, flow: str | None, status_patch: MutableMapping[str, Any]
    ) -> bool:
        hold = self.queue.holding(run.namespace, flow)
        if hold is None:
            self.queue.admit(run.key, flow)
            return False
        reason = hold.text
        concurrency = self.queue.flow_limits.get((run.namespace, flow)) if flow and hold.by_flow else None
        if concurrency is not None and concurrency.policy == "Forbid":
            going = sorted(k[1] for k, f in self.queue.going.items() if f == (run.namespace, flow))
            message = f"not started: {reason} with policy Forbid, and {', '.join(going)} still going"
            self._final(status_patch, body, "Failed", FORBIDDEN_CONCURRENCY_REASON, message)
            await self.events.record(body, "Warning", FORBIDDEN_CONCURRENCY_REASON, message)
            return True
        if concurrency is not None and concurrency.policy == "Replace":
            await self._replace_oldest(run.namespace, str(flow), concurrency.max_runs)
        moment = now_utc()
        since_text = (run.status.get(StatusKey.QUEUE) or {}).get("since") or rfc3339(moment)
        waiting = Waiting(run.key, flow, priority_of(body), parse_time(since_text) or moment)
        if run.phase != QUEUED_PHASE or (run.status.get(StatusKey.QUEUE) or {}).get("heldBy") != reason:
            # Written here, not by kopf after the handler: once in line the run may go at any moment,
            # and its Pending must never be overwritten by this Queued.
            status = queued_status(reason, self.queue.place(waiting), since_text, run.generation, moment)
            status[StatusKey.FLOW] = flow or run.flow  # what a retry's Queued events say its Flow is
            try:
                await self._patch_status(run.name, run.namespace, status)
            except BaseException:
                self.queue.joining.pop(run.key, None)
                raise
            self.queue.wait(waiting)
            await self.events.record(body, "Normal", QUEUED_REASON, status[StatusKey.MESSAGE])
        else:
            self.queue.wait(waiting)
        self.wake_queue()
        return True

    async def _patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> None:
        await self.client.patch(FLOWRUNS, name, {"status": status}, namespace, subresource=STATUS_SUBRESOURCE)

    async def _replace_oldest(self, namespace: str, flow: str, max_runs: int) -> None:
        """``policy: Replace``: cancel the oldest going runs of the Flow, so one place comes free."""
        going = [
            self.cache.flowruns[k]
            for k, f in self.queue.going.items()
            if f == (namespace, flow) and k in self.cache.flowruns
        ]
        live = sorted((b for b in going if not FlowRunView(b).cancel_requested), key=run_order)
        for body in live[: max(0, len(live) - max_runs + 1)]:
            name = FlowRunView(body).name
            await self.client.patch(FLOWRUNS, name, {"spec": {SpecKey.CANCEL: True}}, namespace)
            await self.events.record(
                body, "Normal", "Replaced", f"cancelled: Flow {flow} has policy Replace and a newer run is waiting"
            )

    async def _start_admitted(
        self,
        body: dict[str, Any],
        status_patch: MutableMapping[str, Any],
        *,
        resolution: Resolution,
        snapshot: bytes,
        defaults: NamespaceDefaults,
        store: StoreLocation | None,
        resume: Resume | None,
        moment: datetime,
    ) -> None:
        """The rest of ``start``, for a run that holds its place: its Job and what the Job needs."""
        run = FlowRunView(body)
        key = run.key
        effective = effective_run(body, defaults, resolution.pod)
        if isinstance(effective, Refusal):
            await self._refuse(status_patch, body, effective)
            return
        job = runner_job(effective.body, resolution.flow_name, self.runner, store=store, resume=resume)
        job_name_ = job["metadata"]["name"]
        if run.job_name != job_name_:
            # Pending is written before the Job exists, so the runner's own updates (which can only
            # start once the Job does) are never overwritten by it. status.store too: a retry of this
            # run reads it, and the run's store may hold checkpoints from its first pod on.
            pending = {
                StatusKey.PHASE: "Pending" if run.phase in (None, "", QUEUED_PHASE) else run.phase,
                StatusKey.QUEUE: None,
                **({StatusKey.MESSAGE: None} if run.phase == QUEUED_PHASE else {}),
                StatusKey.FLOW: resolution.flow_name,
                StatusKey.JOB_NAME: job_name_,
                StatusKey.OBSERVED_GENERATION: run.generation,
                StatusKey.STORE: store.status() if store is not None else None,
                StatusKey.DEFAULTS: effective.defaults_status,
                StatusKey.CONDITIONS: [
                    succeeded_condition("Unknown", "JobCreated", f"creating Job {job_name_}", run.generation, moment)
                ],
            }
            status_written: Any = self.client.patch(
                FLOWRUNS, run.name, {"status": pending}, run.namespace, subresource=STATUS_SUBRESOURCE
            )
        else:
            status_written = asyncio.sleep(0)
        configmap = snapshot_configmap(body, resolution.flow_name, snapshot)
        # All must exist before the Job (the pod mounts the snapshot and runs as the run's own
        # identity, and a retry's source store must not be collected under it); none depends on
        # another (a RoleBinding may name a Role created a moment later).
        await asyncio.gather(
            status_written,
            _create_or_adopt(self.client, CONFIGMAPS, configmap, run.uid),
            *(
                _create_or_adopt(self.client, ref, manifest, run.uid)
                for ref, manifest in run_identity(body, resolution.flow_name, store, resume)
            ),
            keep_source_store(self.client, body, resume) if resume is not None else asyncio.sleep(0),
        )
        try:
            created = await _create_or_adopt(self.client, JOBS, job, run.uid)
        except ApiError as error:
            if error.status != HTTPStatus.UNPROCESSABLE_ENTITY:
                raise
            # A pod control the API server refuses (an affinity or a volume source our schema keeps
            # opaque): no retry can fix it, so the run fails saying what the API server said.
            refusal = Refusal(INVALID_SPEC_REASON, f"invalid FlowRun: the API server refused its Job: {error.message}")
            final = final_status(body, "Failed", refusal.reason, refusal.message, now_utc())
            final[StatusKey.OBSERVED_GENERATION] = run.generation
            await self.client.patch(
                FLOWRUNS, run.name, {"status": final}, run.namespace, subresource=STATUS_SUBRESOURCE
            )
            await self.events.record(body, "Warning", refusal.reason, refusal.message)
            return
        if created:
            metrics.RUNS_STARTED.inc()
            metrics.JOB_CREATION_LATENCY.observe(time.monotonic() - self.first_seen.get(key, time.monotonic()))
            retried = f", resuming from FlowRun {resume.source} ({resume.mode})" if resume is not None else ""
            await self.events.record(
                body, "Normal", "Created", f"created runner Job {job_name_} for flow {resolution.flow_name}{retried}"
            )

    @staticmethod
    def _resume(run: FlowRunView, store: StoreLocation | None, source: dict[str, Any] | None) -> Resume | Refusal:
        """What a retry resumes from (``stores.plan_resume``), or why it cannot start."""
        resume = plan_resume(run, source)
        if isinstance(resume, Refusal):
            return resume
        conflict = store_conflict(store, resume)
        if conflict is not None:
            return Refusal(INVALID_STORE_REASON, f"invalid store: {conflict}")
        return resume

    async def _refuse(self, status_patch: MutableMapping[str, Any], body: dict[str, Any], refusal: Refusal) -> None:
        """The run fails before anything is created for it, saying why (status and a Warning Event)."""
        self._final(status_patch, body, "Failed", refusal.reason, refusal.message)
        await self.events.record(body, "Warning", refusal.reason, refusal.message)

    def _final(
        self, status_patch: MutableMapping[str, Any], body: dict[str, Any], phase: str, reason: str, message: str
    ) -> None:
        status_patch.update(final_status(body, phase, reason, message, now_utc()))
        status_patch[StatusKey.OBSERVED_GENERATION] = FlowRunView(body).generation

    async def keep_runner_token(self, body: dict[str, Any], *, recheck: bool = False) -> None:
        """Every FlowRun event: a run under a borrowed service account gets its runner token before
        it starts (kopf calls this before ``start``) and a fresh one once it is due; its runner
        authenticates with it, since the borrowed account holds no run's Role (``runner_token``).
        No request while the token it made is fresh, unless ``recheck`` (a resync pass that reads
        the run afresh) asks to look at its Secret again. A failure is logged and counted; the next
        resync pass tries again (a pod that starts meanwhile waits for the Secret's token)."""
        try:
            await runner_tokens(self.client).keep(body, recheck=recheck)
        except (*TRANSIENT_ERRORS, LeftoverSecret) as error:
            run = FlowRunView(body)
            metrics.RECONCILE_ERRORS.labels(kind="token").inc()
            log.warning("the runner token of %s/%s is not made yet (retried next pass): %s", *run.key, error)

    async def cancel(self, body: dict[str, Any]) -> None:
        """``spec.cancel`` became true. The runner sees it too, stops its flow, reports Cancelled and
        exits, so its pod and log stay; the reconcile records when the cancel was seen and deletes
        the Job only if the runner has not ended ``cancel_grace`` seconds later (or never started)."""
        self.cache.put_flowrun(body, deleted=False)
        await self.reconcile(FlowRunView(body).key)

    async def decided(self, body: dict[str, Any]) -> None:
        """``spec.approvals`` changed: a Suspended run whose decision arrived goes on (``reconcile``)."""
        self.cache.put_flowrun(body, deleted=False)
        if FlowRunView(body).phase == "Suspended":
            await self.reconcile_quietly(FlowRunView(body).key)

    # -- following runs -------------------------------------------------------------------------

    async def reconcile(self, key: Key, *, verify: bool = False) -> None:
        """Bring the FlowRun's status in line with its Job and pods (see ``reconcile.decide``).

        Decisions start from the watch cache; one that settles the run (a final phase, deleting or
        creating the Job) is taken again on the FlowRun, Job and pods read afresh from the API,
        because a watch stream may not have delivered (or may never report) what changed. With
        ``verify`` they are read afresh whatever the cache suggests.
        """
        async with self.lock(key):
            flowrun = self.cache.flowruns.get(key)
            if flowrun is None or key in self.finalized:
                return
            decision = self._decide(key, flowrun, fresh=False)
            if decision.refresh or key in self.unwritten or verify:
                flowrun = await self._refresh(key)
                if flowrun is None:
                    return
                if FlowRunView(flowrun).finished:
                    self.unwritten.pop(key, None)
                # A decision whose Job is already deleted but whose status was not written is applied
                # again as it was: deciding anew would take the Job's absence for a deletion.
                decision = self.unwritten.get(key) or self._decide(key, flowrun, fresh=True)
            await self._apply(key, flowrun, decision)

    async def _refresh(self, key: Key) -> dict[str, Any] | None:
        """Read the FlowRun, its Job and the Job's pods from the API into the cache; None when the
        FlowRun is gone. Only this run's Job counts (a Job of that name may still belong to a deleted
        FlowRun of the same name), and only that Job's pods."""
        namespace, name = key
        metrics.FRESH_READS.inc()
        flowrun = await self.client.get_or_none(FLOWRUNS, name, namespace)
        if flowrun is None:
            gone = self.cache.flowruns.get(key)
            if gone is not None:  # deleted while a watch was cut (a relist never says so): forgotten here
                self.observe(gone, "DELETED")
            return None
        run = FlowRunView(flowrun)
        wanted = run.job_name or job_name(name)
        job, pods = await asyncio.gather(
            self.client.get_or_none(JOBS, wanted, namespace),
            self.client.list(PODS, namespace, label_selector=f"{LABEL_FLOWRUN}={label_value(name)}"),
        )
        if job is not None and not _owned_by(job, run.uid):
            job = None
        job_uid = job["metadata"].get("uid") if job else None
        pods = [p for p in pods if _owned_by(p, job_uid, kind="Job", name=wanted)]
        self.cache.put_flowrun(flowrun, deleted=False)
        self.cache.replace_job(key, job, pods)
        self.fresh_at[key] = time.monotonic()
        return flowrun

    def _decide(self, key: Key, flowrun: dict[str, Any], *, fresh: bool) -> Decision:
        run_uid = FlowRunView(flowrun).uid
        job = self.cache.job_of(key, run_uid)
        return decide(
            flowrun,
            job,
            self.cache.pods_of(key, job),
            job_seen=self.cache.job_seen(key, run_uid),
            moment=now_utc(),
            start_timeout=self.pod_start_timeout,
            fresh=fresh,
            cancel_grace=self.cancel_grace,
            cancel_seen=self.cancels_seen.get(key),
        )

    async def _apply(self, key: Key, flowrun: dict[str, Any], decision: Decision) -> None:
        """Carry ``decision`` out: the Job first (created or deleted), then the status, then the Event.
        A status that fails after its Job was deleted is kept in ``unwritten`` for the next pass."""
        namespace, name = key
        if decision.cancel_seen:
            if key in self.cancels_seen:
                return  # recorded already; the cache has not shown the annotation yet
            annotation = {"metadata": {"annotations": {CANCEL_SEEN_ANNOTATION: decision.cancel_seen}}}
            try:
                await self.client.patch(FLOWRUNS, name, annotation, namespace)
            except ApiError as error:
                if error.not_found:
                    return
                raise
            self.cancels_seen[key] = decision.cancel_seen
        if decision.create_job:
            await self._create_job(flowrun)
        if decision.delete_job:
            if decision.status:
                self.unwritten[key] = decision  # until the status is written (see ``reconcile``)
            job = FlowRunView(flowrun).job_name or job_name(name)
            await self.client.delete(JOBS, job, namespace, propagation="Background")
        if decision.status:
            if decision.status.get(StatusKey.PHASE) in FINISHED_PHASES:
                self.finalized.add(key)
            written = False
            try:
                await self.client.patch(
                    FLOWRUNS, name, {"status": decision.status}, namespace, subresource=STATUS_SUBRESOURCE
                )
                written = True
            except ApiError as error:
                if error.not_found:
                    self.unwritten.pop(key, None)
                    return
                raise
            finally:
                if not written:
                    self.finalized.discard(key)  # the next resync pass decides and writes again
            self.unwritten.pop(key, None)
        if decision.event:
            await self.events.record(flowrun, *decision.event)

    async def _create_job(self, flowrun: dict[str, Any]) -> None:
        """Create the missing Job of a run that never started, as its start does (which adopts what
        exists, so racing a start still in progress is harmless); write what the start decided."""
        await self._start_and_write(flowrun)

    async def _start_and_write(self, flowrun: dict[str, Any], *, admitted: bool = False) -> None:
        """``start`` outside a kopf handler: what it decided (labels, status) is written here."""
        status: dict[str, Any] = {}
        labels: dict[str, Any] = {}
        await self.start(flowrun, status, labels, admitted=admitted)
        run = FlowRunView(flowrun)
        if labels:
            await self.client.patch(FLOWRUNS, run.name, {"metadata": {"labels": labels}}, run.namespace)
        if status:
            await self._patch_status(run.name, run.namespace, status)

    def observe(self, body: dict[str, Any], event_type: str | None) -> Key:
        """A watch event of a FlowRun: keep the cache and the finished-run metrics current."""
        run = FlowRunView(body)
        key = run.key
        deleted = event_type == "DELETED"
        self.cache.put_flowrun(body, deleted)
        was_waiting = key in self.queue.waiting
        freed = self.queue.observe(body, deleted)
        if freed or (not was_waiting and self.queue.may_go(key)):
            self.wake_queue()  # a place came free, or a run came into line with a place free for it
        phase = run.phase
        if deleted:
            for table in (self.phases, self.locks, self.first_seen, self.unwritten, self.fresh_at, self.cancels_seen):
                table.pop(key, None)
            self.finalized.discard(key)
            return key
        self.first_seen.setdefault(key, time.monotonic())
        previous = self.phases.get(key)
        if phase != previous:
            self.phases[key] = phase or ""
            if phase in FINISHED_PHASES:
                self.finalized.discard(key)
                if self.history is not None:
                    self.history.run_finished(body)
                if previous is not None:  # a transition we watched, not a restart's replay
                    created = parse_time(run.creation_timestamp)
                    finished = parse_time(run.completion_time)
                    took = (finished - created).total_seconds() if created and finished else None
                    metrics.run_finished(run.namespace, metrics_flow(body), phase, took)
        return key

    def known_runs(self) -> list[tuple[str, str, str]]:
        """(namespace, flow, phase) of each run in the cache, for the ``flowlib_flowruns`` gauge.
        Called from the metrics server's thread: the copy of the cache's items is one C-level step
        under the GIL, so the event loop cannot change the dict while it is read."""
        return [
            (key[0], metrics_flow(body), FlowRunView(body).phase or "")
            for key, body in list(self.cache.flowruns.items())
        ]

    async def resync(self) -> None:
        """Periodic pass over every run: what no watch event signals (timeouts, a Job that never got a
        pod, TTL), what a lost event left undecided, and status writes that failed. The runs are
        reconciled side by side (bounded), so one whose requests hang on an unreachable API does not
        hold the others back until the next pass."""
        moment, now = now_utc(), time.monotonic()
        slots = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def one(key: Key, flowrun: dict[str, Any]) -> None:
            async with slots:
                try:
                    if ttl_expired(flowrun, moment):
                        await self.client.delete(FLOWRUNS, key[1], key[0], propagation="Background")
                    elif not FlowRunView(flowrun).finished:
                        known = self.fresh_at.get(key) or self.first_seen.setdefault(key, now)
                        verify = now - known >= VERIFY_AFTER
                        await self.reconcile(key, verify=verify)
                        # The runner token: made if missing, refreshed when due, remade if its Secret went.
                        await self.keep_runner_token(flowrun, recheck=verify)
                except (*TRANSIENT_ERRORS, LeftoverObject) as error:
                    metrics.RECONCILE_ERRORS.labels(kind="resync").inc()
                    log.warning("resync of %s/%s failed (retried next pass): %s", key[0], key[1], error)

        runs = list(self.cache.flowruns.items())
        runner_tokens(self.client).forget_all_but({key for key, _ in runs})
        outcomes = await asyncio.gather(*(one(key, flowrun) for key, flowrun in runs), return_exceptions=True)
        for (key, _), outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, Exception):  # a bug, not the API: logged in full, the others went on
                metrics.RECONCILE_ERRORS.labels(kind="resync").inc()
                log.error("resync of %s/%s failed", key[0], key[1], exc_info=outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        await self.keep_history()
        self.wake_queue()
        await self.write_positions()

    def wake_queue(self) -> None:
        """Let the Queued runs that may go now go, soon: one pass at a time, and one more pass when
        woken during one (a burst of events costs a few passes, not one each)."""
        self._pump_again = True
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._pump_queue())

    async def _pump_queue(self) -> None:
        slots = asyncio.Semaphore(RESYNC_CONCURRENCY)

        async def go(waiting: Waiting) -> None:
            async with slots:
                try:
                    await self._start_queued(waiting)
                except Exception:  # a bug, not the API: logged in full; the run goes back in line
                    metrics.RECONCILE_ERRORS.labels(kind="queue").inc()
                    log.exception("starting the queued run %s/%s failed", *waiting.key)
                    self._back_in_line(waiting.key)

        await self.queue.ready.wait()
        while self._pump_again:
            self._pump_again = False
            chosen = self.queue.next_runs()
            if chosen:
                await asyncio.gather(*(go(w) for w in chosen))

    async def _start_queued(self, waiting: Waiting) -> None:
        """Start a Queued run the queue let go (it holds its place already)."""
        key = waiting.key
        body = self.cache.flowruns.get(key)
        if body is None:
            self.queue.release(key)
            return
        try:
            async with self.lock(key):
                await self._start_and_write(body, admitted=True)
        except (*TRANSIENT_ERRORS, LeftoverObject) as error:
            self._back_in_line(key)
            metrics.RECONCILE_ERRORS.labels(kind="queue").inc()
            log.warning("a queued run %s/%s could not start (retried next pass): %s", key[0], key[1], error)

    def _back_in_line(self, key: Key) -> None:
        """A start the queue let go did not happen: the place is free again unless the run got its
        Job name meanwhile, and the run is what the cache says now (back in line if still Queued)."""
        current = self.cache.flowruns.get(key)
        if current is None or not FlowRunView(current).job_name:
            self.queue.release(key)
        if current is not None:
            self.queue.observe(current)

    async def write_positions(self) -> None:
        """Rewrite the place in line of Queued runs where it is due (``queue.position_due``): the
        front of the line first, at most ``POSITION_WRITES_PER_PASS`` a pass, so a long line (a
        restart that changed a limit's text rewrites every one) never holds the resync up."""
        budget = POSITION_WRITES_PER_PASS
        for key, (position, reason) in sorted(self.queue.positions().items(), key=lambda item: item[1][0]):
            if budget <= 0:
                return
            async with self.lock(key):  # the queue's own start of the run holds it too
                body = self.cache.flowruns.get(key)
                if body is None or key not in self.queue.waiting:
                    continue
                written = FlowRunView(body).status.get(StatusKey.QUEUE) or {}
                if written.get("heldBy") == reason and not position_due(written.get("position"), position):
                    continue
                since = written.get("since") or rfc3339(now_utc())
                status = queued_status(reason, position, since, FlowRunView(body).generation, now_utc())
                budget -= 1
                try:
                    await self._patch_status(key[1], key[0], status)
                except ApiError as error:
                    if error.not_found:
                        continue
                    metrics.RECONCILE_ERRORS.labels(kind="queue").inc()
                    log.warning("places in line not written (retried next pass): %s", error)
                    return
                except TRANSIENT_ERRORS as error:
                    metrics.RECONCILE_ERRORS.labels(kind="queue").inc()
                    log.warning("places in line not written (retried next pass): %s", error)
                    return
                # Until the watch brings it: a new dict, never the body kopf handed over (and only
                # if no newer event replaced it meanwhile, a cancel for one).
                if self.cache.flowruns.get(key) is body:
                    self.cache.flowruns[key] = {**body, "status": {**(body.get("status") or {}), **status}}

    async def keep_history(self) -> None:
        """Delete the oldest finished runs of each Flow that the cache says is over its history."""
        if self.history is None:
            return
        for flow in self.history.take_due(self.cache.flowruns):
            try:
                await self.history.prune(flow)
            except TRANSIENT_ERRORS as error:
                self.history.due.add(flow)
                metrics.RECONCILE_ERRORS.labels(kind="history").inc()
                log.warning("history of Flow %s/%s not kept (retried next pass): %s", flow[0], flow[1], error)

    async def resync_forever(self) -> None:
        """Resync every ``resync_interval`` seconds for the operator's whole life: a pass that fails
        for an unforeseen reason is logged with its traceback and counted, never ends the loop (no
        other task would take over the timeouts and retries it drives)."""
        while True:
            await asyncio.sleep(self.resync_interval)
            try:
                await self.resync()
            except Exception:
                metrics.RECONCILE_ERRORS.labels(kind="resync").inc()
                log.exception("a resync pass failed; the next one runs in %gs", self.resync_interval)

    async def reconcile_quietly(self, key: Key) -> None:
        """Reconcile from a watch event; failures are counted and retried by the next resync pass."""
        try:
            await self.reconcile(key)
        except (*TRANSIENT_ERRORS, LeftoverObject) as error:
            metrics.RECONCILE_ERRORS.labels(kind="watch").inc()
            log.warning("reconcile of %s/%s failed (retried at the next resync): %s", key[0], key[1], error)


def metrics_flow(body: dict[str, Any]) -> str:
    """The ``flow`` label of a run in the metrics: the Flow it runs, else ``_inline``."""
    return flow_of_run(body) or metrics.INLINE


def _label_flow(run: FlowRunView, flow: str | None, labels_patch: MutableMapping[str, Any] | None) -> None:
    """Label the run with the Flow it runs, unless it already is."""
    if flow and labels_patch is not None and (run.meta.get("labels") or {}).get(LABEL_FLOW) != label_value(flow):
        labels_patch[LABEL_FLOW] = label_value(flow)


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
    if not _owned_by(existing, owner_uid):
        # Left over from an earlier FlowRun of the same name that is still being garbage collected.
        raise LeftoverObject(
            f"{manifest['kind']} {meta['name']} still belongs to a deleted FlowRun of the same name; waiting"
        )
    return False


def _owned_by(obj: dict[str, Any], uid: str | None, *, kind: str | None = None, name: str | None = None) -> bool:
    """Whether an owner reference of ``obj`` matches (``uid`` None: any uid, for an owner that is gone)."""
    return any(
        (kind is None or owner.get("kind") == kind)
        and (name is None or owner.get("name") == name)
        and (uid is None or owner.get("uid") == uid)
        for owner in obj["metadata"].get("ownerReferences") or []
    )
