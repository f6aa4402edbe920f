"""The project's own CRDs (crds/, a kustomization) on the simulator: they must install with kubectl, and their
CEL rules (exactly-one and immutability transition rules) must be enforced as a real server would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kubesim import Simulator

pytestmark = pytest.mark.kubesim
CRDS = Path(__file__).resolve().parents[2] / "crds"
FLOWRUN = """apiVersion: flowlib.dev/v1alpha1
kind: FlowRun
metadata: {name: run1}
spec: {flowRef: {name: hello}}
"""


@pytest.fixture
def installed(kubesim: Simulator) -> Simulator:
    if not (CRDS / "flowruns.flowlib.dev.yaml").exists():
        pytest.skip(reason="crds/flowruns.flowlib.dev.yaml is not in this checkout")
    kubesim.kubectl("apply", "-k", str(CRDS))
    kubesim.kubectl("wait", "--for=condition=Established", "crd/flowruns.flowlib.dev", "--timeout=10s")
    return kubesim


def test_flowrun_crd_installs_and_serves(installed: Simulator) -> None:
    assert "flowrun.flowlib.dev/run1 created" in installed.kubectl("apply", "-f", "-", input=FLOWRUN).stdout
    header = installed.kubectl("get", "flowruns").stdout.splitlines()[0].split()
    assert header[0] == "NAME" and len(header) > 2  # the CRD's printer columns
    assert installed.kubectl("get", "fr", "run1", "-o", "jsonpath={.spec.flowRef.name}").stdout == "hello"


def test_flowrun_rules_are_enforced(installed: Simulator) -> None:
    installed.kubectl("apply", "-f", "-", input=FLOWRUN)
    both = installed.kubectl(
        "apply", "-f", "-", input=FLOWRUN.replace("run1", "run2").replace("}}", "}, flow: {}}"), check=False
    )
    assert both.returncode == 1 and "is invalid" in both.stderr
    changed = installed.kubectl(
        "patch", "fr", "run1", "--type=merge", "-p", '{"spec":{"flowRef":{"name":"other"}}}', check=False
    )
    assert changed.returncode == 1 and "spec.flowRef" in changed.stderr and "is invalid" in changed.stderr
    status = installed.kubectl(
        "patch", "fr", "run1", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Running"}}'
    )
    assert status.returncode == 0
    assert installed.kubectl("get", "fr", "run1", "-o", "jsonpath={.status.phase}").stdout == "Running"
