"""`flowctl approve RUN|DIR`: give the decision a run Suspended at an approval node waits for.

In a cluster it appends ``{node, action, by, message}`` to the FlowRun's ``spec.approvals`` (what a
GitOps change of the manifest would do); the operator then starts the run's next pod, which resumes
at the node and takes the chosen edge. For a local store directory it continues the run at once, as
``flowctl run --resume DIR --approve NODE=ACTION`` does.
"""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Any

import click

from flowlib_runner.execution.checkpoints import CheckpointError, read_meta
from flowlib_runner.flowctl.clusterapi import ClusterError, connect
from flowlib_runner.flowctl.common import EXIT_INVALID, EXIT_OK, cluster_options
from flowlib_runner.store import StoreError
from flowlib_runner.store.directory import DirectoryStore


def _note(text: str) -> None:
    click.echo(f"flowctl: {text}", err=True)


@click.command()
@click.argument("target", metavar="RUN|DIR")
@click.option("-a", "--action", default="default", show_default=True, help="The edge the approval node takes.")
@click.option(
    "--node",
    metavar="NODE",
    help="The approval node (default: the one the run waits at); naming one approves it ahead of time.",
)
@click.option("-m", "--message", metavar="TEXT", help="Why (kept with the decision in spec.approvals).")
@cluster_options
@click.pass_context
def approve(
    ctx: click.Context,
    /,
    *,
    target: str,
    action: str,
    node: str | None,
    message: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Decide approval node NODE of run RUN (or of the local store DIR): it goes on along ACTION's edge."""
    if Path(target).is_dir():
        raise SystemExit(_approve_local(ctx, target, node, action))
    raise SystemExit(
        asyncio.run(
            _approve_cluster(
                target,
                node=node,
                action=action,
                message=message,
                kubeconfig=kubeconfig,
                context=context,
                namespace=namespace,
            )
        )
    )


def _approve_local(ctx: click.Context, directory: str, node: str | None, action: str) -> int:
    from flowlib_runner.flowctl.local import run

    try:
        meta = asyncio.run(read_meta(DirectoryStore(directory))) or {}
    except (CheckpointError, StoreError) as error:
        _note(str(error))
        return EXIT_INVALID
    waiting = meta.get("suspended") or {}
    node = node or waiting.get("node")
    if not node or meta.get("ended"):
        _note(f"the run in {directory} is not waiting for an approval; nothing to approve")
        return EXIT_INVALID
    ctx.invoke(run, resume_dir=directory, decisions=(f"{node}={action}",))
    return EXIT_OK  # run exits itself; reached only if it returned


async def _approve_cluster(
    run: str,
    *,
    node: str | None,
    action: str,
    message: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> int:
    try:
        async with connect(kubeconfig, context, namespace, prog="flowctl") as api:
            flowrun = await api.get_run(run)
            status: dict[str, Any] = flowrun.get("status") or {}
            waiting: dict[str, Any] = status.get("suspended") or {}
            suspended = status.get("phase") == "Suspended"
            chosen = node or (waiting.get("node") if suspended else None)
            if chosen is None:
                phase = status.get("phase") or "Pending"
                _note(f"{run} is {phase}, not waiting for an approval; name the node with --node to approve it ahead")
                return EXIT_INVALID
            if suspended and chosen == waiting.get("node"):
                actions: list[str] = list(waiting.get("actions") or [])
                if action not in (*actions, "timeout"):
                    _note(f"{chosen} has no edge for action {action!r}; its actions: {', '.join(actions)}")
                    return EXIT_INVALID
            decision: dict[str, Any] = {"node": chosen, "action": action, "by": _who()}
            if message:
                decision["message"] = message
            await api.add_approval(flowrun, decision)
    except ClusterError as error:
        _note(str(error))
        return error.exit_code
    now = suspended and chosen == waiting.get("node")
    resumes = "it resumes in a new pod" if now else "taken when the run gets there"
    click.echo(f"flowrun {run}: {chosen} approved with action {action} ({resumes})")
    return EXIT_OK


def _who() -> str:
    try:
        return f"flowctl ({getpass.getuser()})"
    except (KeyError, OSError):
        return "flowctl"


COMMANDS = [approve]
