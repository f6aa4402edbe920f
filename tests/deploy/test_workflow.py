"""The GitHub Actions workflow runs the unit tests and the kind e2e through the make targets."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.manifests import ROOT


def _workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load((ROOT / ".github/workflows/ci.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_workflow_runs_on_pushes_and_pull_requests() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_jobs_use_the_make_targets() -> None:
    jobs = _workflow()["jobs"]
    runs = {name: [step.get("run") for step in job["steps"]] for name, job in jobs.items()}
    assert "make test" in runs["test"]
    assert "make e2e" in runs["e2e"]
    assert jobs["e2e"]["needs"] == "test"
    for job in jobs.values():
        assert job["timeout-minutes"] <= 90
        for step in job["steps"]:
            if "uses" in step:
                assert "@" in step["uses"], f"{step['uses']} is not pinned to a version"
        python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
        assert python["with"]["python-version"] == "3.11"
