"""Typed params in flowctl: `-p` text read as the declared type, bad params refused (exit 2) before
anything runs or is created, each named."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.flowctl.conftest import flowctl, run_json
from tests.flowctl.test_cluster import flowctl as cluster_flowctl
from tests.operator.cluster import Cluster, flow

SPEC = {
    "paramSchema": {
        "count": {"type": "integer", "required": True, "minimum": 1},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
        "label": {"type": "string"},
        "debug": {"type": "boolean", "default": False},
    },
    "nodes": {
        "show": {
            "run": {"python": "[params['count'], params['mode'], params.get('label'), params['debug']]"},
            "output": "seen",
        }
    },
}


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "typed.yaml"
    path.write_text(yaml.safe_dump(flow("typed", SPEC)))
    return path


def test_run_reads_cli_text_as_the_declared_type(tmp_path: Path) -> None:
    code, status, err = run_json(_file(tmp_path), "-p", "count=20000", "-p", "label=007", "-p", "debug=yes")
    assert code == 0, err
    assert status["output"] == {"seen": [20000, "fast", "007", True]}


def test_run_refuses_bad_params_naming_each(tmp_path: Path) -> None:
    path = _file(tmp_path)
    done = flowctl("run", "--json", path, "-p", "count=many", "-p", "mode=quick", "-p", "lable=x")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # nothing ran
    assert f'{path}: params.count: expected an integer, got the string "many"' in done.stderr
    assert f'{path}: params.mode: must be one of fast, slow; got "quick"' in done.stderr
    assert f"{path}: params.lable: not declared by the flow" in done.stderr
    missing = flowctl("run", "--json", path)
    assert missing.returncode == 2
    assert "params.count: required by the flow (paramSchema.count) and not given" in missing.stderr


def test_lint_flags_a_default_of_the_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    bad = {**SPEC, "paramSchema": {"count": {"type": "integer", "default": "3"}}}
    path.write_text(yaml.safe_dump(flow("bad", bad)))
    done = flowctl("lint", path)
    assert done.returncode == 2
    assert f'{path}: paramSchema.count.default: expected an integer, got the string "3"' in done.stdout


def test_submit_checks_params_before_creating_anything(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    path = _file(tmp_path)
    bad_file = cluster_flowctl(cluster, "submit", str(path), "-n", namespace, "-p", "mode=quick")
    assert bad_file.returncode == 2, bad_file.stderr
    assert "params.mode: must be one of fast, slow" in bad_file.stderr
    assert "params.count: required by the flow" in bad_file.stderr
    cluster.apply(namespace, flow("typed", SPEC))
    bad_ref = cluster_flowctl(cluster, "submit", "typed", "-n", namespace, "-p", "count=0")
    assert bad_ref.returncode == 2, bad_ref.stderr
    assert "flowctl: Flow 'typed': params.count: must be at least 1; got 0" in bad_ref.stderr
    assert cluster.list("flowruns", namespace) == []
    good = cluster_flowctl(
        cluster, "submit", "typed", "-n", namespace, "-p", "count=5", "-p", "label=42", "--output", "seen"
    )
    assert good.returncode == 0, good.stderr
    run = good.stdout.strip()
    body = cluster.get("flowrun", run, namespace)
    assert body is not None and body["spec"]["params"] == {"count": 5, "label": "42"}
    status = cluster.wait_phase(run, namespace, "Succeeded", "Failed")
    assert status["output"] == {"seen": [5, "fast", "42", False]}, status
