"""Execute a flow definition: the seed plan's `Execute`, shared by `flowctl run` and the pod runner.

Why a separate module: the same steps (build the graph, attach the status tracker, logs and
reporters, run, map the ending to a phase, publish the final status) serve the local CLI and the
in-cluster runner; only the reporters differ. Cancellation goes through a flowlib `CancelToken`:
flowlib then cancels the run's task, so in-flight items are cancelled and nothing new starts,
and the status ends `Cancelled`. `execute()` wires SIGINT/SIGTERM to that token.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from flowlib import CancelToken
from flowlib.events import Observer
from flowlib_api.flowspec import FlowSpec
from flowlib_api.runstatus import RunPhase, RunStatus
from flowlib_api.times import rfc3339_millis
from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.factories.durable import JOURNAL
from flowlib_runner.definition.factories.pause import APPROVALS, SuspendRun
from flowlib_runner.definition.factories.threads import UserCodeExit as ThreadUserCodeExit
from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.approvals import Approvals
from flowlib_runner.execution.checkpoints import Checkpoint, Checkpointer
from flowlib_runner.execution.logs import RunLogger
from flowlib_runner.execution.outputs import encode_outputs, keep_outputs
from flowlib_runner.execution.reporting import Reporter, StatusTracker, describe_error, select_output
from flowlib_runner.execution.reporting.dispatch import Dispatch

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)

USER_CODE_EXIT = "UserCodeExit"
"""The run's reason when user code raised SystemExit or KeyboardInterrupt."""


class ReportingFailed(RuntimeError):
    """The run ended but one or more reporters could not publish the final status."""

    def __init__(self, status: RunStatus, errors: list[tuple[Reporter, BaseException]]) -> None:
        names = "; ".join(f"{type(r).__name__}: {describe_error(e)}" for r, e in errors)
        super().__init__(f"the run ended {status.phase} but its final status was not published: {names}")
        self.status = status
        self.errors = errors


async def execute_async(
    definition: FlowDefinition,
    *,
    input: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    reporters: Sequence[Reporter] = (),
    log: RunLogger | None = None,
    observers: Sequence[Observer] = (),
    outputs: Sequence[str] | None = None,
    cancel: CancelToken | None = None,
    tracker: StatusTracker | None = None,
    checkpointer: Checkpointer | None = None,
    resumed: Checkpoint | None = None,
    approvals: Approvals | None = None,
) -> RunStatus:
    """Run `definition` once and return its final status.

    `input` is the initial shared store: its top level is copied, nested values are shared (not
    deep-copied: a 100,000-item input would cost more to copy than to run). `params` override the
    flow's own.
    `outputs` names the shared keys (dotted paths allowed) published in `status.output`; None
    publishes all of them. A cancelled `cancel` token ends the run `Cancelled`. If the task running
    this is itself cancelled, the final status (`Cancelled`) is still published, then the
    cancellation propagates. Raises `ReportingFailed` when a reporter loses the final status.

    `checkpointer` journals the run into its store (see `execution.checkpoints`); with `resumed`
    (a checkpoint read back) the run starts from it: its shared store instead of `input`, its
    position, its finished items, and its node states in the status.

    ``approvals`` is where approval nodes get their decisions (``execution.approvals``); by default
    none are given, and a run that reaches an approval node stops there (phase ``Suspended``) when
    it has a ``checkpointer`` to resume from, else the node fails saying how to decide.
    """
    tracker = tracker or StatusTracker(kinds=node_types(definition))
    token = cancel or CancelToken()
    shared: dict[str, Any] = dict(input or {})
    if resumed is not None:
        shared = dict(resumed.shared)
        if resumed.meta.get("nodes"):
            tracker.restore_nodes(resumed.meta["nodes"])
        tracker.resumed_from = f"{resumed.resumed_at} (checkpoint of attempt {resumed.meta.get('attempt', '?')})"
    desk = approvals or Approvals(can_suspend=checkpointer is not None)
    if resumed is not None:
        desk.resume(resumed.meta)
    if log is not None and desk.tell is None:
        desk.tell = lambda node, text: log.line("INFO", tuple(node.split("/")), text)
    if checkpointer is not None:
        tracker.items_reused = lambda: checkpointer.items_reused
        if checkpointer.nodes is None:
            checkpointer.nodes = tracker.export_nodes
        checkpointer.extra_meta = desk.checkpoint_meta
    tracker.start()
    started: list[Reporter] = []
    phase: RunPhase = "Failed"
    message: str | None = None
    reason: str | None = None
    interrupted: BaseException | None = None
    try:
        for reporter in reporters:
            await reporter.start(tracker)
            started.append(reporter)
        if log is not None and resumed is not None:
            log.line("INFO", (), f"resumed at {tracker.resumed_from}; {resumed.items_count} finished item(s) kept")
        with _captured(log), _journaled(checkpointer, shared), _desk(desk):
            phase, message, reason = await _run(
                definition, params, shared, Dispatch([tracker, *observers, *_as_list(log)]), token
            )
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as error:
        phase, message, interrupted = "Cancelled", f"cancelled: {describe_error(error)}", error
    if checkpointer is not None:
        # The last checkpoint is written while the outputs are chosen and the status is finished;
        # the kept outputs follow it.
        checkpointer.end(None if checkpointer.interrupted else phase, more=True)
    if phase == "Suspended":
        tracker.suspended = desk.status()
        if log is not None and desk.suspended is not None:
            log.line("INFO", (), f"suspended: {message}")
    output = select_output(shared, outputs)
    output_json = encode_outputs(output) if checkpointer is not None and output else None
    kept = keep_outputs(checkpointer, tracker, output, phase=phase, message=message, encoded=output_json)
    if checkpointer is not None:
        checkpointer.no_more_writes()
    tracker.finish(phase, message=message, output=output, reason=reason, output_json=output_json)
    if checkpointer is not None:
        await checkpointer.written()
        if checkpointer.disabled is not None and log is not None:
            log.line("WARNING", (), f"checkpoints: {checkpointer.disabled}")
    if kept is not None:
        kept.settle(tracker)
    final = tracker.snapshot()
    errors = await _finish_reporters(started, final, log)
    if interrupted is not None:
        raise interrupted
    if errors:
        raise ReportingFailed(final, errors)
    return final


def node_types(definition: FlowDefinition) -> dict[tuple[str, ...], str]:
    """Node path -> the `type` written in YAML, sub-flows included, for the status's `kind`."""
    found: dict[tuple[str, ...], str] = {}

    def walk(spec: FlowSpec, prefix: tuple[str, ...], seen: frozenset[str]) -> None:
        for name, node in spec.nodes.items():
            found[(*prefix, name)] = node.type
            sub = definition.subflows.get(node.flow) if node.flow else None
            if sub is not None and node.flow not in seen:
                walk(sub, (*prefix, name), seen | {node.flow or ""})

    walk(definition.spec, (), frozenset({definition.name}))
    return found


async def _run(
    definition: FlowDefinition,
    params: Mapping[str, Any] | None,
    shared: dict[str, Any],
    observer: Observer,
    token: CancelToken,
) -> tuple[RunPhase, str | None, str | None]:
    """Build and run the flow; the phase, message and reason it ended with (outer cancellation
    propagates).

    ``SystemExit`` and ``KeyboardInterrupt`` reaching here come from user code (signals become a
    cancel token's cancellation, never these): they fail the run with reason ``UserCodeExit``
    instead of ending the runner process, so only a real cancellation ends a run ``Cancelled``.
    """
    try:
        flow = build_flow(definition, params=dict(params) if params is not None else None)
    except Exception as error:
        return "Failed", f"could not build flow {definition.name!r}: {describe_error(error)}", None
    try:
        await flow.run_async(shared, observer=observer, cancel=token)
    except SuspendRun as stop:
        return "Suspended", _waiting_text(stop), None
    except asyncio.CancelledError as error:
        if not token.cancelled:
            raise  # not ours: whoever cancelled this task gets the cancellation back
        reason = token.reason or (str(error) or None)
        return "Cancelled", f"cancelled: {reason}" if reason else "cancelled", None
    except (SystemExit, KeyboardInterrupt) as error:
        message = (
            f"user code raised {describe_error(error)}; a node must not end the runner: raise an exception to fail it"
        )
        return "Failed", message, USER_CODE_EXIT
    except Exception as error:
        # On a worker thread the exit became an error (see factories/threads.py): same reason.
        return "Failed", describe_error(error), USER_CODE_EXIT if isinstance(error, ThreadUserCodeExit) else None
    return "Succeeded", None, None


async def _finish_reporters(
    reporters: Sequence[Reporter], final: RunStatus, log: RunLogger | None
) -> list[tuple[Reporter, BaseException]]:
    """Give every reporter the final status, even when one of them fails; return the failures."""
    errors: list[tuple[Reporter, BaseException]] = []
    for reporter in reporters:
        try:
            await reporter.finish(final)
        except Exception as error:
            errors.append((reporter, error))
            if log is not None:
                log.line("ERROR", (), f"{type(reporter).__name__} failed: {describe_error(error)}")
    return errors


@contextmanager
def _journaled(checkpointer: Checkpointer | None, shared: dict[str, Any]) -> Iterator[None]:
    """The run's walks report to ``checkpointer`` (nothing without one)."""
    if checkpointer is None:
        yield
        return
    checkpointer.start(shared)
    token = JOURNAL.set(checkpointer)
    try:
        yield
    finally:
        JOURNAL.reset(token)


def _waiting_text(stop: SuspendRun) -> str:
    request = stop.request
    actions = ", ".join(request.actions) or "default"
    until = f"; its timeout ends {rfc3339_millis(stop.deadline)}" if stop.deadline is not None else ""
    asked = f": {request.message}" if request.message else ""
    return f"waiting for approval at {request.node}{asked} (actions: {actions}){until}"


@contextmanager
def _desk(desk: Approvals) -> Iterator[None]:
    """Approval nodes of the run's main line ask ``desk``."""
    token = APPROVALS.set(desk)
    try:
        yield
    finally:
        APPROVALS.reset(token)


def _as_list(log: RunLogger | None) -> list[Observer]:
    return [] if log is None else [log]


@contextmanager
def _captured(log: RunLogger | None) -> Iterator[None]:
    if log is None:
        yield
        return
    with log.capture():
        yield


def execute(
    definition: FlowDefinition,
    *,
    handle_signals: bool = True,
    on_signal: Callable[[str], None] | None = None,
    setup: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
    **options: Any,
) -> RunStatus:
    """`execute_async` in a fresh event loop; SIGINT/SIGTERM cancel the run gracefully.

    The first signal cancels the run (status `Cancelled`); the handlers are then removed, so a
    second signal acts as usual (a hard stop) if cleanup hangs. `on_signal` is told the signal name.
    `setup` (awaited in the run's event loop first) returns more options, such as a checkpointer.
    """

    async def main() -> RunStatus:
        token: CancelToken = options.pop("cancel", None) or CancelToken()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on(sig: signal.Signals) -> None:
            for s in installed:
                loop.remove_signal_handler(s)
            installed.clear()
            if on_signal is not None:
                on_signal(sig.name)
            token.cancel(f"received {sig.name}")

        if handle_signals:
            for sig in CANCEL_SIGNALS:
                loop.add_signal_handler(sig, on, sig)
                installed.append(sig)
        try:
            if setup is not None:
                options.update(await setup())
            return await execute_async(definition, cancel=token, **options)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(main())
