"""`kubectl flow` after a plain `pip install`: the package declares a `kubectl-flow` console script
(kubectl runs any `kubectl-NAME` it finds on PATH as `kubectl NAME`), the installed script runs, and
kubectl finds it once pip's bin directory is on PATH, which the README says.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.deploy.manifests import ROOT

BIN = Path(sys.executable).parent
ENTRY = "flowlib_runner.flowctl:main"


def test_the_package_declares_flowctl_and_the_kubectl_plugin() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["flowctl"] == ENTRY
    assert scripts["kubectl-flow"] == ENTRY, "the plugin is flowctl under the name kubectl looks for"


def test_the_installed_distribution_carries_the_entry_point() -> None:
    """What pip wrote when it installed the package: the same metadata any `pip install` writes."""
    (point,) = importlib.metadata.entry_points(group="console_scripts", name="kubectl-flow")
    assert point.value == ENTRY
    assert point.dist is not None and point.dist.name == "flowlib-operator"


def test_the_installed_script_runs_and_kubectl_finds_it_on_path() -> None:
    script = BIN / "kubectl-flow"
    assert script.is_file() and os.access(script, os.X_OK), f"pip installed no {script}"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "submit" in done.stdout and "--namespace" in done.stdout
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    plugins = subprocess.run(
        ["kubectl", "plugin", "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert str(script) in plugins.stdout, plugins.stdout + plugins.stderr
    version = subprocess.run(
        ["kubectl", "flow", "--version"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0 and "flowctl, version" in version.stdout, version.stdout + version.stderr


def test_the_readme_says_how_to_install_the_cli_and_the_operator() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "kubectl-flow" in readme and "PATH" in readme and "kubectl plugin list" in readme
    assert "kubectl apply -k deploy/" in readme  # the command tests/deploy/test_install_kubesim.py runs once
    assert "second time" not in readme and "twice" not in readme
