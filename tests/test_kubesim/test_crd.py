"""CustomResourceDefinitions, following
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
(structural schemas, validation, defaulting, pruning, preserve-unknown-fields, printer columns,
categories, short names) and https://kubernetes.io/docs/reference/using-api/cel/ (validation rules).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, install_widgets, widget

pytestmark = pytest.mark.kubesim
WD = "/apis/test.kubesim.dev/v1alpha1/namespaces/default/widgets"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(workdir=tmp_path_factory.mktemp("crd")).start()
    install_widgets(s)
    yield s
    s.stop()


@pytest.fixture
def raw(sim: Simulator) -> Raw:
    return Raw(sim)


def causes(reply: object) -> list[tuple[str, str]]:
    body = reply.body  # type: ignore[attr-defined]
    return [(c["field"], c["message"]) for c in body["details"]["causes"]]


def test_crd_becomes_established_with_accepted_names(raw: Raw) -> None:
    crd = raw.get(f"{CRDS}/widgets.test.kubesim.dev").body
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"


def test_defaults_are_applied(raw: Raw) -> None:
    created = raw.post(WD, widget("defaults")).body
    assert created["spec"]["size"] == 3 and created["spec"]["mode"] == "safe"


def test_unknown_fields_are_pruned_but_preserved_islands_kept(raw: Raw) -> None:
    body = widget("prune", flowRef=None)
    del body["spec"]["flowRef"]
    body["spec"]["flow"] = {"nodes": [{"anything": True}], "deep": {"x": 1}}
    body["spec"]["unknown"] = "dropped"
    body["topLevel"] = 1
    created = raw.post(WD, body).body
    assert created["spec"]["flow"] == {"nodes": [{"anything": True}], "deep": {"x": 1}}
    assert "unknown" not in created["spec"] and "topLevel" not in created


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"image": "x", "flowRef": "f", "size": "big"}, "spec.size", "must be of type integer"),
        ({"image": "x", "flowRef": "f", "size": 11}, "spec.size", "less than or equal to 10"),
        ({"image": "x", "flowRef": "f", "size": 0}, "spec.size", "greater than or equal to 1"),
        ({"image": "x", "flowRef": "f", "mode": "slow"}, "spec.mode", 'supported values: "fast", "safe"'),
        ({"image": "x", "flowRef": "f", "name": "ABC"}, "spec.name", "should match"),
        ({"image": "x", "flowRef": "f", "tags": ["a", "b", "c", "d"]}, "spec.tags", "must have at most 3 items"),
        ({"flowRef": "f"}, "spec.image", "Required value"),
        ({"image": "", "flowRef": "f"}, "spec.image", "at least 1 chars long"),
    ],
)
def test_schema_validation_is_422_with_field_causes(
    raw: Raw, spec: dict[str, object], field: str, fragment: str
) -> None:
    r = raw.post(WD, {**widget("bad"), "spec": spec})
    assert r.status == 422 and r.body["reason"] == "Invalid"
    assert any(f == field and fragment in m for f, m in causes(r)), causes(r)


def test_cel_exactly_one_rule(raw: Raw) -> None:
    both = raw.post(WD, {**widget("both"), "spec": {"image": "x", "flowRef": "f", "flow": {}}})
    neither = raw.post(WD, {**widget("neither"), "spec": {"image": "x"}})
    for r in (both, neither):
        assert r.status == 422
        assert causes(r) == [("spec", 'Invalid value: "object": exactly one of flowRef or flow must be set')]


def test_cel_transition_rule_makes_image_immutable(raw: Raw) -> None:
    raw.post(WD, widget("immut"))
    r = raw.patch(f"{WD}/immut", {"spec": {"image": "other"}})
    assert r.status == 422 and "image is immutable" in r.body["message"]
    assert raw.patch(f"{WD}/immut", {"spec": {"size": 4}}).status == 200


def test_crd_with_uncompilable_rule_or_bad_name_is_rejected(raw: Raw) -> None:
    crd = raw.get(f"{CRDS}/widgets.test.kubesim.dev").body
    bad = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.name.dev"},
        "spec": {**crd["spec"], "group": "other.dev", "names": {"plural": "gadgets", "kind": "Gadget"}},
    }
    r = raw.post(CRDS, bad)
    assert r.status == 422 and any(f == "metadata.name" for f, _ in causes(r))
    versions = crd["spec"]["versions"]
    rule = {"rule": "self.(", "message": "broken"}
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-validations": [rule]}}
    bad2 = {
        **bad,
        "metadata": {"name": "gadgets.other.dev"},
        "spec": {**bad["spec"], "versions": [{**versions[0], "schema": schema}]},
    }
    r2 = raw.post(CRDS, bad2)
    assert r2.status == 422 and "compilation failed" in r2.body["message"]


def test_table_with_printer_columns_and_priority(raw: Raw) -> None:
    raw.post(WD, widget("tbl", size=7))
    raw.patch(f"{WD}/tbl/status", {"status": {"phase": "Done", "conditions": [{"type": "Ready", "status": "True"}]}})
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = raw.get(f"{WD}/tbl", headers=accept).body
    assert table["kind"] == "Table"
    cols = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert cols == [("Name", 0), ("Phase", 0), ("Size", 0), ("Ready", 0), ("Image", 1), ("Age", 0)]
    assert table["rows"][0]["cells"][:5] == ["tbl", "Done", 7, "True", "busybox"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_cluster_scoped_crd_and_crd_deletion_removes_instances(sim: Simulator, raw: Raw) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "knobs.test.kubesim.dev"},
        "spec": {
            "group": "test.kubesim.dev",
            "scope": "Cluster",
            "names": {"plural": "knobs", "kind": "Knob"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    assert raw.post(CRDS, crd).status == 201
    knob = {"apiVersion": "test.kubesim.dev/v1", "kind": "Knob", "metadata": {"name": "k1"}, "anything": {"goes": 1}}
    assert raw.post("/apis/test.kubesim.dev/v1/knobs", knob).status == 201
    assert raw.get("/apis/test.kubesim.dev/v1/knobs/k1").body["anything"] == {"goes": 1}
    sim.kubectl("delete", "crd", "knobs.test.kubesim.dev", "--timeout=10s")
    assert raw.get("/apis/test.kubesim.dev/v1/knobs/k1").status == 404
    assert all(r["name"] != "knobs" for r in raw.get("/apis/test.kubesim.dev/v1alpha1").body["resources"])
