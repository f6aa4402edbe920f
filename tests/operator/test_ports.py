"""Operators started by tests and benchmarks never take a fixed port, so two can run on one
machine (the operator's default metrics port, 8080, would collide): every launch passes
``--metrics-port`` (0: off), and the install test moves the deployed operator to free ports."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_scenarios_operator_serves_no_metrics_port() -> None:
    source = (ROOT / "tests" / "operator" / "cluster.py").read_text(encoding="utf-8")
    launch = source[source.index('"flowlib-operator"') :]
    assert re.search(r'"--metrics-port",\s*"0"', launch), "the scenarios' operator must not bind 8080"


def test_no_test_or_benchmark_launches_an_operator_on_its_own() -> None:
    """Operators come from OperatorProcess (tests.operator.cluster) or from deployed manifests whose
    ports the install test replaces; nothing else starts the console script."""
    launchers = []
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        if re.search(r'/\s*"flowlib-operator"|(Popen|run)\(\s*\[\s*"flowlib-operator"|"-m",\s*"flowlib_operator', text):
            launchers.append(path.relative_to(ROOT).as_posix())
    assert launchers == ["tests/operator/cluster.py"]
    install = (ROOT / "tests" / "deploy" / "test_install_kubesim.py").read_text(encoding="utf-8")
    assert "_free_port()" in install and "--metrics-port" in install
