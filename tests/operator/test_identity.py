"""The run's identity, what a run borrows, and kopf's compact memory, as data (no cluster)."""

from __future__ import annotations

import json
from typing import Any

from flowlib_operator.access import Borrowed, borrowed
from flowlib_operator.cache import ClusterCache
from flowlib_operator.diffbase import EXACT_LIMIT, compact
from flowlib_operator.identity import run_identity
from flowlib_operator.jobspec import RunnerSettings, runner_job, runner_token_name, snapshot_configmap
from flowlib_operator.runner_token import RUNNER_TOKEN_LIFETIME, token_request, token_secret

from flowlib_api.runnerpod import (
    ENV_RUNNER_TOKEN_FILE,
    RUNNER_TOKEN_MOUNT,
    RUNNER_TOKEN_PATH,
    SNAPSHOT_KEY,
    Snapshot,
    snapshot_size_problem,
)
from flowlib_api.views import FlowRunView
from tests.deploy.pss import restricted_violations


def _run(name: str = "r1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name, "namespace": "team", "uid": "u-1"},
        "spec": {"flowRef": {"name": "f"}, **spec},
    }


def test_each_run_gets_an_account_and_a_role_that_name_it_alone() -> None:
    objects = run_identity(_run(), "f")
    kinds = [manifest["kind"] for _, manifest in objects]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding"]
    role = objects[1][1]
    flowrun_rules = [rule for rule in role["rules"] if rule["apiGroups"] == ["flowlib.dev"]]
    assert flowrun_rules and all(rule["resourceNames"] == ["r1"] for rule in flowrun_rules)
    assert objects[2][1]["subjects"] == [{"kind": "ServiceAccount", "name": "r1-runner", "namespace": "team"}]
    assert all(m["metadata"]["ownerReferences"][0]["uid"] == "u-1" for _, m in objects)
    job = runner_job(_run(), "f", RunnerSettings(image="img"))
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "r1-runner"


def test_a_run_under_a_borrowed_account_binds_its_role_to_its_own_account_only() -> None:
    """The pod runs as the borrowed account, but the Role is bound to the run's own account, whose
    token the runner finds in a mounted Secret (no subPath, so a refreshed token reaches the pod)."""
    objects = run_identity(_run(serviceAccountName="deployer"), "f")
    assert [manifest["kind"] for _, manifest in objects] == ["ServiceAccount", "Role", "RoleBinding"]
    assert objects[0][1]["metadata"]["name"] == "r1-runner"
    assert objects[2][1]["subjects"] == [{"kind": "ServiceAccount", "name": "r1-runner", "namespace": "team"}]
    job = runner_job(_run(serviceAccountName="deployer"), "f", RunnerSettings(image="img"))
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "deployer"
    volume = next(v for v in pod["volumes"] if v["name"] == "runner-token")
    assert volume == {
        "name": "runner-token",
        "secret": {"secretName": runner_token_name("r1"), "items": [{"key": "token", "path": "token"}]},
    }
    assert runner_token_name("r1") == "r1-runner-token"
    container = pod["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "runner-token")
    assert mount == {"name": "runner-token", "mountPath": RUNNER_TOKEN_MOUNT, "readOnly": True}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[ENV_RUNNER_TOKEN_FILE] == RUNNER_TOKEN_PATH == f"{RUNNER_TOKEN_MOUNT}/token"
    # A run of its own account has the pod's projected token for it: no Secret, no variable.
    own = runner_job(_run(), "f", RunnerSettings(image="img"))["spec"]["template"]["spec"]
    assert all(v["name"] != "runner-token" for v in own["volumes"])
    assert all(e["name"] != ENV_RUNNER_TOKEN_FILE for e in own["containers"][0]["env"])


def test_the_runner_token_secret_belongs_to_the_run_and_binds_the_token() -> None:
    secret = token_secret(_run(serviceAccountName="deployer"))
    assert secret["metadata"]["name"] == "r1-runner-token" and "data" not in secret
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "flowlib-operator"
    request = token_request({"metadata": {"name": "r1-runner-token", "uid": "s-1"}}, RUNNER_TOKEN_LIFETIME)
    assert request["spec"] == {
        "expirationSeconds": 12 * 3600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "r1-runner-token", "uid": "s-1"},
    }


def test_what_a_run_borrows_is_found_once_with_the_field_that_names_it() -> None:
    env = [
        {"name": "A", "value": "plain"},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}},
        {"name": "D", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}},
        {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    found = borrowed(FlowRunView(_run(serviceAccountName="deployer", env=env)))
    assert found == [
        Borrowed("ServiceAccount", "deployer", "spec.serviceAccountName"),
        Borrowed("Secret", "db", "spec.env[1].valueFrom.secretKeyRef"),
        Borrowed("ConfigMap", "settings", "spec.env[2].valueFrom.configMapKeyRef"),
    ]
    assert found[1].needed("team") == {
        "namespace": "team",
        "verb": "get",
        "group": "",
        "resource": "secrets",
        "name": "db",
    }
    assert found[0].needed("team")["resource"] == "pods"
    assert borrowed(FlowRunView(_run())) == []


def test_kopf_remembers_long_spec_fields_by_digest() -> None:
    assert compact(True) is True
    assert compact({"name": "f"}) == {"name": "f"}
    big = {"nodes": {f"n{i}": {"run": {"python": "x" * 100}} for i in range(10)}}
    digest = compact(big)
    assert set(digest) == {"sha256"} and len(json.dumps(digest)) <= EXACT_LIMIT
    changed = json.loads(json.dumps(big))
    changed["nodes"]["n3"]["run"]["python"] = "y"
    assert compact(changed) != digest
    assert compact(json.loads(json.dumps(big))) == digest


def test_snapshots_are_compressed_and_read_back() -> None:
    spec = {"nodes": {f"n{i}": {"run": {"python": "1  # " + "x" * 1000}} for i in range(2000)}}
    snapshot = Snapshot("big", spec, {"sub": {"nodes": {"a": {}}}})
    data = snapshot.to_bytes()
    assert len(snapshot.to_json()) > 2_000_000 and len(data) < 100_000
    assert snapshot_size_problem(data) is None
    again = Snapshot.from_bytes(data)
    assert (again.name, again.spec, again.library) == ("big", spec, {"sub": {"nodes": {"a": {}}}})
    assert Snapshot.from_bytes(snapshot.to_json().encode()).spec == spec  # plain JSON still reads
    assert data == Snapshot("big", spec, {"sub": {"nodes": {"a": {}}}}).to_bytes()  # deterministic
    configmap = snapshot_configmap(_run(), "big", data)
    assert configmap["immutable"] is True and set(configmap["binaryData"]) == {SNAPSHOT_KEY}
    problem = snapshot_size_problem(b"x" * (1024 * 1024 + 1))
    assert problem is not None and "over the 1024 KiB" in problem


def test_a_pod_seen_before_its_job_is_filed_under_its_runs_full_name() -> None:
    name = "a-flowrun-whose-name-is-far-longer-than-the-sixty-three-characters-of-a-label"
    job = runner_job(_run(name), "f", RunnerSettings(image="img"))
    template = job["spec"]["template"]
    pod = {
        "metadata": {
            "name": "p-1",
            "namespace": "team",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"], "uid": "j-1"}],
        }
    }
    assert template["metadata"]["labels"]["flowlib.dev/flowrun"] != name  # the label is hashed
    assert ClusterCache().put_pod(pod, deleted=False) == ("team", name)


def test_the_job_of_a_borrowed_account_run_stays_restricted() -> None:
    """A secret volume is one of the volume types the restricted Pod Security Standard allows."""
    job = runner_job(_run(serviceAccountName="deployer"), "f", RunnerSettings(image="img"))
    assert restricted_violations(job["spec"]["template"]) == []
