"""kopf (standalone mode) against the simulator: create/update/delete handlers, its finalizer,
status patching through the status subresource, and owner references with garbage collection.
Docs: https://kopf.readthedocs.io/en/stable/ and
https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubesim import Simulator

from .helpers import eventually, install_widgets

pytestmark = [pytest.mark.kubesim, pytest.mark.slow]
OPERATOR = Path(__file__).with_name("operators") / "widget_operator.py"
WIDGET = """apiVersion: test.kubesim.dev/v1alpha1
kind: Widget
metadata: {name: kw}
spec: {image: busybox, flowRef: f, size: %d}
"""


@pytest.fixture
def operator(kubesim: Simulator, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    install_widgets(kubesim)
    env = {**os.environ, "KUBECONFIG": str(kubesim.kubeconfig)}
    log = open(tmp_path / "kopf.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default", str(OPERATOR)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            print((tmp_path / "kopf.log").read_text()[-4000:])


def test_kopf_operator_lifecycle(kubesim: Simulator, operator: subprocess.Popen[str]) -> None:
    kubesim.kubectl("apply", "-f", "-", input=WIDGET % 3)
    kubesim.kubectl("wait", "--for=jsonpath={.status.phase}=Created", "widget/kw", "--timeout=30s")
    widget = json.loads(kubesim.kubectl("get", "widget", "kw", "-o", "json").stdout)
    assert "test.kubesim.dev/kopf" in widget["metadata"]["finalizers"]
    # kopf stores the handler's result in status.created, which the CRD's status schema does not
    # declare: a real server prunes it (kopf logs "inconsistencies"), and so does the simulator.
    assert "created" not in widget["status"]
    cm = json.loads(kubesim.kubectl("get", "configmap", "kw-cfg", "-o", "json").stdout)
    ref = cm["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("Widget", "kw", widget["metadata"]["uid"])

    kubesim.kubectl("apply", "-f", "-", input=WIDGET % 5)
    kubesim.kubectl("wait", "--for=jsonpath={.status.phase}=Resized-5", "widget/kw", "--timeout=30s")

    kubesim.kubectl("delete", "widget", "kw", "--timeout=30s")
    assert kubesim.kubectl("get", "configmap", "kw-tombstone", check=False).returncode == 0
    eventually(lambda: kubesim.kubectl("get", "configmap", "kw-cfg", check=False).returncode == 1)
    assert operator.poll() is None
