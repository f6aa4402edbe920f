"""The unmodified kubectl binary against the simulator: apply (default client-side validation
path, which uses /openapi/v3 and server-side fieldValidation=Strict), get with printer columns and
output formats, patch, wait, get -w, logs -f, describe, delete.
Docs: https://kubernetes.io/docs/reference/kubectl/ and the CRD printer-columns section of
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubesim import Simulator

from .helpers import CRD_PATH, install_widgets

pytestmark = pytest.mark.kubesim
WIDGET_A = str(Path(__file__).with_name("manifests") / "widget-a.yaml")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(workdir=tmp_path_factory.mktemp("kubectl")).start()
    install_widgets(s)
    yield s
    s.stop()


def test_apply_uses_openapi_v3_and_strict_field_validation(sim: Simulator) -> None:
    with sim.recording() as log:
        out = sim.kubectl("apply", "-f", WIDGET_A).stdout
    assert out.strip() in ("widget.test.kubesim.dev/alpha created", "widget.test.kubesim.dev/alpha unchanged")
    paths = [p for _, p in log]
    assert any(p.startswith("/openapi/v3/apis/test.kubesim.dev/v1alpha1") for p in paths)
    assert any("fieldValidation=Strict" in p for m, p in log if m in ("POST", "PATCH"))
    assert sim.kubectl("apply", "-f", WIDGET_A).stdout.strip() == "widget.test.kubesim.dev/alpha unchanged"


def test_apply_rejects_unknown_fields_like_a_real_server(sim: Simulator, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(WIDGET_A)
        .read_text()
        .replace("flowRef: hello", "flowRef: hello\n  colour: red")
        .replace("name: alpha", "name: typo")
    )
    r = sim.kubectl("apply", "-f", str(bad), check=False)
    assert r.returncode == 1 and 'unknown field "spec.colour"' in r.stderr


def test_apply_update_uses_three_way_merge(sim: Simulator, tmp_path: Path) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    changed = tmp_path / "a.yaml"
    changed.write_text(
        Path(WIDGET_A)
        .read_text()
        .replace("flowRef: hello", "flowRef: hello\n  size: 5")
        .replace("tier: one", "tier: two")
    )
    assert sim.kubectl("apply", "-f", str(changed)).stdout.strip() == "widget.test.kubesim.dev/alpha configured"
    obj = json.loads(sim.kubectl("get", "widget", "alpha", "-o", "json").stdout)
    assert (
        obj["spec"]["size"] == 5 and obj["metadata"]["labels"] == {"tier": "two"} and obj["metadata"]["generation"] == 2
    )
    sim.kubectl("apply", "-f", WIDGET_A)
    assert (
        json.loads(sim.kubectl("get", "wd", "alpha", "-o", "json").stdout)["spec"]["size"] == 3
    )  # back to the default


def test_get_printer_columns_wide_json_jsonpath(sim: Simulator) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    sim.kubectl(
        "patch",
        "wd",
        "alpha",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}',
    )
    lines = sim.kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "SIZE", "READY", "AGE"]
    assert lines[1].split()[:4] == ["alpha", "Running", "3", "True"]
    wide = sim.kubectl("get", "wd", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "PHASE", "SIZE", "READY", "IMAGE", "AGE"] and "busybox:1.36" in wide[1]
    assert sim.kubectl("get", "kubesim-all").stdout.splitlines()[1].startswith("alpha")
    assert sim.kubectl("get", "wd", "alpha", "-o", "jsonpath={.spec.image}").stdout == "busybox:1.36"
    assert json.loads(sim.kubectl("get", "wd", "-o", "json").stdout)["kind"] == "List"


def test_patch_merge_json_and_status(sim: Simulator) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    sim.kubectl("patch", "wd", "alpha", "--type=merge", "-p", '{"spec":{"tags":["a"]}}')
    sim.kubectl("patch", "wd", "alpha", "--type=json", "-p", '[{"op":"add","path":"/spec/tags/-","value":"b"}]')
    assert sim.kubectl("get", "wd", "alpha", "-o", "jsonpath={.spec.tags}").stdout == '["a","b"]'
    bad = sim.kubectl(
        "patch", "wd", "alpha", "--type=json", "-p", '[{"op":"replace","path":"/spec/image","value":"x"}]', check=False
    )
    assert bad.returncode == 1 and "image is immutable" in bad.stderr
    smp = sim.kubectl("patch", "wd", "alpha", "-p", '{"spec":{"size":4}}', check=False)
    assert smp.returncode == 1 and "application/strategic-merge-patch+json is not supported" in smp.stderr
    sim.kubectl("patch", "wd", "alpha", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Done"}}')
    assert sim.kubectl("get", "wd", "alpha", "-o", "jsonpath={.status.phase}").stdout == "Done"


def test_wait_for_jsonpath_and_get_watch(sim: Simulator) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    sim.kubectl("patch", "wd", "alpha", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Pending"}}')
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    waiter = subprocess.Popen(
        ["kubectl", "wait", "--for=jsonpath={.status.phase}=Ready", "wd/alpha", "--timeout=20s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watcher = subprocess.Popen(
        ["kubectl", "get", "wd", "-w", "--no-headers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first.split()[:2] == ["alpha", "Pending"]
        time.sleep(0.3)
        sim.kubectl(
            "patch", "wd", "alpha", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}'
        )
        assert watcher.stdout.readline().split()[:2] == ["alpha", "Ready"]
        out, err = waiter.communicate(timeout=20)
        assert waiter.returncode == 0, err
        assert out.strip() == "widget.test.kubesim.dev/alpha condition met"
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        waiter.kill()
        waiter.wait(timeout=10)


def test_describe_shows_spec_status_and_events(sim: Simulator) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    out = sim.kubectl("describe", "wd", "alpha").stdout
    assert "Name:         alpha" in out and "Image:" in out and "busybox:1.36" in out and "Events:" in out


def test_delete_and_wait_for_deletion(sim: Simulator) -> None:
    sim.kubectl("apply", "-f", WIDGET_A)
    assert (
        sim.kubectl("delete", "-f", WIDGET_A, "--wait=true", "--timeout=10s").stdout.strip()
        == 'widget.test.kubesim.dev "alpha" deleted'
    )
    r = sim.kubectl("get", "wd", "alpha", check=False)
    assert r.returncode == 1 and 'widgets.test.kubesim.dev "alpha" not found' in r.stderr


def test_builtin_apply_uses_strategic_merge_patch(sim: Simulator, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n")
    sim.kubectl("apply", "-f", str(manifest))
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  b: '2'\n")
    with sim.recording() as log:
        sim.kubectl("apply", "-f", str(manifest))
    assert any(m == "PATCH" for m, _ in log)
    assert json.loads(sim.kubectl("get", "cm", "applied", "-o", "json").stdout)["data"] == {"b": "2"}


def test_crd_apply_twice_and_explain(sim: Simulator) -> None:
    assert "unchanged" in sim.kubectl("apply", "-f", CRD_PATH).stdout
    assert "crd" in sim.kubectl("api-resources", "--api-group=apiextensions.k8s.io").stdout
