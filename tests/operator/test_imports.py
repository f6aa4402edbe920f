"""The operator process never loads what runs user code: checked on a fresh interpreter's
``sys.modules`` after importing the operator's entry point (import-linter checks the source; this
checks what Python really loads, lazy imports and the runner's facade included)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN_PREFIXES = (
    "flowlib_runner.execution",
    "flowlib_runner.incluster",
    "flowlib_runner.flowctl",
    "flowlib_runner.definition.build",
    "flowlib_runner.definition.factories.nodes",
    "flowlib.",  # the engine: the operator builds no graph
    "rich",
)


def _loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout))


def test_the_operator_loads_validation_but_nothing_that_runs_flows() -> None:
    loaded = _loaded_after("import flowlib_operator.main")
    offending = sorted(m for m in loaded if m == "flowlib" or m.startswith(FORBIDDEN_PREFIXES))
    assert offending == []
    # What validation needs is there: the definition layer (Jinja2's parser comes with the first
    # template it reads, as in the runner).
    assert {"flowlib_runner.definition.validate", "flowlib_runner.definition.templates"} <= loaded
    assert "flowlib_api.resources" in loaded


def test_the_check_itself_sees_the_modules_that_run_flows() -> None:
    """The same check after importing the runner program finds them, so the test above can fail."""
    loaded = _loaded_after("import flowlib_runner.incluster.main")
    assert "flowlib_runner.execution.execute" in loaded and "flowlib" in loaded
