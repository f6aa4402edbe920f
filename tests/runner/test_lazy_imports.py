"""The in-cluster runner's start stays lean: what it does not need before its first node is not imported.

Issue 14: a runner pod must reach its first node within 0.3 s, and nearly all of that time is
imports (``benchmarks/runner_start_bench.py``). These modules were deferred to their first use; an
eager import of one of them again would silently cost the start tens of milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

DEFERRED = (
    "jinja2",  # definition.templates: only flows with templates
    "rich",  # execution.reporting.console: flowctl's live table only
    "yaml",  # definition.yamlread: texts only; the runner loads its snapshot as an object
    "kubernetes",  # kube.config: kubeconfig files only
    "flowlib_runner.store.directory",  # store backends: the one a run's location names
    "flowlib_runner.store.s3",
    "boto3",
)


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_runner_import_defers_what_the_start_does_not_need() -> None:
    loaded = _modules_after("import flowlib_runner.incluster.main")
    assert sorted(loaded & set(DEFERRED)) == []


def test_the_collector_runs_again_after_the_runner_import() -> None:
    code = (
        "import flowlib_runner.incluster.main, gc, sys; sys.exit(0 if gc.isenabled() and gc.get_freeze_count() else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_deferred_names_still_resolve() -> None:
    loaded = _modules_after(
        "from flowlib_runner.execution.reporting import ConsoleReporter; "
        "from flowlib_runner.store import ConfigMapStore, DirectoryStore, S3Store, open_store"
    )
    assert {"rich", "flowlib_runner.store.directory", "flowlib_runner.store.s3"} <= loaded
