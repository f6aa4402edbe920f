"""`flowctl submit --watch` / `status --watch`: the run's node tree, live, until the run ends.

The first tests drive ``TreeWatcher`` with FlowRuns handed in one by one (what it prints for each
look, on a terminal and elsewhere). The others run the real console script against the operator:
through a pipe (a report only on change, no escape codes) with a run held at an approval node until
the test has read the live report, so "live" is shown by order, not by clocks; and under a
pseudo-terminal (redrawn in place).
"""

from __future__ import annotations

import asyncio
import copy
import fcntl
import itertools
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from flowlib_runner.flowctl import main
from flowlib_runner.flowctl.clusterapi import ClusterError
from flowlib_runner.flowctl.watch import TreeWatcher, fit, watch_report
from flowlib_runner.kube.client import ApiError

from tests.flowctl.test_cluster import BIN, Live, env_for, flowctl
from tests.operator.cluster import Cluster, flow, flowrun

ESC = "\x1b"
NOW = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)


def _flowrun(phase: str, nodes: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "w-1", "namespace": "team-a", "creationTimestamp": "2030-01-01T12:00:00Z"},
        "spec": {"flowRef": {"name": "w"}},
        "status": {"phase": phase, "startTime": "2030-01-01T12:00:01Z", "nodes": nodes, **status},
    }


RUNNING = _flowrun("Running", {"a": {"phase": "Running", "visits": 1, "attempts": 1}}, currentNode="a", progress="0/1")
DONE = _flowrun(
    "Succeeded",
    {"a": {"phase": "Succeeded", "visits": 1, "attempts": 1, "durationSeconds": 1.5}},
    progress="1/1",
    completionTime="2030-01-01T12:00:03Z",
    duration="2s",
)


class Looks:
    """A stand-in for ``ClusterApi``: each ``get_run`` answers the next FlowRun (or raises it)."""

    namespace = "team-a"

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)

    async def get_run(self, name: str) -> dict[str, Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)


def _watch(*answers: dict[str, Any] | Exception, interactive: bool, size: tuple[int, int] = (120, 50)) -> list[str]:
    written: list[str] = []
    clock = iter(NOW.replace(second=30 + i) for i in range(100))
    watcher = TreeWatcher(
        Looks(*answers),  # type: ignore[arg-type]
        "w-1",
        write=written.append,
        interactive=interactive,
        poll=0,
        terminal_size=lambda: os.terminal_size(size),
        clock=lambda: next(clock),
    )
    asyncio.run(watcher.watch())
    return written


def test_elsewhere_a_report_is_printed_only_when_it_changed() -> None:
    written = _watch(RUNNING, RUNNING, RUNNING, DONE, interactive=False)
    assert len(written) == 2, "three looks at an unchanged run print one report (the clock ticking is no change)"
    assert not any(ESC in text for text in written)
    first, last = written
    assert first.startswith("Name:       w-1\n") and "Phase:      Running" in first and "a *" in first
    assert last.startswith("\nName:       w-1\n"), "a blank line between reports"
    assert "Phase:      Succeeded" in last and "Duration:   2s" in last


def test_on_a_terminal_the_report_is_redrawn_in_place_every_look() -> None:
    written = _watch(RUNNING, RUNNING, DONE, interactive=True)
    assert len(written) == 3
    first_lines = written[0].count("\n")
    assert not written[0].startswith(ESC), "the first draw starts where the cursor is"
    assert written[1].startswith(f"\r{ESC}[{first_lines}A"), "back to the first line of the last report"
    assert all(text.endswith(f"{ESC}[J") for text in written), "what a longer report left below is cleared"
    assert "Phase:      Succeeded" in written[-1]


def test_a_report_is_cut_to_the_terminal() -> None:
    many = {f"node-{i:02}-{'x' * 80}": {"phase": "Succeeded", "visits": 1} for i in range(30)}
    written = _watch(_flowrun("Succeeded", many), interactive=True, size=(40, 12))
    lines = [line.removesuffix(f"{ESC}[K") for line in written[0].removesuffix(f"{ESC}[J").splitlines()]
    assert len(lines) == 11
    assert all(len(line) <= 39 for line in lines)
    assert lines[-1].startswith("... ")
    assert fit(["a", "b"], 80, 24, "more") == ["a", "b"]


def test_a_suspended_run_says_how_to_decide() -> None:
    waiting = _flowrun(
        "Suspended",
        {"gate": {"phase": "Waiting", "visits": 1}},
        suspended={"node": "gate", "message": "ship it?", "actions": ["approve", "reject"], "since": "x"},
    )
    lines = watch_report(waiting, NOW)
    assert lines[-1] == "Waiting:    at gate: ship it? -- decide with `flowctl approve w-1 --action approve|reject`"


def test_a_run_deleted_while_watched_is_said_so() -> None:
    gone = ClusterError('no FlowRun named "w-1"')
    gone.__cause__ = ApiError(404, "NotFound", 'flowruns "w-1" not found')
    with pytest.raises(ClusterError, match='FlowRun "w-1" was deleted from namespace "team-a" before it finished'):
        _watch(RUNNING, gone, interactive=False)


# -- on the cluster -------------------------------------------------------------------------------

GATED = {
    "nodes": {
        "build": {"run": {"python": "'b1'"}, "output": "build", "next": {"default": "gate"}},
        "gate": {
            "type": "approval",
            "approval": {"message": "ship {{ shared.build }}?"},
            "next": {"approve": "ship", "reject": "stop"},
        },
        "ship": {"run": {"python": "'shipped'"}},
        "stop": {"run": {"python": "'stopped'"}},
    }
}


def _reports(lines: list[str]) -> list[list[str]]:
    """stdout of a watch through a pipe, split into its reports (each starts with `Name:`)."""
    reports: list[list[str]] = []
    for line in lines:
        if line.startswith("Name:"):
            reports.append([])
        if reports:
            reports[-1].append(line)
    return reports


def _node_phases(report: list[str]) -> dict[str, str]:
    header = next(i for i, line in enumerate(report) if line.startswith("NODE"))
    return {line.split()[0]: line.split()[1] for line in report[header + 1 :] if line.strip()}


def test_submit_watch_through_a_pipe_shows_each_change_until_the_run_ends(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, flow("gated", GATED))
    live = Live.start(cluster, "-n", namespace, "submit", "gated", "--watch")
    # The run waits at the approval node until this test decides: the report is read while it is live.
    live.wait_line("the report of the waiting run", lambda line: line.startswith("Waiting:    at gate: ship b1?"))
    run = next(line for line in live.err if "created" in line).split("flowrun ", 1)[1].split()[0]
    assert cluster.run_status(run, namespace)["phase"] == "Suspended"
    assert live.process.poll() is None, "the watch goes on while the run waits for a decision"
    decided = flowctl(cluster, "approve", run, "--action", "approve", "-n", namespace)
    assert decided.returncode == 0, decided.stderr
    assert live.finish(timeout=90) == 0, live.err
    assert not any(ESC in line for line in live.out), "no escape codes when stdout is not a terminal"
    reports = _reports(live.out)
    assert len(reports) >= 2
    steady = [[line for line in report if "ago)" not in line and not line.startswith("Elapsed:")] for report in reports]
    assert all(a != b for a, b in itertools.pairwise(steady)), "a report only when something changed"
    assert any("Phase:      Suspended" in report for report in reports[:-1])
    assert "Phase:      Succeeded" in reports[-1]
    phases = _node_phases(reports[-1])
    assert phases["gate"] == phases["ship"] == "Succeeded"
    assert any(f"{run} Succeeded" in line for line in live.err), live.err


def test_status_watch_exits_with_the_result_of_a_failed_run(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace, flow("broken", {"nodes": {"boom": {"run": {"python": "1/0"}}}}), flowrun("broken-1", "broken")
    )
    runner = CliRunner()
    # --kubeconfig, not $KUBECONFIG: the kubernetes client reads the variable once, when imported.
    target = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    done = runner.invoke(main, [*target, "status", "broken-1", "--watch"])
    assert done.exit_code == 1, (done.output, done.stderr)
    reports = _reports(done.stdout.splitlines())
    assert "Phase:      Failed" in reports[-1]
    assert "broken-1 Failed" in done.stderr
    both = runner.invoke(main, [*target, "status", "broken-1", "--watch", "--json"])
    assert both.exit_code == 2 and "--watch and --json exclude each other" in both.stderr
    neither = runner.invoke(main, [*target, "submit", "broken", "--watch", "--follow"])
    assert neither.exit_code == 2 and "exclude each other" in neither.stderr


def _on_a_terminal(
    command: list[str], env: dict[str, str], when: str, then: Callable[[], None], timeout: float = 90
) -> tuple[int, str, str]:
    """Run ``command`` with stdout on a 100x40 pseudo-terminal, calling ``then`` once the terminal
    shows ``when``; (exit code, everything the terminal got, stderr)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(command, env={**env, "TERM": "xterm"}, stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    got, done_then = bytearray(), False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # EIO: the last holder of the terminal closed it
                    break
                if not chunk:
                    break
                got += chunk
                if not done_then and when in got.decode(errors="replace"):
                    done_then = True
                    then()
            elif process.poll() is not None:
                break
        if process.poll() is None:
            process.kill()
        code = process.wait(timeout=10)
    finally:
        os.close(controller)
    assert process.stderr is not None
    assert done_then, f"the terminal never showed {when!r}: {got.decode(errors='replace')[-2000:]}"
    return code, got.decode(errors="replace"), process.stderr.read().decode(errors="replace")


def test_submit_watch_on_a_terminal_redraws_the_tree_in_place(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, flow("gated", GATED))

    def approve() -> None:
        (run,) = [r["metadata"]["name"] for r in cluster.list("flowruns", namespace)]
        decided = flowctl(cluster, "approve", run, "--action", "approve", "-n", namespace)
        assert decided.returncode == 0, decided.stderr

    code, screen, err = _on_a_terminal(
        [str(BIN / "flowctl"), "submit", "gated", "--watch", "-n", namespace],
        env_for(cluster),
        when="Waiting:    at gate",
        then=approve,
    )
    assert code == 0, err
    assert f"\r{ESC}[" in screen and "A" in screen.split(f"\r{ESC}[", 1)[1][:4], "the cursor goes back up to redraw"
    assert f"{ESC}[K" in screen and screen.rstrip().endswith(f"{ESC}[J"), screen[-500:]
    assert "Phase:      Succeeded" in screen.rsplit("Name:", 1)[1]
    assert "Succeeded" in err
