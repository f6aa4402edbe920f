"""``flowlib-runner``: run one FlowRun inside its Job's pod.

Exit codes: 0 when the run reached a final state and it was recorded (Succeeded, Failed or
Cancelled alike: a failed flow is not a reason for the Job to start the pod again); 143 when the pod
was stopped from outside before the run ended (the Job may retry it); 1 when the runner itself
could not work (no FlowRun, unreadable snapshot), so the Job's own failure handling applies.

Cancellation: the runner reads its FlowRun every few seconds while the flow runs
(``incluster.cancelwatch``); once ``spec.cancel`` is set it stops the flow through the run's cancel
token, reports Cancelled, archives its log and exits 0, so the pod ends by itself and is kept with
its log (and the Job completes: a cancelled run is not retried). SIGTERM on a cancelled run (the
operator deleted the Job of a runner that did not stop in time) ends it the same way.

Secrets: the values of the FlowRun's ``spec.env`` entries that come from Secrets are masked
(``***``) in the status, the Events, the run log and whatever else the process writes to stdout
and stderr (``execution.masking``). Templates read the variables ``spec.env`` declares, and only
those, as ``env.NAME``.
"""

from __future__ import annotations

from flowlib_runner.incluster.startup import collector_paused, seconds_since_process_start

with collector_paused():  # the imports make the objects the process keeps (see collector_paused)
    import asyncio
    import contextlib
    import logging
    import os
    import signal
    import sys
    from pathlib import Path
    from typing import Any, Literal

    from flowlib import CancelToken
    from flowlib_api.meta import FLOWRUNS, GROUP_VERSION, KIND_FLOWRUN
    from flowlib_api.runnerpod import (
        ENV_DEFINITION,
        ENV_FLOWRUN,
        ENV_LOG_FORMAT,
        ENV_NAMESPACE,
        ENV_POD_NAME,
        EXIT_BROKEN,
        EXIT_DONE,
        EXIT_INTERRUPTED,
        SNAPSHOT_PATH,
        Snapshot,
    )
    from flowlib_api.runstatus import RunStatus
    from flowlib_api.storespec import S3_SECRET_KEYS, StoreLocation
    from flowlib_api.views import FlowRunView
    from flowlib_runner import __version__
    from flowlib_runner.definition.loader import load_object
    from flowlib_runner.definition.templates import declared_environment
    from flowlib_runner.execution.approvals import Approvals
    from flowlib_runner.execution.checkpoints import Checkpointer
    from flowlib_runner.execution.execute import execute_async
    from flowlib_runner.execution.logarchive import LogArchive
    from flowlib_runner.execution.logs import RunLogger, stream_sink
    from flowlib_runner.execution.masking import Masker, masked_streams, secret_env_names
    from flowlib_runner.incluster.cancelwatch import CANCEL_REASON, watch_cancel
    from flowlib_runner.incluster.checkpoints import StoreSetupError, set_up, store_location
    from flowlib_runner.incluster.logsave import save_run_log
    from flowlib_runner.incluster.reporter import FlowRunStatusReporter
    from flowlib_runner.kube import ClusterConfig, KubeClient, load_config
    from flowlib_runner.kube.client import ApiError
    from flowlib_runner.kube.events import post_event

log = logging.getLogger("flowlib.runner")


class RunnerError(RuntimeError):
    """The runner cannot run at all (as opposed to a flow that fails, which is a normal outcome)."""


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RunnerError(f"environment variable {name} is not set; the operator sets it on runner pods")
    return value


def read_snapshot(path: Path) -> Snapshot:
    """The frozen definition the operator mounted."""
    try:
        return Snapshot.from_bytes(path.read_bytes())
    except (OSError, ValueError) as error:
        raise RunnerError(f"cannot read the flow snapshot {path}: {error}") from error


async def run(log_format: Literal["text", "json"] = "text") -> int:
    name = _env(ENV_FLOWRUN)
    pod_name = os.environ.get(ENV_POD_NAME)
    config = load_config()
    namespace = os.environ.get(ENV_NAMESPACE) or config.default_namespace
    snapshot_path = Path(os.environ.get(ENV_DEFINITION, SNAPSHOT_PATH))
    try:
        location = store_location()
    except StoreSetupError as error:
        raise RunnerError(str(error)) from error
    async with KubeClient(config, user_agent=f"flowlib-runner/{__version__}") as client:
        flowrun = await client.get_or_none(FLOWRUNS, name, namespace)
        if flowrun is None:
            raise RunnerError(f"FlowRun {namespace}/{name} does not exist (deleted before the runner started?)")
        flowrun.setdefault("apiVersion", GROUP_VERSION)
        flowrun.setdefault("kind", KIND_FLOWRUN)
        view = FlowRunView(flowrun)
        if view.finished:
            print(f"FlowRun {name} already ended {view.phase}; nothing to do", flush=True)
            return EXIT_DONE
        secret_names = secret_env_names(view.env)
        if location is not None and location.secret_name:
            secret_names = [*secret_names, *S3_SECRET_KEYS]  # the store's credentials (jobspec)
        masker = Masker.from_environment(secret_names, os.environ)
        # The log masks its lines itself: it writes to stdout as it is, not to the masked stream.
        # With a store, the log is also kept (bounded) and saved there when the attempt ends (logsave).
        archive = LogArchive(stream_sink(sys.stdout)) if location is not None else None
        log = RunLogger(archive or stream_sink(sys.stdout), log_format, masker=masker)
        with masked_streams(masker), declared_environment(_declared_names(view)):
            try:
                return await _run_flow(
                    client,
                    flowrun,
                    snapshot_path,
                    pod_name=pod_name,
                    log=log,
                    masker=masker,
                    store=location,
                    config=config,
                )
            finally:
                if archive is not None and location is not None:
                    log.flush()
                    await save_run_log(archive, location, client=client, flowrun=flowrun, attempt=view.attempt + 1)


async def _run_flow(
    client: KubeClient,
    flowrun: dict[str, Any],
    snapshot_path: Path,
    *,
    pod_name: str | None,
    log: RunLogger,
    masker: Masker,
    store: StoreLocation | None,
    config: ClusterConfig,
) -> int:
    """Run the snapshot's flow for ``flowrun``; its status and Events are masked with ``masker``.
    With a ``store`` it checkpoints there, and starts from its own or its retry source's checkpoint
    (``incluster.checkpoints``)."""
    view = FlowRunView(flowrun)
    snapshot = read_snapshot(snapshot_path)
    result = load_object(snapshot.manifest(), library=snapshot.library)
    attempt = view.attempt + 1
    reporter = FlowRunStatusReporter(
        client,
        flowrun,
        pod_name=pod_name,
        attempt=attempt,
        flow_name=snapshot.name,
        on_error=_report_error,
        masker=masker,
    )
    if result.definition is None:
        problems = "; ".join(str(p) for p in result.problems)
        final = RunStatus.model_validate({"phase": "Failed", "message": f"invalid flow: {problems}"})
        await reporter.publish(final, final=True)
        return EXIT_DONE
    params, input, outputs = view.params, view.input, view.outputs
    checkpointer: Checkpointer | None = None
    started = f"runner pod {pod_name} started (attempt {attempt})"
    resumed = None
    if store is not None:
        # The attempt is recorded before anything runs: the next pod of the run trusts its store only
        # when an earlier pod got this far (a sync node may hold the event loop, and so every later
        # status patch, until the pod is killed).
        try:
            await reporter.publish(RunStatus.model_validate({"phase": "Running"}), final=False)
        except (ApiError, OSError, TimeoutError) as error:
            _report_error(reporter, error)
        try:
            durable = await set_up(
                store,
                client=client,
                config=config,
                flowrun=flowrun,
                definition=result.definition,
                attempt=attempt,
                note=lambda text: log.line("WARNING", (), f"checkpoints: {text}"),
            )
        except StoreSetupError as error:
            final = RunStatus.model_validate({"phase": "Failed", "message": str(error)})
            await reporter.publish(final, final=True)
            await _event(client, flowrun, "Warning", "Failed", str(error), masker=masker)
            return EXIT_DONE
        params, input, outputs = durable.params, durable.input, durable.outputs
        checkpointer, resumed = durable.prepared.checkpointer, durable.prepared.resumed
        if resumed is not None:
            started += f", resuming at {resumed.resumed_at}"
    token = CancelToken()
    if view.cancel_requested:
        token.cancel("cancelled before the runner started (spec.cancel)")
    _install_signal_handlers(client, reporter.name, reporter.namespace, token, reporter, checkpointer=checkpointer)
    watcher = asyncio.create_task(watch_cancel(client, reporter.name, reporter.namespace, view.uid, token))
    ready = seconds_since_process_start()
    if ready is not None:
        started += f"; {ready:.2f}s from process start to the first node"
    try:
        await _event(client, flowrun, "Normal", "Started", started, masker=masker)
        approvals = Approvals(
            view.approvals,
            can_suspend=checkpointer is not None,
            hint="the run keeps no store (spec.store.enabled: false), so it cannot stop and resume; add its "
            "decision to spec.approvals before it reaches the node, or give it a store",
        )
        final = await execute_async(
            result.definition,
            input=input,
            params=params,
            outputs=outputs,
            reporters=[reporter],
            log=log,
            cancel=token,
            checkpointer=checkpointer,
            resumed=resumed,
            approvals=approvals,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if reporter.interrupted is not None:
        return EXIT_INTERRUPTED
    if final.phase == "Suspended" and not reporter.gone:
        # The pod ends here; the operator starts the next one when a decision arrives or the timeout ends.
        await _event(client, flowrun, "Normal", "Suspended", final.message or "waiting for approval", masker=masker)
        return EXIT_DONE
    if not reporter.gone:
        event_type = "Normal" if final.phase == "Succeeded" else "Warning"
        message = final.message or f"run {final.phase.lower()}"
        await _event(client, flowrun, event_type, final.phase, message, masker=masker)
    return EXIT_DONE


def _declared_names(view: FlowRunView) -> list[str]:
    """The names the FlowRun's ``spec.env`` declares: all ``env.NAME`` templates may read."""
    return [entry["name"] for entry in view.env if isinstance(entry.get("name"), str)]


def _install_signal_handlers(
    client: KubeClient,
    name: str,
    namespace: str,
    token: CancelToken,
    reporter: FlowRunStatusReporter,
    *,
    checkpointer: Checkpointer | None,
) -> None:
    """SIGTERM/SIGINT: a cancelled or deleted FlowRun ends Cancelled; any other stop is an
    interruption, which leaves the checkpoint open for the Job's next pod to resume."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def decide(signame: str) -> None:
        reason = f"runner pod stopped ({signame}) before the run finished"
        try:
            current = await asyncio.wait_for(client.get_or_none(FLOWRUNS, name, namespace), timeout=5)
        except (ApiError, OSError, TimeoutError) as error:
            current = {"spec": {}}
            reason += f" (could not check spec.cancel: {error})"
        if current is None:
            reporter.gone = True
            if checkpointer is not None:
                checkpointer.interrupted = True  # its store goes with it: no end to record
            token.cancel("the FlowRun was deleted")
        elif FlowRunView(current).cancel_requested:
            token.cancel(CANCEL_REASON)
        else:
            reporter.interrupted = reason + "; the Job may start it again"
            if checkpointer is not None:
                checkpointer.interrupted = True
            token.cancel(reason)

    def on_signal(sig: signal.Signals) -> None:
        if token.cancelled:
            return
        task = loop.create_task(decide(sig.name))
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


async def _event(
    client: KubeClient, flowrun: dict[str, Any], event_type: str, reason: str, message: str, *, masker: Masker
) -> None:
    """Post an Event about the FlowRun, its message masked; one that cannot be posted is logged, not fatal."""
    try:
        await post_event(client, flowrun, event_type, reason, masker.mask(message), component="runner")
    except (ApiError, OSError, TimeoutError) as error:
        log.warning("could not post the %s event: %s", reason, error)


def _report_error(reporter: object, error: BaseException) -> None:
    log.warning("status update failed (retried at the next tick): %s", error)


def main() -> None:
    """Console entry point of runner pods."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log_format: Literal["text", "json"] = "json" if os.environ.get(ENV_LOG_FORMAT) == "json" else "text"
    try:
        code = asyncio.run(run(log_format))
    except RunnerError as error:
        log.error("%s", error)
        code = EXIT_BROKEN
    except ApiError as error:
        log.error("the Kubernetes API refused a request: %s", error)
        code = EXIT_BROKEN
    sys.exit(code)
