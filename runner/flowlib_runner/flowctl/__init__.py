"""`flowctl` (also `kubectl flow`): run, lint and draw flows locally; submit and follow them on a cluster.

One command group with two halves that share ``common`` (exit codes, `-p`/`--input`, the cluster
target): ``local`` (run, lint, graph: no cluster needed) and ``cluster`` (submit, logs, status,
cancel, list). Neither half imports the other. The cluster options may come before the subcommand
(`flowctl -n NS status RUN`) or after it, as kubectl accepts them.
"""

from __future__ import annotations

import click

from flowlib_runner.flowctl import approve, cluster, local, outputs
from flowlib_runner.flowctl.common import ClusterTarget, target_options


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="flowlib-operator", prog_name="flowctl")
@target_options
@click.pass_context
def main(ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Run flowlib flows written in YAML, on this machine or (with the cluster commands) in Kubernetes."""
    ctx.obj = ClusterTarget(kubeconfig=kubeconfig, context=context, namespace=namespace)


for _command in (*local.COMMANDS, *cluster.COMMANDS, *approve.COMMANDS, *outputs.COMMANDS):
    main.add_command(_command)

__all__ = ["main"]
