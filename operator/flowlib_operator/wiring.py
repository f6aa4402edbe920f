"""The kopf wiring, in one place: which handler runs for which resource and event, and kopf's
settings. Each handler only hands the body to the module that owns the kind (``flows`` validates
Flows, ``runs`` follows FlowRuns, Jobs and pods, ``admission`` checks at the door).

The operator keeps no finalizers on FlowRuns (no delete handlers, no kopf timers or daemons, which
would add one), so deleting a FlowRun never waits for the operator: owner references let the
garbage collector remove the Job and its pod. Kopf's own bookkeeping is stored in annotations,
never in ``.status``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import kopf
from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.history import KEEP_ALL, RunHistory
from flowlib_api.meta import (
    ANNOTATION_PREFIX,
    API_GROUP,
    API_VERSION,
    DIFFBASE_ANNOTATION_KEY,
    FLOWRUNS,
    FLOWS,
    FLOWSCHEDULES,
    JOBS,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    PODS,
)
from flowlib_api.resources import SpecKey
from flowlib_api.storespec import StoreSpec
from flowlib_api.views import FlowRunView
from flowlib_operator import access, metrics
from flowlib_operator.access import borrowing_problems
from flowlib_operator.admission import flow_problems, flowref_params_problems, flowrun_problems, spec_changed
from flowlib_operator.diffbase import CompactDiffBaseStorage
from flowlib_operator.events import EventRecorder
from flowlib_operator.flows import FlowValidation
from flowlib_operator.history import HistoryKeeper
from flowlib_operator.jobspec import RunnerSettings
from flowlib_operator.queue import Limits, RunQueue
from flowlib_operator.reconcile import CANCEL_GRACE
from flowlib_operator.rundefaults import flow_pod_of
from flowlib_operator.runs import LeftoverObject, RunLifecycle
from flowlib_operator.schedules import Clock, ScheduleController, SystemClock, template_run
from flowlib_operator.stores import DEFAULT_STORE_TEXT, parse_store_spec, store_problems

ADMISSION_REVIEW_BYTES = 8 * 1024 * 1024
"""The biggest AdmissionReview the webhook reads: an update carries the old object and the new one,
each up to the API server's 3 MiB request limit, plus the review's own fields."""


class WebhookServer(kopf.WebhookServer):
    """Kopf's webhook server, reading reviews up to ``ADMISSION_REVIEW_BYTES``.

    Kopf's aiohttp application keeps aiohttp's 1 MiB default body limit, so a Flow over about 1 MiB
    got an HTTP 413 and the API server said only "failed calling webhook": such a Flow (one too big
    to run, above all) must be read to be refused with a message that says why.
    """

    @staticmethod
    async def _serve(fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:
        bigger = request.clone(client_max_size=ADMISSION_REVIEW_BYTES)
        return await kopf.WebhookServer._serve(fn, bigger)


@dataclass
class OperatorConfig:
    """What the command line sets."""

    runner: RunnerSettings
    pod_start_timeout: float = 120.0
    resync_interval: float = 10.0
    cancel_grace: float = CANCEL_GRACE
    """Seconds a cancelled run's runner has to stop by itself before its Job is deleted (``reconcile``)."""
    webhook_port: int = 0
    webhook_tls_dir: str | None = None
    authorized_at_admission: bool = False
    """The webhook checks each FlowRun's author (``access``); set only where the webhook is installed."""
    default_store: StoreSpec = field(default_factory=lambda: parse_store_spec(DEFAULT_STORE_TEXT))
    """The store of runs whose ``spec.store`` does not say otherwise (``stores``)."""
    clock: Clock = field(default_factory=SystemClock)
    """The schedules' clock (``schedules``); tests only replace it (``--clock-file``)."""
    history: RunHistory = KEEP_ALL
    """How many finished runs of a Flow to keep where its ``spec.history`` does not say (``history``)."""
    limits: Limits = field(default_factory=Limits)
    """How many runs go at once per namespace and in the cluster (``queue``)."""
    namespaces: tuple[str, ...] = ()
    """The namespaces watched (``--namespace``); empty: all of them."""


@dataclass
class Operator:
    """The parts the handlers call, sharing one API client."""

    client: KubeClient
    config: OperatorConfig
    flows: FlowValidation
    runs: RunLifecycle
    schedules: ScheduleController
    history: HistoryKeeper

    @classmethod
    def build(cls, client: KubeClient, config: OperatorConfig) -> Operator:
        events = EventRecorder(client)
        history = HistoryKeeper(client, events, default=config.history)
        runs = RunLifecycle(
            client,
            config.runner,
            events,
            authorized_at_admission=config.authorized_at_admission,
            pod_start_timeout=config.pod_start_timeout,
            resync_interval=config.resync_interval,
            cancel_grace=config.cancel_grace,
            default_store=config.default_store,
            history=history,
            queue=RunQueue(limits=config.limits),
        )
        schedules = ScheduleController(client, events, clock=config.clock)
        metrics.RUNS_BY_PHASE.source = runs.known_runs
        return cls(client, config, FlowValidation(client, events), runs, schedules, history)


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
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = CompactDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key=DIFFBASE_ANNOTATION_KEY
        )
        settings.posting.enabled = False  # we post our own, meaningful Events
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10, 20]
        if op.config.webhook_port:
            tls = op.config.webhook_tls_dir
            # kopf re-reads the files when they change (cert-manager renewals). The webhook
            # configuration itself is static (deploy/overlays/webhook), so kopf does not manage it.
            settings.admission.server = WebhookServer(
                addr="0.0.0.0",
                port=op.config.webhook_port,
                certfile=f"{tls}/tls.crt" if tls else None,
                pkeyfile=f"{tls}/tls.key" if tls else None,
            )
        background.append(asyncio.create_task(op.runs.sync_queue(op.config.namespaces), name="flowlib-queue-sync"))
        background.append(asyncio.create_task(op.runs.resync_forever(), name="flowlib-resync"))
        background.append(asyncio.create_task(op.schedules.run_forever(), name="flowlib-schedules"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await op.client.close()

    @kopf.on.create(group, version, FLOWS.plural, registry=registry)
    @kopf.on.update(group, version, FLOWS.plural, registry=registry, field="spec")
    @kopf.on.resume(group, version, FLOWS.plural, registry=registry)
    async def flow_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await op.flows.validate(dict(body), patch.status)
        op.history.flow_seen(dict(body))
        if op.runs.queue.flow_seen(body["metadata"]["namespace"], body["metadata"]["name"], dict(body).get("spec")):
            op.runs.wake_queue()  # a raised or removed maxRuns lets waiting runs go

    if op.config.webhook_port:
        # kopf refuses to start with admission handlers and no admission server: only with the flag.

        @kopf.on.validate(group, version, FLOWS.plural, id="validate-flow", registry=registry)
        async def validate_flow_at_the_door(
            body: kopf.Body, userinfo: kopf.UserInfo | None = None, **kwargs: Any
        ) -> None:
            if not spec_changed(kwargs.get("old"), body):  # kopf passes the old object as `old` on updates
                return
            _refuse(await asyncio.to_thread(flow_problems, body), "Flow")
            # What the Flow's pod controls name is borrowed by every run of it: its author must be
            # allowed it too (each run's author is checked as well, when the run is created).
            pod = flow_pod_of(body.get("spec"))
            if pod:
                namespace = str(body.get("metadata", {}).get("namespace") or "")
                refused = await access.refused(
                    op.client, namespace, access.pod_borrowed(pod, "spec.pod"), dict(userinfo or {})
                )
                if refused:
                    metrics.FORBIDDEN_RUNS.inc()
                    raise kopf.AdmissionError("Flow not allowed: " + "; ".join(refused), code=403)

        @kopf.on.validate(
            group, version, FLOWRUNS.plural, id="validate-flowrun", operations=["CREATE"], registry=registry
        )
        async def validate_flowrun_at_the_door(
            body: kopf.Body, userinfo: kopf.UserInfo | None = None, **_: Any
        ) -> None:
            # Validation is CPU work of up to seconds: off the event loop, which serves every run.
            run = FlowRunView(body)
            problems = await asyncio.to_thread(flowrun_problems, body)
            _refuse(problems + store_problems(op.config.default_store, run), "FlowRun")
            # What the run borrows (service account, Secrets, ConfigMaps, claims, a retry's source and
            # what the source's store names) is checked against its author.
            # A Flow's pod controls are borrowed by the run's author too; a Flow that does not exist
            # yet is accepted (GitOps applies in any order) and checked by the operator at the start.
            flow = await op.client.get_or_none(FLOWS, run.flow_ref, run.namespace) if run.flow_ref else None
            _refuse(flowref_params_problems(body, flow), "FlowRun")  # typed params (spec.paramSchema)
            refused = await _author_problems(op.client, run, userinfo, flow)
            if refused:
                metrics.FORBIDDEN_RUNS.inc()
                raise kopf.AdmissionError("FlowRun not allowed: " + "; ".join(refused), code=403)

        @kopf.on.validate(group, version, FLOWSCHEDULES.plural, id="validate-flowschedule", registry=registry)
        async def validate_flowschedule_at_the_door(
            body: kopf.Body, userinfo: kopf.UserInfo | None = None, **kwargs: Any
        ) -> None:
            # The operator creates the schedule's runs, so the FlowRun webhook would check the operator:
            # the schedule's author is the runs' author, checked here as for a FlowRun of the template.
            if not spec_changed(kwargs.get("old"), body):
                return
            namespace = str(body.get("metadata", {}).get("namespace") or "")
            name = str(body.get("metadata", {}).get("name") or "schedule")
            shaped = template_run(name, namespace, body.get("spec") or {})
            run = FlowRunView(shaped)
            problems = await asyncio.to_thread(flowrun_problems, shaped)
            _refuse(
                [f"spec.template.{p}" for p in problems + store_problems(op.config.default_store, run)], "FlowSchedule"
            )
            flow = await op.client.get_or_none(FLOWS, run.flow_ref, namespace) if run.flow_ref else None
            refused = await _author_problems(op.client, run, userinfo, flow)
            if refused:
                metrics.FORBIDDEN_RUNS.inc()
                raise kopf.AdmissionError(
                    "FlowSchedule not allowed: " + "; ".join(f"spec.template.{p}" for p in refused), code=403
                )

        del validate_flow_at_the_door, validate_flowrun_at_the_door, validate_flowschedule_at_the_door

    @kopf.on.event(group, version, FLOWSCHEDULES.plural, registry=registry)
    async def flowschedule_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        # State is in the API (status and the schedule's runs); this only wakes the scheduler.
        op.schedules.observe(dict(body), type)

    @kopf.on.event(group, version, FLOWRUNS.plural, registry=registry)
    async def flowrun_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        flowrun = dict(body)
        op.runs.observe(flowrun, type)
        op.schedules.run_changed(flowrun)
        if type != "DELETED":
            await op.runs.keep_runner_token(flowrun)

    @kopf.on.create(group, version, FLOWRUNS.plural, registry=registry)
    @kopf.on.resume(group, version, FLOWRUNS.plural, registry=registry)
    async def flowrun_created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        try:
            await op.runs.start(dict(body), patch.status, patch.meta.labels)
        except LeftoverObject as waiting:
            raise kopf.TemporaryError(str(waiting), delay=waiting.delay) from waiting
        except ApiError as error:
            metrics.RECONCILE_ERRORS.labels(kind="start").inc()
            raise kopf.TemporaryError(f"could not start the run: {error}", delay=2) from error

    @kopf.on.field(group, version, FLOWRUNS.plural, field=f"spec.{SpecKey.CANCEL}", registry=registry)
    async def flowrun_cancel(body: kopf.Body, new: Any, **_: Any) -> None:
        if new:
            await op.runs.cancel(dict(body))

    @kopf.on.field(group, version, FLOWRUNS.plural, field=f"spec.{SpecKey.APPROVALS}", registry=registry)
    async def flowrun_approved(body: kopf.Body, **_: Any) -> None:
        await op.runs.decided(dict(body))

    @kopf.on.event(JOBS.group, JOBS.version, JOBS.plural, labels=managed, registry=registry)
    async def job_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = op.runs.cache.put_job(dict(body), type == "DELETED")
        if key is not None:
            await op.runs.reconcile_quietly(key)

    @kopf.on.event(PODS.group, PODS.version, PODS.plural, labels=managed, registry=registry)
    async def pod_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = op.runs.cache.put_pod(dict(body), type == "DELETED")
        if key is not None:
            await op.runs.reconcile_quietly(key)

    del login, configure, stop, flow_changed, flowrun_event, flowrun_created, flowrun_cancel, flowrun_approved
    del job_event, pod_event, flowschedule_event


async def _author_problems(
    client: KubeClient, run: FlowRunView, userinfo: kopf.UserInfo | None, flow: dict[str, Any] | None
) -> list[str]:
    """Why the author may not borrow what ``run`` names: its own fields, its retry source's store
    and its Flow's pod controls (``flow``: the Flow it names, when it exists)."""
    source = await client.get_or_none(FLOWRUNS, run.retry_of, run.namespace) if run.retry_of else None
    pod = flow_pod_of((flow or {}).get("spec"))
    return await borrowing_problems(
        client, run, dict(userinfo or {}), source=source, flow_pod=(str(run.flow_ref), pod) if pod else None
    )


def _refuse(problems: list[str], kind: str) -> None:
    if problems:
        metrics.INVALID_DEFINITIONS.labels(kind=kind).inc()
        raise kopf.AdmissionError(f"invalid {kind}: " + "; ".join(problems), code=422)
