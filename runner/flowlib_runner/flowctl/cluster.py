"""`flowctl`'s cluster half: submit, logs, status, cancel and list FlowRuns (also `kubectl flow ...`).

Why these commands when kubectl can do it all: submitting means writing a FlowRun by hand, following
a run means finding its pod (a new one after each retry), and the status is a nested map that
`kubectl get -o yaml` shows raw. These commands do the bookkeeping and print what a person wants.

Conventions shared with the local `flowctl run`: `-p key=value` and `--input JSON|@file` read the
same way; commands that wait for a run (`submit --follow`, `submit --watch`, `status --watch`,
`logs -f`, `cancel --wait`) exit with the run's result -- 0 Succeeded, 1 Failed, 130 Cancelled; 2 is
invalid input (a bad flow file, bad options). New here: 3 means the cluster could not be asked
(unreachable, forbidden, no such FlowRun), so a script can tell "the run failed" from "nobody
knows". The log (or with --watch the node tree) goes to stdout; what flowctl says around it (waiting
for a pod, the final summary) goes to stderr.

Every command takes `--kubeconfig`, `--context` and `-n/--namespace` (default: the context's
namespace, as kubectl), before or after the subcommand (`flowctl -n NS status RUN`). As a kubectl
plugin (`kubectl flow ...`), kubectl hands over everything after `flow`; kubectl refuses its own
flags before the plugin name, so write `kubectl flow -n NS list` or `kubectl flow list -n NS`, not
`kubectl -n NS flow list`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from flowlib_api.meta import GROUP_VERSION, KIND_FLOWRUN
from flowlib_api.params import parse_schema
from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.times import parse_duration
from flowlib_api.views import FlowView
from flowlib_runner.definition.loader import load_file
from flowlib_runner.flowctl.archived import print_local_logs
from flowlib_runner.flowctl.clusterapi import ClusterApi, ClusterError, connect
from flowlib_runner.flowctl.common import (
    EXIT_CANCELLED,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    cluster_options,
    parse_input,
    parse_param,
    refuse_params,
    typed_params,
)
from flowlib_runner.flowctl.follow import LogFollower
from flowlib_runner.flowctl.render import run_rows, status_report
from flowlib_runner.flowctl.watch import TreeWatcher, redraws

MAX_RETRIES = 20  # FlowRunSpec.retries' bound

T = TypeVar("T")


def _prog() -> str:
    """How the user called us, for hints: `kubectl flow` when run as the kubectl plugin."""
    context = click.get_current_context(silent=True)
    name = context.find_root().info_name if context is not None else None
    return "kubectl flow" if name == "kubectl-flow" else "flowctl"


def _note(text: str) -> None:
    click.echo(f"flowctl: {text}", err=True)


def _emit(line: str) -> None:
    """A log line to stdout; when the reader is gone (`| head`), stop quietly like other CLI tools."""
    try:
        click.echo(line)
    except BrokenPipeError:
        _reader_gone()


def _write(text: str) -> None:
    """Text to stdout as is (the watch's reports and redraws), flushed; a closed pipe as in `_emit`."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()


def _reader_gone() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    raise SystemExit(EXIT_OK) from None


def _run(work: Coroutine[Any, Any, T], *, interrupted: str = "interrupted") -> T:
    """Run a command's coroutine; Ctrl-C exits 130 with a word instead of a traceback."""
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        _note(interrupted)
        raise SystemExit(EXIT_CANCELLED) from None


def _summary(flowrun: dict[str, Any]) -> int:
    """Say how the run ended (stderr) and return its exit code."""
    status = flowrun.get("status") or {}
    phase = status.get("phase") or "Pending"
    text = f"{flowrun['metadata']['name']} {phase}: nodes {status.get('progress') or '0/0'}"
    if status.get("duration"):
        text += f" in {status['duration']}"
    _note(text + (f" -- {status['message']}" if status.get("message") else ""))
    if status.get("output"):
        _note("output: " + json.dumps(status["output"], ensure_ascii=False, default=str))
    return EXIT_CODES.get(phase, EXIT_FAILED)


async def _follow(api: ClusterApi, run: str) -> dict[str, Any]:
    return await LogFollower(api, run, emit=_emit, note=_note).follow()


async def _watch(api: ClusterApi, run: str) -> dict[str, Any]:
    """The run's report and node tree, live until it ends (`watch`); the final FlowRun."""
    interactive = redraws(sys.stdout)
    return await TreeWatcher(api, run, write=_write, interactive=interactive, prog=_prog()).watch()


# -- submit ---------------------------------------------------------------------------------------


def _looks_like_path(flow: str) -> bool:
    return "/" in flow or os.sep in flow or flow.endswith((".yaml", ".yml", ".json"))


def _inline_flow(path: str, flow_name: str | None) -> tuple[str, dict[str, Any]]:
    """The flow in a file, validated here, as (name, canonical spec) for the FlowRun's `spec.flow`."""
    result = load_file(path, flow=flow_name)
    for problem in result.problems:
        click.echo(f"{path}: {problem}", err=True)
    if not result.ok or result.definition is None:
        click.echo(f"{path}: invalid flow definition ({len(result.errors)} error(s)); nothing submitted", err=True)
        raise SystemExit(EXIT_INVALID)
    definition = result.definition
    if definition.subflows:
        names = ", ".join(sorted(definition.subflows))
        click.echo(
            f"{path}: flow '{definition.name}' runs sub-flows ({names}); a run from a file carries one flow inline, "
            f"and the operator takes sub-flows from the cluster. Apply the file first (kubectl apply -f {path}) "
            f"and submit by name: {_prog()} submit {definition.name}",
            err=True,
        )
        raise SystemExit(EXIT_INVALID)
    # The canonical camelCase form, whatever the file's spelling (manifest, bare spec, seed format).
    return definition.name, definition.spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _checked_params(label: str, texts: tuple[str, ...], flow_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The `-p` params as the flow declares them (`spec.paramSchema`); exit 2 naming each bad one,
    so a run that would be refused at the door (or fail on a param) is never created."""
    typed, problems = typed_params(texts, parse_schema(flow_spec.get("paramSchema")), flow_spec.get("params"))
    if problems:
        refuse_params(label, problems)
    return typed


def _check_flow_ready(flow: dict[str, Any]) -> None:
    """Refuse a Flow the operator already found invalid (the run would fail with InvalidFlow)."""
    view = FlowView(flow)
    if not view.validated:
        return  # not validated since its last edit: let the operator decide
    ready = view.ready
    if ready is not None and ready.get("status") == "False":
        click.echo(f"flowctl: Flow '{view.name}' is invalid: {ready.get('message', '')}", err=True)
        click.echo(f"flowctl: fix it (kubectl edit flow {view.name}); nothing submitted", err=True)
        raise SystemExit(EXIT_INVALID)


def _generated_prefix(flow: str) -> str:
    """A `generateName` from the flow's name: a DNS label prefix, short enough for the Job's name."""
    text = re.sub(r"[^a-z0-9-]+", "-", flow.lower()).strip("-")[:40].rstrip("-")
    return (text or "run") + "-"


@click.command()
@click.argument("flow", metavar="FLOW")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a flow param (repeatable).")
@click.option("--input", "input_text", metavar="JSON|@FILE", help="Initial shared store: JSON, or @file (JSON/YAML).")
@click.option("--output", "outputs", multiple=True, metavar="KEY", help="Shared key to publish in status.output.")
@click.option("--name", metavar="NAME", help="Name of the FlowRun (default: generated from the flow's name).")
@click.option("--generate-name", is_flag=True, help="Let the API server pick a unique name <flow>-xxxxx (default).")
@click.option("--timeout", metavar="DURATION", help="Longest the run may take, e.g. 10m or 1h30m; then it fails.")
@click.option(
    "--retries",
    type=click.IntRange(0, MAX_RETRIES),
    help="Start the runner pod again this many times if it crashes (not node retries).",
)
@click.option("--flow", "flow_name", metavar="NAME", help="Which flow of FILE to run when it holds several.")
@click.option("-f", "--follow", is_flag=True, help="Follow the run's logs and exit with its result, as logs -f.")
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Show the run's node tree live until it ends (as status --watch) and exit with its result.",
)
@cluster_options
def submit(
    *,
    flow: str,
    params: tuple[str, ...],
    input_text: str | None,
    outputs: tuple[str, ...],
    name: str | None,
    generate_name: bool,
    timeout: str | None,
    retries: int | None,
    flow_name: str | None,
    follow: bool,
    watch: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Start a run of FLOW in the cluster and print the FlowRun's name.

    FLOW is the name of a Flow in the namespace (the run references it), or the path of a flow file:
    then the file is validated here and its flow is embedded in the FlowRun (spec.flow), so nothing
    else is created and later edits of the file do not touch the run. A file whose flow runs
    sub-flows cannot be embedded; apply it with kubectl first and submit the Flow by name.

    With --follow the name goes to stderr, the run's log to stdout, and the exit code is the run's
    result: 0 Succeeded, 1 Failed, 130 Cancelled. With --watch the same, but stdout shows the run's
    report and node tree (flowctl status) live: redrawn in place on a terminal, printed again on
    each change when stdout is a file or pipe.
    """
    if name and generate_name:
        raise click.UsageError("--name and --generate-name exclude each other")
    if follow and watch:
        raise click.UsageError("--follow (the run's log) and --watch (its node tree) exclude each other")
    if timeout is not None:
        try:
            parse_duration(timeout)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--timeout") from error
    spec: dict[str, Any] = {}
    overrides = dict(parse_param(p) for p in params)
    shared = parse_input(input_text)
    is_file = Path(flow).is_file()
    if not is_file and _looks_like_path(flow):
        raise click.BadParameter(f"no such file: {flow}", param_hint="FLOW")
    inline: tuple[str, dict[str, Any]] | None = _inline_flow(flow, flow_name) if is_file else None
    if inline is None and flow_name:
        raise click.UsageError("--flow picks a flow inside a file; FLOW here is the name of a Flow")
    flow_label = inline[0] if inline else flow
    if inline:
        spec["flow"] = inline[1]
        overrides = _checked_params(flow, params, inline[1])
    else:
        spec["flowRef"] = {"name": flow}
    for key, value in (("params", overrides), ("input", shared), ("outputs", list(outputs))):
        if value:
            spec[key] = value
    if timeout is not None:
        spec["timeout"] = timeout
    if retries is not None:
        spec["retries"] = retries
    metadata = {"name": name} if name else {"generateName": _generated_prefix(flow_label)}
    body = {"apiVersion": GROUP_VERSION, "kind": KIND_FLOWRUN, "metadata": metadata, "spec": spec}

    async def work() -> int:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            if inline is None:
                found = await api.get_flow(flow)
                _check_flow_ready(found)
                typed = _checked_params(f"flowctl: Flow '{flow}'", params, found.get("spec") or {})
                if typed:
                    spec["params"] = typed
            created = await api.create_run(body)
            run = created["metadata"]["name"]
            if not (follow or watch):
                click.echo(run)
                return EXIT_OK
            _note(f"flowrun {run} created in namespace {api.namespace}")
            return _summary(await (_watch(api, run) if watch else _follow(api, run)))

    stopped = f"stopped {'watching' if watch else 'following'}; the run goes on (cancel it with {_prog()} cancel)"
    raise SystemExit(_run(work(), interrupted=stopped))


def submit_retry(
    source: str,
    *,
    resubmit: bool,
    params: tuple[str, ...],
    name: str | None,
    follow: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """``flowctl retry RUN`` / ``resubmit RUN``: a FlowRun with ``spec.retryOf: RUN`` (what a GitOps
    user writes as a manifest). The source must have finished; the operator checks the rest."""
    spec: dict[str, Any] = {"retryOf": source}
    if resubmit:
        spec["resubmit"] = True
    overrides = dict(parse_param(p) for p in params)
    if overrides:
        spec["params"] = overrides
    metadata = {"name": name} if name else {"generateName": f"{source[:50]}-{'resubmit' if resubmit else 'retry'}-"}
    body = {"apiVersion": GROUP_VERSION, "kind": KIND_FLOWRUN, "metadata": metadata, "spec": spec}

    async def work() -> int:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            phase = ((await api.get_run(source)).get("status") or {}).get("phase")
            if phase not in FINISHED_PHASES:
                raise ClusterError(
                    f"FlowRun {source} has not finished (phase {phase or 'Pending'}): a run is retried once it "
                    f"has ended; cancel it first with `{_prog()} cancel {source} --wait`"
                )
            created = await api.create_run(body)
            run = created["metadata"]["name"]
            if not follow:
                click.echo(run)
                return EXIT_OK
            what = "resubmit" if resubmit else "retry"
            _note(f"flowrun {run} created in namespace {api.namespace} ({what} of {source})")
            return _summary(await _follow(api, run))

    stopped = "stopped following; the run goes on (cancel it with flowctl cancel)"
    raise SystemExit(_run(work(), interrupted=stopped))


# -- logs, status, cancel, list ---------------------------------------------------------------------


@click.command()
@click.argument("run", metavar="RUN")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing, across pod retries, until the run ends; exit with its result."
)
@cluster_options
def logs(*, run: str, follow: bool, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Print the runner's log of FlowRun RUN (every attempt, oldest first).

    With -f, wait for the runner pod if it has not started (saying why it waits), follow it and the
    pods of later attempts, and exit once the run is over: 0 Succeeded, 1 Failed, 130 Cancelled.
    Once the pods are gone, the log each attempt archived in the run's store is printed instead;
    RUN may also be a local store directory (flowctl run --store DIR), whose archived log is printed.
    """
    if Path(run).is_dir():
        raise SystemExit(print_local_logs(run, emit=_emit, note=_note))

    async def work() -> int:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            if follow:
                return _summary(await _follow(api, run))
            await LogFollower(api, run, emit=_emit, note=_note).print_logs()
            return EXIT_OK

    raise SystemExit(_run(work(), interrupted="stopped following; the run goes on"))


@click.command()
@click.argument("run", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the FlowRun's status object as JSON.")
@click.option("-w", "--watch", is_flag=True, help="Keep showing it, live, until the run ends; exit with its result.")
@cluster_options
def status(
    *, run: str, as_json: bool, watch: bool, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Show FlowRun RUN: phase, progress, timings, message and its node tree.

    Each node row shows its phase, visits, attempts of the latest visit, batch item counts and time
    spent; nodes of a sub-flow are indented under the node that runs it; `*` marks the running node.
    With --watch it is shown until the run ends: redrawn in place on a terminal, printed again on each
    change when stdout is a file or pipe; the exit code is then the run's result (0 Succeeded, 1
    Failed, 130 Cancelled).
    """
    if watch:
        if as_json:
            raise click.UsageError("--watch and --json exclude each other")

        async def watching() -> int:
            async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
                return _summary(await _watch(api, run))

        raise SystemExit(_run(watching(), interrupted="stopped watching; the run goes on"))

    async def work() -> dict[str, Any]:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            return await api.get_run(run)

    flowrun = _run(work())
    if as_json:
        click.echo(json.dumps(flowrun.get("status") or {}, indent=2, ensure_ascii=False))
        return
    for line in status_report(flowrun, datetime.now(UTC)):
        click.echo(line)


@click.command()
@click.argument("run", metavar="RUN")
@click.option("--wait", is_flag=True, help="Wait until the run has stopped; exit with its result.")
@cluster_options
def cancel(*, run: str, wait: bool, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Cancel FlowRun RUN (sets spec.cancel): in-flight work is cancelled and the phase becomes Cancelled.

    Without --wait it returns once the request is recorded. With --wait it exits with the run's
    result once it is over: 130 when the cancel took effect, 0 or 1 if the run ended on its own first.
    """

    async def work() -> int:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            flowrun = await api.get_run(run)
            phase = (flowrun.get("status") or {}).get("phase")
            if phase in FINISHED_PHASES:
                _note(f"{run} already finished ({phase}); nothing to cancel")
                return EXIT_CODES.get(phase, EXIT_FAILED) if wait else EXIT_OK
            await api.cancel_run(run)
            click.echo(f"flowrun {run} cancel requested")
            if not wait:
                return EXIT_OK
            while phase not in FINISHED_PHASES:
                await asyncio.sleep(0.5)
                flowrun = await api.get_run(run)
                phase = (flowrun.get("status") or {}).get("phase")
            return _summary(flowrun)

    raise SystemExit(_run(work(), interrupted="stopped waiting; the cancel request stands"))


@click.command("list")
@click.option("-A", "--all-namespaces", is_flag=True, help="FlowRuns of every namespace.")
@cluster_options
def list_runs(*, all_namespaces: bool, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """List FlowRuns with their flow, phase, progress, running node and age (as kubectl get flowruns)."""

    async def work() -> tuple[str, list[dict[str, Any]]]:
        async with connect(kubeconfig, context, namespace, prog=_prog()) as api:
            return api.namespace, await api.list_runs(all_namespaces)

    where, runs = _run(work())
    if not runs:
        _note("no FlowRuns found" + ("" if all_namespaces else f' in namespace "{where}"'))
        return
    for line in run_rows(runs, datetime.now(UTC), all_namespaces=all_namespaces):
        click.echo(line)


COMMANDS: tuple[click.Command, ...] = (submit, logs, status, cancel, list_runs)


__all__ = ["COMMANDS", "ClusterError"]
