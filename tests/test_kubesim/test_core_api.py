"""Verb semantics of the API server.

Docs followed: https://kubernetes.io/docs/reference/using-api/api-concepts/ (verbs, resourceVersion,
dry run, chunking, field validation), https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
(generateName, uid), https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/
(Status errors), https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, install_widgets, widget

pytestmark = pytest.mark.kubesim


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(workdir=tmp_path_factory.mktemp("core")).start()
    install_widgets(s)
    yield s
    s.stop()


@pytest.fixture
def raw(sim: Simulator) -> Raw:
    return Raw(sim)


CM = "/api/v1/namespaces/default/configmaps"
WD = "/apis/test.kubesim.dev/v1alpha1/namespaces/default/widgets"


def test_create_assigns_metadata_and_generate_name(raw: Raw) -> None:
    r = raw.post(CM, {"metadata": {"generateName": "gen-"}, "data": {"a": "1"}})
    assert r.status == 201
    meta = r.body["metadata"]
    assert meta["name"].startswith("gen-") and len(meta["name"]) == len("gen-") + 5
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"].isdigit()
    assert r.body["kind"] == "ConfigMap" and r.body["apiVersion"] == "v1"


def test_already_exists_and_not_found_are_status_objects(raw: Raw) -> None:
    assert raw.post(CM, {"metadata": {"name": "dup"}}).status == 201
    again = raw.post(CM, {"metadata": {"name": "dup"}})
    assert again.status == 409
    assert again.body["kind"] == "Status" and again.body["reason"] == "AlreadyExists"
    assert again.body["details"] == {"name": "dup", "kind": "configmaps"}
    missing = raw.get(f"{CM}/nope")
    assert missing.status == 404 and missing.body["reason"] == "NotFound"
    assert missing.body["message"] == 'configmaps "nope" not found'


def test_invalid_name_is_422_with_causes(raw: Raw) -> None:
    r = raw.post(CM, {"metadata": {"name": "Not_Valid"}})
    assert r.status == 422 and r.body["reason"] == "Invalid"
    assert r.body["details"]["causes"][0]["field"] == "metadata.name"


def test_missing_namespace_is_404(raw: Raw) -> None:
    r = raw.post("/api/v1/namespaces/absent/configmaps", {"metadata": {"name": "x"}})
    assert r.status == 404 and 'namespaces "absent" not found' in r.body["message"]


def test_update_with_stale_resource_version_conflicts(raw: Raw) -> None:
    created = raw.post(CM, {"metadata": {"name": "rv"}, "data": {"a": "1"}}).body
    first = dict(created, data={"a": "2"})
    assert raw.put(f"{CM}/rv", first).status == 200
    stale = raw.put(f"{CM}/rv", dict(created, data={"a": "3"}))
    assert stale.status == 409 and stale.body["reason"] == "Conflict"
    assert "the object has been modified" in stale.body["message"]


def test_no_op_update_keeps_resource_version(raw: Raw) -> None:
    created = raw.post(CM, {"metadata": {"name": "noop"}, "data": {"a": "1"}}).body
    again = raw.put(f"{CM}/noop", created).body
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_resource_versions_come_from_one_global_counter(raw: Raw) -> None:
    a = raw.post(CM, {"metadata": {"name": "g1"}}).body["metadata"]["resourceVersion"]
    b = raw.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "g2"}}).body["metadata"]["resourceVersion"]
    assert int(b) > int(a)


def test_generation_bumps_on_spec_change_only(raw: Raw) -> None:
    raw.post(WD, widget("gen"))
    base = raw.get(f"{WD}/gen").body
    assert base["metadata"]["generation"] == 1
    labelled = raw.patch(f"{WD}/gen", {"metadata": {"labels": {"x": "y"}}}).body
    assert labelled["metadata"]["generation"] == 1
    status = raw.patch(f"{WD}/gen/status", {"status": {"phase": "Running"}}).body
    assert status["metadata"]["generation"] == 1
    changed = raw.patch(f"{WD}/gen", {"spec": {"size": 5}}).body
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_rules(raw: Raw) -> None:
    """Writes to the main resource ignore status; writes to /status ignore everything else."""
    created = raw.post(WD, {**widget("st"), "status": {"phase": "Bogus"}}).body
    assert "status" not in created
    main = raw.patch(f"{WD}/st", {"spec": {"size": 4}, "status": {"phase": "Ignored"}}).body
    assert "status" not in main and main["spec"]["size"] == 4
    st = raw.patch(f"{WD}/st/status", {"spec": {"size": 9}, "status": {"phase": "Running"}}).body
    assert st["status"] == {"phase": "Running"} and st["spec"]["size"] == 4


def test_merge_json_and_strategic_patches(raw: Raw) -> None:
    raw.post(CM, {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}})
    merged = raw.patch(f"{CM}/p", {"metadata": {"labels": {"a": None, "c": "3"}}}).body
    assert merged["metadata"]["labels"] == {"b": "2", "c": "3"}
    ops = [{"op": "test", "path": "/data/k", "value": "v"}, {"op": "replace", "path": "/data/k", "value": "w"}]
    assert raw.patch(f"{CM}/p", ops, "application/json-patch+json").body["data"] == {"k": "w"}
    failed = raw.patch(f"{CM}/p", [{"op": "test", "path": "/data/k", "value": "zzz"}], "application/json-patch+json")
    assert failed.status == 422
    smp = raw.patch(f"{CM}/p", {"data": {"extra": "1"}}, "application/strategic-merge-patch+json").body
    assert smp["data"] == {"k": "w", "extra": "1"}


def test_strategic_merge_patch_is_415_for_custom_resources(raw: Raw) -> None:
    raw.post(WD, widget("smp"))
    r = raw.patch(f"{WD}/smp", {"spec": {"size": 2}}, "application/strategic-merge-patch+json")
    assert r.status == 415 and r.body["reason"] == "UnsupportedMediaType"


def test_patch_with_resource_version_precondition(raw: Raw) -> None:
    created = raw.post(CM, {"metadata": {"name": "pre"}}).body
    r = raw.patch(f"{CM}/pre", {"metadata": {"resourceVersion": "1"}, "data": {"a": "b"}})
    assert r.status == 409
    ok = raw.patch(
        f"{CM}/pre", {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"a": "b"}}
    )
    assert ok.status == 200


def test_label_and_field_selectors(raw: Raw) -> None:
    for name, tier in (("s1", "web"), ("s2", "db"), ("s3", "web")):
        raw.post(CM, {"metadata": {"name": name, "labels": {"tier": tier, "sel": "yes"}}})
    names = lambda q: sorted(i["metadata"]["name"] for i in raw.get(f"{CM}?{q}").body["items"])  # noqa: E731
    assert names("labelSelector=sel%3Dyes,tier%3Dweb") == ["s1", "s3"]
    assert names("labelSelector=sel,tier+notin+(web)") == ["s2"]
    assert names("labelSelector=sel%3Dyes&fieldSelector=metadata.name%21%3Ds1") == ["s2", "s3"]
    bad = raw.get(f"{CM}?fieldSelector=data.x%3D1")
    assert bad.status == 400 and "field label not supported" in bad.body["message"]


def test_list_chunking_with_limit_and_continue(raw: Raw) -> None:
    for i in range(5):
        raw.post(CM, {"metadata": {"name": f"chunk-{i}", "labels": {"chunk": "yes"}}})
    first = raw.get(f"{CM}?labelSelector=chunk&limit=2").body
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 3
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = raw.get(f"{CM}?labelSelector=chunk&limit=2&continue={token}").body
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"chunk-{i}" for i in range(5)]


def test_dry_run_does_not_persist(raw: Raw) -> None:
    r = raw.post(f"{CM}?dryRun=All", {"metadata": {"name": "dry"}})
    assert r.status == 201 and r.body["metadata"]["name"] == "dry"
    assert raw.get(f"{CM}/dry").status == 404


def test_field_validation_strict_rejects_unknown_fields_and_warn_prunes(raw: Raw) -> None:
    strict = raw.post(
        f"{WD}?fieldValidation=Strict", {**widget("fv"), "spec": {"image": "x", "flowRef": "f", "bogus": 1}}
    )
    assert strict.status == 400 and 'unknown field "spec.bogus"' in strict.body["message"]
    warn = raw.post(WD, {**widget("fv"), "spec": {"image": "x", "flowRef": "f", "bogus": 1}})
    assert warn.status == 201 and "bogus" not in warn.body["spec"]
    assert 'unknown field \\"spec.bogus\\"' in warn.headers["Warning"]


def test_deletecollection(raw: Raw) -> None:
    for i in range(3):
        raw.post(CM, {"metadata": {"name": f"dc-{i}", "labels": {"dc": "1"}}})
    assert raw.delete(f"{CM}?labelSelector=dc%3D1").status == 200
    assert raw.get(f"{CM}?labelSelector=dc%3D1").body["items"] == []


def test_discovery_lists_verbs_short_names_categories_and_subresources(raw: Raw) -> None:
    core = {r["name"]: r for r in raw.get("/api/v1").body["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and "watch" in core["pods"]["verbs"]
    assert core["pods/log"]["verbs"] == ["get"] and core["pods/status"]["verbs"] == ["get", "patch", "update"]
    custom = {r["name"]: r for r in raw.get("/apis/test.kubesim.dev/v1alpha1").body["resources"]}
    assert custom["widgets"]["shortNames"] == ["wd"] and custom["widgets"]["categories"] == ["kubesim-all"]
    assert "widgets/status" in custom
    groups = {g["name"] for g in raw.get("/apis").body["groups"]}
    assert {
        "batch",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "test.kubesim.dev",
    } <= groups
    assert raw.get("/version").body["major"] == "1"


def test_leases_and_events_are_stored(raw: Raw) -> None:
    lease = raw.post(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}},
    )
    assert lease.status == 201
    ev = raw.post(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {"metadata": {"name": "e1"}, "reason": "R", "action": "A", "eventTime": "2026-01-01T00:00:00.000000Z"},
    )
    assert ev.status == 201


def test_unknown_resource_is_404(raw: Raw) -> None:
    assert raw.get("/apis/nothing.example/v1/things").status == 404


def test_builtin_kinds_decode_like_go_structs(raw: Raw) -> None:
    """Unknown fields of built-ins are dropped with a warning (400 under Strict), wrong JSON types are 400."""
    job = {
        "metadata": {"name": "typo"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "comand": ["true"]}],
                }
            },
        },
    }
    strict = raw.post("/apis/batch/v1/namespaces/default/jobs?fieldValidation=Strict", job)
    assert strict.status == 400
    assert 'unknown field "spec.template.spec.containers[0].comand"' in strict.body["message"]
    warned = raw.post("/apis/batch/v1/namespaces/default/jobs", job)
    assert warned.status == 201 and "comand" not in warned.body["spec"]["template"]["spec"]["containers"][0]
    assert "comand" in warned.headers["Warning"]
    wrong = raw.post(CM, {"metadata": {"name": "wrongtype"}, "data": {"a": 1}})
    assert wrong.status == 400 and "cannot unmarshal number" in wrong.body["message"]
    bad_int = raw.post(
        "/apis/batch/v1/namespaces/default/jobs",
        {**job, "metadata": {"name": "t2"}, "spec": {**job["spec"], "parallelism": "2"}},
    )
    assert bad_int.status == 400 and "spec.parallelism" in bad_int.body["message"]
