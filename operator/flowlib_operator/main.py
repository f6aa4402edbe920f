"""``flowlib-operator``: the command line of the operator, following kopf's conventions.

It reads the current kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``) or, in a
pod, the in-cluster service account, then runs the kopf handlers of :mod:`flowlib_operator.wiring`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import click
import kopf
from flowlib_runner.kube import KubeClient, load_config

from flowlib_api.history import RunHistory
from flowlib_api.storespec import StoreSpec
from flowlib_operator import __version__, metrics, peering
from flowlib_operator.jobspec import RunnerSettings
from flowlib_operator.queue import Limits
from flowlib_operator.reconcile import CANCEL_GRACE
from flowlib_operator.schedules import FileClock, SystemClock
from flowlib_operator.stores import DEFAULT_STORE_TEXT, StoreProblem, parse_store_spec
from flowlib_operator.wiring import Operator, OperatorConfig, register

DEFAULT_IMAGE = f"ghcr.io/flowlib/flowlib-operator:{__version__}"
WATCH_CACHE_HANDLERS = ("flowrun_event", "job_event", "pod_event")


def _store_option(ctx: click.Context, param: click.Parameter, value: str) -> StoreSpec:
    """``--default-store`` read at start-up: an operator with a store it cannot use refuses to start,
    rather than failing every run later."""
    try:
        return parse_store_spec(value)
    except StoreProblem as problem:
        raise click.BadParameter(
            f'{problem}. Give a store spec as JSON or YAML, e.g. --default-store \'{{"type": "s3", '
            f'"s3": {{"bucket": "runs", "secretName": "s3-credentials"}}}}\' (the fields of a '
            "FlowRun's spec.store, see docs/reference.md)",
            ctx=ctx,
            param=param,
        ) from problem


class QuietWatchCache(logging.Filter):
    """Drops kopf's "Handler ... succeeded" line for the watch-cache handlers at INFO.

    They run on every event of every pod, Job and FlowRun (about 25 lines per run), which buried
    what operators read the log for; ``--verbose`` keeps them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not str(record.msg).startswith("Handler"):
            return True
        text = record.getMessage()
        return not (text.endswith(" succeeded.") and any(f".{name}'" in text for name in WATCH_CACHE_HANDLERS))


@click.command(context_settings={"auto_envvar_prefix": "FLOWLIB_OPERATOR", "show_default": True})
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only this namespace (repeatable).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (cluster-wide).")
@click.option("--standalone", is_flag=True, help="Run without peering (no coordination with other replicas).")
@click.option(
    "--peering",
    "peering_name",
    default="flowlib-operator",
    help="Peering object shared by replicas (created at start if missing).",
)
@click.option("--priority", type=int, default=0, help="Peering priority; the highest active replica acts.")
@click.option(
    "--liveness",
    "liveness_endpoint",
    default=None,
    help="Serve health checks, e.g. http://0.0.0.0:8081/healthz.",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubeconfig file to use.")
@click.option(
    "--runner-image",
    envvar="FLOWLIB_RUNNER_IMAGE",
    default=DEFAULT_IMAGE,
    help="Default image of runner pods (a FlowRun may set spec.image).",
)
@click.option(
    "--runner-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default="IfNotPresent",
    help="imagePullPolicy of runner pods.",
)
@click.option(
    "--pod-start-timeout",
    type=float,
    default=120.0,
    help="Seconds a runner pod may wait (bad image, unschedulable) before the run fails.",
)
@click.option(
    "--resync-interval",
    type=float,
    default=10.0,
    help="Seconds between passes over all runs (timeouts, TTL).",
)
@click.option(
    "--cancel-grace",
    type=click.FloatRange(min=0),
    default=CANCEL_GRACE,
    show_default=True,
    help="Seconds a cancelled run's runner has to stop by itself (its pod and log are kept) before the "
    "operator deletes its Job.",
)
@click.option(
    "--metrics-port", type=int, default=8080, help="Port of the Prometheus /metrics endpoint; 0 turns it off."
)
@click.option(
    "--metrics-max-flows",
    type=click.IntRange(min=1),
    default=metrics.DEFAULT_MAX_FLOWS,
    show_default=True,
    help="How many (namespace, flow) pairs get metrics labels of their own; later ones are counted under "
    'flow="_other" (bounds the series a cluster of many teams makes).',
)
@click.option(
    "--webhook-port", type=int, default=0, help="Serve the validating admission webhook on this port; 0 turns it off."
)
@click.option(
    "--webhook-tls-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory with the webhook's tls.crt and tls.key (a mounted Secret); without it kopf self-signs.",
)
@click.option(
    "--access-check",
    type=click.Choice(["labels", "webhook"]),
    default="labels",
    help="Who allows a FlowRun's serviceAccountName and Secret/ConfigMap env: 'labels' (only objects labelled "
    "flowlib.dev/runner-access=true) or 'webhook' (the admission webhook checked each run's author; set it "
    "only where the ValidatingWebhookConfiguration is installed with failurePolicy Fail).",
)
@click.option(
    "--default-store",
    default=DEFAULT_STORE_TEXT,
    callback=_store_option,
    help="Store of runs whose spec.store does not say otherwise, as JSON or YAML (a FlowRun's spec.store "
    'fields), e.g. \'{"type": "s3", "s3": {"bucket": "runs"}}\' or \'{"enabled": false}\' for no stores. A Secret or '
    "claim named here is lent to every run and must exist in each namespace with runs.",
)
@click.option(
    "--history-succeeded",
    type=click.IntRange(min=0),
    default=None,
    help="How many Succeeded FlowRuns of each Flow to keep where the Flow's spec.history.succeeded does not say; "
    "the oldest beyond are deleted (default: all are kept).",
)
@click.option(
    "--history-failed",
    type=click.IntRange(min=0),
    default=None,
    help="How many Failed or Cancelled FlowRuns of each Flow to keep where the Flow's spec.history.failed does "
    "not say (default: all are kept).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=None,
    help="How many FlowRuns may be going (Pending or Running) at once in the whole cluster; more are Queued "
    "and start by priority, sharing the limit fairly between namespaces (default: no limit).",
)
@click.option(
    "--max-runs-per-namespace",
    type=click.IntRange(min=1),
    default=None,
    help="How many FlowRuns may be going at once in one namespace; more are Queued (default: no limit).",
)
@click.option(
    "--clock-file",
    type=click.Path(dir_okay=False),
    default=None,
    hidden=True,
    help="TESTS ONLY: the FlowSchedules' current time is read from this file (RFC 3339), so tests move time.",
)
@click.option("-v", "--verbose", is_flag=True, help="More logs.")
@click.option("--debug", is_flag=True, help="Even more logs, including every API request.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.option("--log-format", type=click.Choice(["plain", "full", "json"]), default="full", help="Log line format.")
@click.version_option(__version__, prog_name="flowlib-operator")
def cli(  # noqa: PLR0917 - one parameter per command-line option, as click passes them
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    peering_name: str,
    priority: int,
    liveness_endpoint: str | None,
    kubeconfig: str | None,
    runner_image: str,
    runner_pull_policy: str,
    pod_start_timeout: float,
    resync_interval: float,
    cancel_grace: float,
    metrics_port: int,
    metrics_max_flows: int,
    webhook_port: int,
    webhook_tls_dir: str | None,
    access_check: str,
    default_store: StoreSpec,
    history_succeeded: int | None,
    history_failed: int | None,
    max_runs: int | None,
    max_runs_per_namespace: int | None,
    clock_file: str | None,
    verbose: bool,
    debug: bool,
    quiet: bool,
    log_format: str,
) -> None:
    """Run the flowlib operator: Flows are validated, FlowRuns run as Jobs."""
    if bool(namespaces) == all_namespaces:
        raise click.UsageError("pass either --all-namespaces or one or more --namespace NS")
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's login reads the same file as our client
    kopf.configure(debug=debug, verbose=verbose, quiet=quiet, log_format=kopf.LogFormat[log_format.upper()])
    if not (verbose or debug):
        logging.getLogger("kopf.objects").addFilter(QuietWatchCache())
    config = OperatorConfig(
        runner=RunnerSettings(image=runner_image, image_pull_policy=runner_pull_policy),
        pod_start_timeout=pod_start_timeout,
        resync_interval=resync_interval,
        cancel_grace=cancel_grace,
        webhook_port=webhook_port,
        webhook_tls_dir=webhook_tls_dir,
        authorized_at_admission=access_check == "webhook",
        default_store=default_store,
        clock=FileClock(Path(clock_file)) if clock_file else SystemClock(),
        history=RunHistory(succeeded=history_succeeded, failed=history_failed),
        limits=Limits(cluster=max_runs, namespace=max_runs_per_namespace),
        namespaces=() if all_namespaces else tuple(namespaces),
    )
    client = KubeClient(
        load_config(kubeconfig), on_retry=metrics.count_retry, user_agent=f"flowlib-operator/{__version__}"
    )
    operator = Operator.build(client, config)
    registry = kopf.OperatorRegistry()
    register(registry, operator)
    if not standalone:  # the operator makes its own peering object, so one `kubectl apply -k` installs it
        peering.register(registry, client, peering_name, None if all_namespaces else namespaces)
    metrics.FLOW_LABELS.limit = metrics_max_flows
    if metrics_port:
        metrics.serve(metrics_port)
    logging.getLogger("flowlib.operator").info(
        "starting: %s, runner image %s, default store %s",
        "all namespaces" if all_namespaces else ", ".join(namespaces),
        runner_image,
        default_store.type if default_store.enabled else "none",
    )
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=standalone,
            priority=priority,
            peering_name=None if standalone else peering_name,  # a named peering is mandatory in kopf
            liveness_endpoint=liveness_endpoint,
            clusterwide=all_namespaces,
            namespaces=list(namespaces),
        )
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
