"""`flowctl`'s local half: run, lint and draw flows on this machine; nothing here needs a cluster.

With `--json` the final status is the only thing on stdout, so `flowctl run --json f.yaml | jq`
works; logs then go to stderr. Exit codes are ``common``'s: 0 Succeeded, 1 Failed, 2 invalid
definition or bad usage, 130 Cancelled.

`--secret-env NAME` masks that variable's value (`***`) in the log, the status (file, live view,
summary, `--json`) and everything else `flowctl run` prints, as the in-cluster runner does for its
FlowRun's Secret-sourced env (`execution.masking`). Nothing is masked without it: flowctl cannot
tell which of a shell's variables are secrets.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console

from flowlib_api.runstatus import RunStatus
from flowlib_runner.definition.factories.pause import ApprovalRequest
from flowlib_runner.definition.graph import GRAPH_FORMATS, render
from flowlib_runner.definition.loader import FlowDefinition, LoadResult, load_file
from flowlib_runner.execution.approvals import Approvals, parse_decisions
from flowlib_runner.execution.checkpoints import CheckpointError
from flowlib_runner.execution.execute import ReportingFailed, execute
from flowlib_runner.execution.logarchive import LogArchive
from flowlib_runner.execution.logs import LOG_FORMATS, RunLogger, Sink, stream_sink
from flowlib_runner.execution.masking import Masker, mask_status, masked_streams
from flowlib_runner.execution.reporting import ConsoleReporter, JsonFileReporter, Reporter, describe_error
from flowlib_runner.flowctl import stores
from flowlib_runner.flowctl.cluster import submit_retry
from flowlib_runner.flowctl.common import (
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


def _load(path: str, flow: str | None) -> LoadResult:
    result = load_file(path, flow=flow)
    for problem in result.problems:
        click.echo(f"{path}: {problem}", err=True)
    if not result.ok or result.definition is None:
        errors = sum(1 for p in result.problems if p.severity == "error")
        click.echo(f"{path}: invalid flow definition ({errors} error(s))", err=True)
        raise SystemExit(EXIT_INVALID)
    return result


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a flow param (repeatable).")
@click.option("--input", "input_text", metavar="JSON|@FILE", help="Initial shared store: JSON, or @file (JSON/YAML).")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON on stdout; logs go to stderr.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True, help="Log lines.")
@click.option("--flow", "flow_name", metavar="NAME", help="Which flow to run when the file holds several.")
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="KEY",
    help="Shared key to publish (repeatable; default all).",
)
@click.option("--status-file", type=click.Path(dir_okay=False), help="Keep the status in this JSON file while running.")
@click.option("--live/--no-live", default=None, help="Live view (default: when stdout is a terminal and not --json).")
@click.option(
    "--secret-env",
    "secret_env",
    multiple=True,
    metavar="NAME",
    help="Environment variable holding a secret: its value is masked (***) in everything printed (repeatable).",
)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False),
    help="Checkpoint the run into this (new or empty) directory, so it can be resumed or retried.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Continue the killed run whose store is this directory (FILE is then not needed).",
)
@click.option(
    "--approve",
    "decisions",
    multiple=True,
    metavar="NODE[=ACTION]",
    help="The decision of approval node NODE (default action: default), taken in order per node (repeatable). "
    "Without one, a run on a terminal asks; with --store it stops (Suspended) to be resumed with --resume.",
)
@click.option("--retry-of", "source_dir", hidden=True, type=click.Path(exists=True, file_okay=False))
@click.option("--resubmit", "resubmit", hidden=True, is_flag=True)
def run(
    *,
    file: str | None,
    params: tuple[str, ...],
    input_text: str | None,
    as_json: bool,
    log_format: str,
    flow_name: str | None,
    outputs: tuple[str, ...],
    status_file: str | None,
    live: bool | None,
    secret_env: tuple[str, ...],
    store_dir: str | None,
    resume_dir: str | None,
    source_dir: str | None,
    resubmit: bool,
    decisions: tuple[str, ...] = (),
) -> None:
    """Run the flow in FILE (a Flow manifest, a bare spec or a seed-format file).

    With --store DIR the run checkpoints into DIR: a killed run continues with --resume DIR
    (finished nodes and batch items are not run again), a failed one with `flowctl retry DIR`.
    """
    masker = _secret_masker(secret_env)
    overrides = dict(parse_param(p) for p in params)
    shared = parse_input(input_text)
    if store_dir and resume_dir:
        raise click.UsageError("--store starts a new run and --resume continues one: give one of them")
    stored_dir = resume_dir or source_dir
    stored = stores.read_stored_run(stored_dir) if stored_dir else None
    source = None if resubmit else source_dir
    definition: FlowDefinition | None
    if stored is not None:
        if stored.ended and not source_dir:
            raise click.UsageError(
                f"the run in {resume_dir} ended {stored.ended}; retry it with `flowctl retry {resume_dir}`"
            )
        definition = stored.definition
        overrides = {**(stored.params or {}), **overrides}
        shared = shared if input_text is not None else (stored.input or {})
        outputs = outputs or tuple(stored.outputs or ())
    elif file is None:
        raise click.UsageError("give the FILE to run (or --resume DIR to continue a stored run)")
    else:
        definition = _load(file, flow_name).definition
    assert definition is not None  # _load exits otherwise
    typed, bad_params = typed_params(
        params, definition.spec.param_schema, definition.spec.params, base=stored.params if stored else None
    )
    if bad_params:
        refuse_params(file or str(stored_dir), bad_params)
    overrides.update(typed)
    if store_dir:
        stores.check_fresh(store_dir)
    log_stream: TextIO = sys.stderr if as_json else sys.stdout
    use_live = (not as_json and sys.stdout.isatty()) if live is None else (live and not as_json)
    reporters: list[Reporter] = []
    console: Console | None = None
    if use_live:
        console = Console(file=sys.stdout)  # the real stdout, saved before user output is captured
        sink: Sink = _console_sink(console)
    else:
        sink = stream_sink(log_stream)
    archive = LogArchive(sink) if store_dir or resume_dir else None  # saved in the store at the end
    sink = archive or sink
    log = RunLogger(sink, "json" if log_format == "json" else "text", info_events=not use_live, masker=masker)

    def report_error(reporter: Reporter, error: BaseException) -> None:
        log.line("WARNING", (), f"{type(reporter).__name__} could not publish: {describe_error(error)}")

    if console is not None:
        reporters.append(ConsoleReporter(console, title=definition.name, on_error=report_error, masker=masker))
    if status_file:
        reporters.append(JsonFileReporter(status_file, on_error=report_error, masker=masker))
    directory = store_dir or resume_dir
    setup = None
    if directory:
        setup = stores.store_setup(
            directory,
            definition,
            log=log,
            params=overrides or None,
            outputs=list(outputs) or None,
            input=shared,
            source=source,
            fresh=bool(store_dir),
        )
    try:
        given = parse_decisions(decisions)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    approvals = Approvals(
        given,
        cumulative=False,
        ask=_ask_on_terminal if sys.stdin.isatty() and not as_json else None,
        can_suspend=bool(directory),
        hint="run it with --approve NODE=ACTION, from a terminal, or with --store DIR to stop and resume later",
    )
    with masked_streams(masker):
        try:
            status = execute(
                definition,
                input=shared,
                params=overrides or None,
                reporters=reporters,
                log=log,
                outputs=list(outputs) or None,
                on_signal=lambda name: log.line("WARNING", (), f"{name}: cancelling the run"),
                setup=setup,
                approvals=approvals,
            )
        except CheckpointError as error:
            click.echo(f"flowctl: {error}", err=True)
            raise SystemExit(EXIT_INVALID) from error
        except ReportingFailed as error:
            click.echo(f"flowctl: {error}", err=True)
            _finish(mask_status(error.status, masker), as_json, console)
            raise SystemExit(EXIT_FAILED) from error
        stores.save_local_log(store_dir or resume_dir, archive)
        _finish(mask_status(status, masker), as_json, console)
    if status.suspended is not None and directory:
        node = status.suspended.node
        choices = "|".join(status.suspended.actions) or "default"
        click.echo(
            f"flowctl: the run waits for approval at {node}; continue it with "
            f"`flowctl run --resume {directory} --approve {node}={choices}`",
            err=True,
        )
    raise SystemExit(EXIT_CODES.get(status.phase, EXIT_FAILED))


def _ask_on_terminal(request: ApprovalRequest) -> str | None:
    """Ask the person at the terminal which action approval node ``request`` takes."""
    choices = list(request.actions) or ["default"]
    if request.message:
        click.echo(f"\n{request.node}: {request.message}", err=True)
    answer: str = click.prompt(
        f"approval {request.node}: choose an action",
        type=click.Choice(choices),
        default=choices[0],
        err=True,
    )
    return answer


def _secret_masker(names: tuple[str, ...]) -> Masker | None:
    """The masker of `--secret-env`; a name that is not set is said on stderr (there is nothing to mask)."""
    if not names:
        return None
    for name in names:
        if name not in os.environ:
            click.echo(f"flowctl: --secret-env {name}: the variable is not set; nothing to mask", err=True)
    return Masker.from_environment(names, os.environ)


def _console_sink(console: Console) -> Sink:
    def write(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    return write


def _finish(status: RunStatus, as_json: bool, console: Console | None) -> None:
    if as_json:
        sys.stdout.write(status.to_json(indent=2) + "\n")
        sys.stdout.flush()
        return
    if console is None:
        summary = f"{status.phase}: nodes {status.progress}"
        click.echo(summary + (f" -- {status.message}" if status.message else ""))
        if status.output:
            click.echo("output: " + json.dumps(status.output, ensure_ascii=False, default=str))
    elif status.output:
        console.print_json(data=status.output)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--flow", "flow_name", metavar="NAME", help="Which flow to check when a file holds several.")
def lint(files: tuple[str, ...], flow_name: str | None) -> None:
    """Validate FILES without running anything; every problem is listed with its path.

    Exit code 2 when any file has an error (warnings alone exit 0).
    """
    failed = False
    for path in files:
        result = load_file(path, flow=flow_name)
        for problem in result.problems:
            click.echo(f"{path}: {problem}")
        if not result.ok:
            failed = True
        elif not result.problems:
            click.echo(f"{path}: ok")
    raise SystemExit(EXIT_INVALID if failed else EXIT_OK)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="mermaid", show_default=True)
@click.option("--flow", "flow_name", metavar="NAME", help="Which flow to draw when the file holds several.")
def graph(file: str, fmt: str, flow_name: str | None) -> None:
    """Print the flow in FILE as a Mermaid or Graphviz dot graph, edges labelled with their actions."""
    definition = _load(file, flow_name).definition
    assert definition is not None
    click.echo(render(definition, "dot" if fmt == "dot" else "mermaid"), nl=False)


@click.command()
@click.argument("target", metavar="RUN|DIR")
@click.option(
    "--store", "store_dir", type=click.Path(file_okay=False), help="Local: the retry's own store (default DIR-retryN)."
)
@click.option("--resubmit", is_flag=True, help="Run the same definition and inputs from the start instead.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a flow param (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Local: print the final status as JSON on stdout.")
@click.option("--name", metavar="NAME", help="Cluster: name of the new FlowRun (default: generated).")
@click.option("-f", "--follow", is_flag=True, help="Cluster: follow the new run's logs and exit with its result.")
@cluster_options
@click.pass_context
def retry(
    ctx: click.Context,
    *,
    target: str,
    store_dir: str | None,
    resubmit: bool,
    params: tuple[str, ...],
    as_json: bool,
    name: str | None,
    follow: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Retry a finished run from where it failed: the FlowRun RUN in the cluster, or the local run
    stored in the directory DIR.

    Nodes and batch items that finished are not run again; the failed node runs again, and in a
    batch only the failed and unfinished items do. In a cluster this creates a FlowRun with
    spec.retryOf: RUN (the same as applying one) and prints its name. Locally the retry keeps its
    own checkpoints (--store), so it can be retried in turn. With --resubmit it starts over with the
    same definition and inputs.
    """
    if not Path(target).is_dir():
        if store_dir or as_json:
            raise click.UsageError(f"--store and --json are for local runs; {target} is not a directory")
        submit_retry(
            target,
            resubmit=resubmit,
            params=params,
            name=name,
            follow=follow,
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
        )
        return
    if name or follow:
        raise click.UsageError(f"--name and --follow are for cluster runs; {target} is a local store")
    directory = target
    stored = stores.read_stored_run(directory)
    if not stored.ended:
        raise click.UsageError(
            f"the run in {directory} has not ended; continue it with `flowctl run --resume {directory}`"
        )
    if not stored.resumable and not resubmit:
        raise click.UsageError(f"the run in {directory} kept no usable checkpoint; use --resubmit to start it over")
    ctx.invoke(
        run,
        params=params,
        as_json=as_json,
        store_dir=store_dir or stores.next_retry_directory(directory),
        source_dir=directory,
        resubmit=resubmit,
    )


@click.command()
@click.argument("target", metavar="RUN|DIR")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a flow param (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Local: print the final status as JSON on stdout.")
@click.option("--name", metavar="NAME", help="Cluster: name of the new FlowRun (default: generated).")
@click.option("-f", "--follow", is_flag=True, help="Cluster: follow the new run's logs and exit with its result.")
@cluster_options
@click.pass_context
def resubmit(ctx: click.Context, /, **options: Any) -> None:
    """Run a finished run again from the start, with the same definition and inputs: the FlowRun
    RUN in the cluster (a FlowRun with spec.retryOf: RUN and spec.resubmit: true), or the local run
    stored in DIR. The same as `retry --resubmit`."""
    ctx.invoke(retry, resubmit=True, store_dir=None, **options)


COMMANDS: tuple[click.Command, ...] = (run, lint, graph, retry, resubmit)
