"""Helpers for running `flowctl` as users do: a separate process, real exit codes and streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def flowctl_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "flowlib_runner.flowctl", *map(str, args)]


def flowctl(*args: str | os.PathLike[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run flowctl to completion; stdout and stderr are kept apart."""
    return subprocess.run(
        flowctl_command(*args), check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def run_json(*args: str | os.PathLike[str]) -> tuple[int, dict[str, Any], str]:
    """`flowctl run --json ...`: exit code, the status parsed from stdout, and stderr (the logs)."""
    done = flowctl("run", "--json", *args)
    try:
        status = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"stdout is not JSON (exit {done.returncode}):\n{done.stdout}\nstderr:\n{done.stderr}")
    return done.returncode, status, done.stderr
