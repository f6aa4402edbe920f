"""The kopf handlers: Flows are validated, FlowRuns become runner Jobs, Jobs and pods are watched.

The operator never runs user code: it validates definitions with the shared loader (which only
parses and compiles) and leaves execution to runner pods. It keeps no finalizers on FlowRuns (no
delete handlers, no kopf timers or daemons, which would add one), so deleting a FlowRun never
waits for the operator: owner references let the garbage collector remove the Job and its pod.
Kopf's own bookkeeping is stored in annotations, never in ``.status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from flowlib_runner.kube.client import (
    CONFIGMAPS,
    FLOWRUNS,
    JOBS,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    ApiError,
    KubeClient,
)
from flowlib_runner.kube.events import post_event
from flowlib_runner.resources import API_GROUP, API_VERSION, parse_time
from flowlib_runner.status import shorten

from flowlib_operator import metrics
from flowlib_operator.admission import flow_problems, flowrun_problems, spec_changed
from flowlib_operator.cache import ClusterCache, Key
from flowlib_operator.jobspec import RunnerSettings, runner_job, snapshot_configmap
from flowlib_operator.naming import LABEL_MANAGED_BY, MANAGED_BY, job_name
from flowlib_operator.reconcile import (
    FINISHED,
    MAX_MESSAGE,
    Decision,
    decide,
    final_status,
    now_utc,
    rfc3339,
    succeeded_condition,
    ttl_expired,
)
from flowlib_operator.resolve import fetch_library, resolve_run, validate
from flowlib_operator.runner_rbac import runner_identity

log = logging.getLogger("flowlib.operator")


@dataclass
class OperatorConfig:
    """What the command line sets."""

    runner: RunnerSettings
    pod_start_timeout: float = 120.0
    resync_interval: float = 10.0
    webhook_port: int = 0
    webhook_tls_dir: str | None = None


@dataclass
class Operator:
    """Shared state of the handlers: the API client, the watch cache, and in-flight bookkeeping."""

    client: KubeClient
    config: OperatorConfig
    cache: ClusterCache = field(default_factory=ClusterCache)
    identities: set[str] = field(default_factory=set)
    finalized: set[Key] = field(default_factory=set)
    phases: dict[Key, str] = field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)

    # -- helpers --------------------------------------------------------------------------------

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    async def event(self, body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        involved = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": body.get("kind", "FlowRun"), **body}
        try:
            await post_event(self.client, involved, event_type, reason, message, component="operator")
        except ApiError as error:
            # An Event is a courtesy copy of what status already says: log the loss, do not retry forever.
            log.warning("could not post %s event %s on %s: %s", event_type, reason, body["metadata"]["name"], error)

    async def ensure_runner_identity(self, namespace: str) -> None:
        """Create the runner's ServiceAccount, Role and RoleBinding in ``namespace`` if missing."""
        if namespace in self.identities:
            return
        refs = {"ServiceAccount": SERVICEACCOUNTS, "Role": ROLES, "RoleBinding": ROLEBINDINGS}
        for manifest in runner_identity(namespace):
            try:
                await self.client.create(refs[manifest["kind"]], manifest, namespace)
            except ApiError as error:
                if not error.already_exists:
                    raise
        self.identities.add(namespace)

    # -- Flows ----------------------------------------------------------------------------------

    async def validate_flow(self, body: dict[str, Any], patch: kopf.Patch) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        library, missing = await fetch_library(self.client, meta["namespace"], spec, skip=meta["name"])
        result = validate(meta["name"], spec, library, missing)
        ready = not result.problems
        message = "the definition is valid" if ready else "; ".join(result.problems)
        previous = next(
            (c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None
        )
        moment = now_utc()
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "Valid" if ready else "InvalidFlow",
            "message": shorten(message, MAX_MESSAGE),
            "observedGeneration": meta.get("generation"),
            "lastTransitionTime": rfc3339(moment),
        }
        if previous is not None and previous.get("status") == condition["status"]:
            condition["lastTransitionTime"] = previous.get("lastTransitionTime", condition["lastTransitionTime"])
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["conditions"] = [condition]
        patch.status["nodeCount"] = result.node_count
        patch.status["problems"] = result.problems or None
        if not ready:
            metrics.INVALID_DEFINITIONS.labels(kind="Flow").inc()
            await self.event({"kind": "Flow", **body}, "Warning", "InvalidFlow", message)

    # -- FlowRuns -------------------------------------------------------------------------------

    async def start_run(self, body: dict[str, Any], patch: kopf.Patch) -> None:
        """Create (or adopt) the runner Job of a FlowRun. Idempotent: safe after any restart."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        namespace, name = meta["namespace"], meta["name"]
        key = (namespace, name)
        if status.get("phase") in FINISHED:
            return
        self.first_seen.setdefault(key, time.monotonic())
        moment = now_utc()
        if spec.get("cancel"):
            message = "cancelled before it started (spec.cancel)"
            self._final(patch, body, "Cancelled", "Cancelled", message)
            await self.event(body, "Normal", "Cancelled", message)
            return
        if status.get("jobName") and await self.client.get_or_none(JOBS, status["jobName"], namespace):
            return  # created before a restart; the Job watch follows it from here
        resolution = await resolve_run(self.client, namespace, spec)
        if resolution.snapshot is None:
            message = "invalid flow: " + "; ".join(resolution.problems)
            metrics.INVALID_DEFINITIONS.labels(kind="FlowRun").inc()
            self._final(patch, body, "Failed", "InvalidFlow", message)
            patch.status["flow"] = resolution.flow_name
            await self.event(body, "Warning", "InvalidFlow", message)
            return
        if not spec.get("serviceAccountName"):
            await self.ensure_runner_identity(namespace)
        job = runner_job(body, resolution.flow_name, self.config.runner)
        if status.get("jobName") != job["metadata"]["name"]:
            # Pending is written before the Job exists, so the runner's own updates (which can only
            # start once the Job does) are never overwritten by it.
            pending = {
                "phase": status.get("phase") or "Pending",
                "flow": resolution.flow_name,
                "jobName": job["metadata"]["name"],
                "observedGeneration": meta.get("generation"),
                "conditions": [
                    succeeded_condition(
                        "Unknown",
                        "JobCreated",
                        f"creating Job {job['metadata']['name']}",
                        meta.get("generation"),
                        moment,
                    )
                ],
            }
            status_written: Any = self.client.patch(
                FLOWRUNS, name, {"status": pending}, namespace, subresource="status"
            )
        else:
            status_written = asyncio.sleep(0)
        configmap = snapshot_configmap(body, resolution.flow_name, resolution.snapshot)
        # Both must exist before the Job (the pod mounts the snapshot), neither depends on the other.
        await asyncio.gather(status_written, _create_or_adopt(self.client, CONFIGMAPS, configmap, meta["uid"]))
        created = await _create_or_adopt(self.client, JOBS, job, meta["uid"])
        if created:
            metrics.RUNS_STARTED.inc()
            metrics.JOB_CREATION_LATENCY.observe(time.monotonic() - self.first_seen.get(key, time.monotonic()))
            await self.event(
                body,
                "Normal",
                "Created",
                f"created runner Job {job['metadata']['name']} for flow {resolution.flow_name}",
            )

    def _final(self, patch: kopf.Patch, body: dict[str, Any], phase: str, reason: str, message: str) -> None:
        patch.status.update(final_status(body, phase, reason, message, now_utc()))
        patch.status["observedGeneration"] = body["metadata"].get("generation")

    async def cancel_run(self, body: dict[str, Any]) -> None:
        """``spec.cancel`` became true: stop the runner by deleting the Job (its pod gets SIGTERM)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.cache.put_flowrun(body, deleted=False)
        await self.reconcile(key)

    # -- following runs -------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        """Bring the FlowRun's status in line with its Job and pods (see ``reconcile.decide``)."""
        async with self.lock(key):
            flowrun = self.cache.flowruns.get(key)
            if flowrun is None or key in self.finalized:
                return
            decision = self._decide(key, flowrun)
            if (decision.status or {}).get("phase") in FINISHED:
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
            start_timeout=self.config.pod_start_timeout,
        )

    async def _apply(self, key: Key, flowrun: dict[str, Any], decision: Decision) -> None:
        namespace, name = key
        if decision.delete_job:
            job = (flowrun.get("status") or {}).get("jobName") or job_name(name)
            await self.client.delete(JOBS, job, namespace, propagation="Background")
        if decision.status:
            if decision.status.get("phase") in FINISHED:
                self.finalized.add(key)
            try:
                await self.client.patch(FLOWRUNS, name, {"status": decision.status}, namespace, subresource="status")
            except ApiError as error:
                self.finalized.discard(key)
                if error.not_found:
                    return
                raise
        if decision.event:
            if decision.event[1] == "PodCreationFailed":
                # Perhaps the runner's identity was deleted: let the next run in this namespace recreate it.
                self.identities.discard(namespace)
            await self.event(flowrun, *decision.event)

    def observe_flowrun(self, body: dict[str, Any], event_type: str | None) -> Key:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        deleted = event_type == "DELETED"
        self.cache.put_flowrun(body, deleted)
        phase = (body.get("status") or {}).get("phase")
        if deleted:
            for table in (self.phases, self.locks, self.first_seen):
                table.pop(key, None)
            self.finalized.discard(key)
            return key
        self.first_seen.setdefault(key, time.monotonic())
        previous = self.phases.get(key)
        if phase != previous:
            self.phases[key] = phase or ""
            if phase in FINISHED:
                self.finalized.discard(key)
                if previous is not None:  # a transition we watched, not a restart's replay
                    metrics.RUNS_FINISHED.labels(phase=phase).inc()
                    created = parse_time(body["metadata"].get("creationTimestamp"))
                    finished = parse_time((body.get("status") or {}).get("completionTime"))
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
                elif (flowrun.get("status") or {}).get("phase") not in FINISHED:
                    await self.reconcile(key)
            except (TimeoutError, ApiError, OSError) as error:
                metrics.RECONCILE_ERRORS.labels(kind="resync").inc()
                log.warning("resync of %s/%s failed (retried next pass): %s", key[0], key[1], error)

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_interval)
            await self.resync()


async def _create_or_adopt(client: KubeClient, ref: Any, manifest: dict[str, Any], owner_uid: str) -> bool:
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
        raise kopf.TemporaryError(
            f"{manifest['kind']} {meta['name']} still belongs to a deleted FlowRun of the same name; waiting",
            delay=5,
        )
    return False


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    """Install every handler into ``registry``, bound to ``op``."""
    group, version = API_GROUP, API_VERSION
    managed = {LABEL_MANAGED_BY: MANAGED_BY}
    background: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same sources as our own client: the kubeconfig, or the pod's service account.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=group)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=group, key="last-handled-configuration"
        )
        settings.posting.enabled = False  # we post our own, meaningful Events
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10, 20]
        if op.config.webhook_port:
            tls = op.config.webhook_tls_dir
            # kopf re-reads the files when they change (cert-manager renewals). The webhook
            # configuration itself is static (deploy/overlays/webhook), so kopf does not manage it.
            settings.admission.server = kopf.WebhookServer(
                addr="0.0.0.0",
                port=op.config.webhook_port,
                certfile=f"{tls}/tls.crt" if tls else None,
                pkeyfile=f"{tls}/tls.key" if tls else None,
            )
        background.append(asyncio.create_task(op.resync_forever(), name="flowlib-resync"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await op.client.close()

    @kopf.on.create(group, version, "flows", registry=registry)
    @kopf.on.update(group, version, "flows", registry=registry, field="spec")
    @kopf.on.resume(group, version, "flows", registry=registry)
    async def flow_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await op.validate_flow(dict(body), patch)

    if op.config.webhook_port:
        # kopf refuses to start with admission handlers and no admission server: only with the flag.

        @kopf.on.validate(group, version, "flows", id="validate-flow", registry=registry)
        def validate_flow_at_the_door(body: kopf.Body, **kwargs: Any) -> None:
            if spec_changed(kwargs.get("old"), body):  # kopf passes the old object as `old` on updates
                _refuse(flow_problems(body), "Flow")

        @kopf.on.validate(group, version, "flowruns", id="validate-flowrun", operations=["CREATE"], registry=registry)
        def validate_flowrun_at_the_door(body: kopf.Body, **_: Any) -> None:
            _refuse(flowrun_problems(body), "FlowRun")

        del validate_flow_at_the_door, validate_flowrun_at_the_door

    @kopf.on.event(group, version, "flowruns", registry=registry)
    async def flowrun_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        op.observe_flowrun(dict(body), type)

    @kopf.on.create(group, version, "flowruns", registry=registry)
    @kopf.on.resume(group, version, "flowruns", registry=registry)
    async def flowrun_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        try:
            await op.start_run(dict(body), patch)
        except ApiError as error:
            metrics.RECONCILE_ERRORS.labels(kind="start").inc()
            raise kopf.TemporaryError(f"could not start the run: {error}", delay=2) from error

    @kopf.on.field(group, version, "flowruns", field="spec.cancel", registry=registry)
    async def flowrun_cancel(body: kopf.Body, new: Any, **_: Any) -> None:
        if new:
            await op.cancel_run(dict(body))

    @kopf.on.event("batch", "v1", "jobs", labels=managed, registry=registry)
    async def job_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = op.cache.put_job(dict(body), type == "DELETED")
        if key is not None:
            await _reconcile_quietly(op, key)

    @kopf.on.event("", "v1", "pods", labels=managed, registry=registry)
    async def pod_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = op.cache.put_pod(dict(body), type == "DELETED")
        if key is not None:
            await _reconcile_quietly(op, key)

    del login, configure, stop, flow_changed, flowrun_event, flowrun_created, flowrun_cancel, job_event, pod_event


def _refuse(problems: list[str], kind: str) -> None:
    if problems:
        metrics.INVALID_DEFINITIONS.labels(kind=kind).inc()
        raise kopf.AdmissionError(f"invalid {kind}: " + "; ".join(problems), code=422)


async def _reconcile_quietly(op: Operator, key: Key) -> None:
    """Reconcile from a watch event; failures are counted and retried by the next resync pass."""
    try:
        await op.reconcile(key)
    except (TimeoutError, ApiError, OSError) as error:
        metrics.RECONCILE_ERRORS.labels(kind="watch").inc()
        log.warning("reconcile of %s/%s failed (retried at the next resync): %s", key[0], key[1], error)
