"""The docs that are derived from code stay in step with it."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.deploy.manifests import ROOT


def test_reference_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack/gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_reference_documents_every_spec_field() -> None:
    text = (ROOT / "docs/reference.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "crds").glob("*.flowlib.dev.yaml")):
        name = path.name
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for field in spec["properties"]:
            assert f"| `spec.{field}` |" in text, f"{name}: spec.{field}"


def test_operations_lists_every_metric() -> None:
    from flowlib_operator import metrics

    text = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(flowlib_[a-z_]+)`", text))
    exported = set()
    for collector in metrics.REGISTRY._collector_to_names:
        for family in collector.describe():
            name = family.name
            exported.add(name + "_total" if family.type == "counter" else name)
    assert exported == documented


def test_operations_explains_every_rbac_rule() -> None:
    text = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    role = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy/base/operator-rbac.yaml").read_text(encoding="utf-8"))
        if d["kind"] == "ClusterRole"
    )
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for rule in role["rules"]:
        group = rule["apiGroups"][0] or '""'
        resources = ", ".join(rule["resources"])
        verbs = set(rule["verbs"])
        matching = [r for r in rows if r.startswith(f"| {group} | {resources} |")]
        assert matching, f"no row for {group} {resources}"
        assert {v.strip() for v in matching[0].split("|")[3].split(",")} == verbs, matching[0]
