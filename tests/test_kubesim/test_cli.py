"""``python -m tests.kubesim --kubeconfig PATH`` prints ``ready <url>`` and runs until SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kubesim
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_serves_until_signalled(tmp_path: Path, sig: int) -> None:
    config = tmp_path / "kube" / "config"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kubesim", "--kubeconfig", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready https://127.0.0.1:")
        env = {**os.environ, "KUBECONFIG": str(config)}
        out = subprocess.run(
            ["kubectl", "get", "ns", "default", "-o", "name"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        )
        assert out.stdout.strip() == "namespace/default"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_signals_during_shutdown_do_not_hang(tmp_path: Path) -> None:
    """More SIGTERM/SIGINT while the first one is being handled (an impatient supervisor, Ctrl-C
    twice) must neither deadlock the shutdown nor kill the process: it stops the simulator and
    exits 0. A stream of signals lands some inside the previous handler and during
    ``Simulator.stop()`` and the interpreter's exit."""
    config = tmp_path / "config"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kubesim", "--kubeconfig", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ready https://127.0.0.1:")
        sent = 0
        while proc.poll() is None and sent < 100_000:
            try:
                os.kill(proc.pid, signal.SIGTERM if sent % 2 == 0 else signal.SIGINT)
            except ProcessLookupError:
                break  # it is gone (a zombie until waited for)
            sent += 1
        assert sent >= 2
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
