"""Stores and retries as data (no cluster): which store a run gets, what its Job and Role say about
it, what it borrows, and whether a retry can resume from its source."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from flowlib_operator.access import Borrowed, borrowed
from flowlib_operator.identity import runner_rules
from flowlib_operator.jobspec import RunnerSettings, runner_job
from flowlib_operator.stores import (
    NOTHING_TO_RETRY,
    RETRY_SOURCE_NOT_FINISHED,
    RETRY_SOURCE_NOT_FOUND,
    Refusal,
    Resume,
    StoreProblem,
    effective_store,
    parse_store_spec,
    plan_resume,
    store_conflict,
    store_location,
)

from flowlib_api.storespec import STORE_MOUNT, StoreLocation, StoreSpec, configmap_chunk_names, resolve
from flowlib_api.views import FlowRunView
from tests.deploy.manifests import KUBERNETES_VERSION
from tests.deploy.pss import pod_template_of, restricted_violations

UID = "0b6f3c4e-4a55-4b8e-9d0e-2a8f1c7d9e10"
CONFIGMAP = parse_store_spec('{"type": "configmap"}')
S3 = {"type": "s3", "s3": {"bucket": "runs", "prefix": "flowlib", "secretName": "s3-keys"}}
PVC = {"type": "pvc", "pvc": {"claimName": "shared"}}


def _run(name: str = "r1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name, "namespace": "team", "uid": UID},
        "spec": {"flowRef": {"name": "f"}, **spec},
    }


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _job(flowrun: dict[str, Any], default: StoreSpec = CONFIGMAP, resume: Resume | None = None) -> dict[str, Any]:
    store = store_location(default, FlowRunView(flowrun))
    return runner_job(flowrun, "f", RunnerSettings(image="img"), store=store, resume=resume)


# -- which store ---------------------------------------------------------------------------------


def test_the_default_store_applies_and_spec_store_wins() -> None:
    s3_default = StoreSpec.model_validate(S3)
    assert effective_store(CONFIGMAP, None) == CONFIGMAP
    assert effective_store(s3_default, None) == s3_default
    assert effective_store(s3_default, {"type": "configmap"}) == StoreSpec()
    tuned = effective_store(s3_default, {"checkpointItems": 50})  # no type: laid over the default
    assert tuned is not None and tuned.type == "s3" and tuned.s3 == s3_default.s3 and tuned.checkpoint_items == 50
    assert effective_store(s3_default, {"enabled": False}) is None
    off = parse_store_spec("enabled: false")  # YAML too
    assert effective_store(off, None) is None
    asked = effective_store(off, {"checkpointSeconds": 5})  # a spec.store without enabled asks for a store
    assert asked is not None and asked.type == "configmap" and asked.checkpoint_seconds == 5


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"type": "s3"}, "spec.store.type is s3: set spec.store.s3.bucket"),
        ({"type": "pvc", "s3": {"bucket": "runs"}}, "spec.store.type is pvc: set spec.store.pvc.claimName"),
        ({"s3": {"bucket": "runs"}}, "spec.store.s3 is set but spec.store.type is configmap"),
        ({"type": "configmap", "colour": "red"}, "spec.store.colour: Extra inputs are not permitted"),
        ({"type": "s3", "s3": {"bucket": "r"}}, "spec.store.s3.bucket: String should have at least 3"),
        ("configmap", "spec.store must be an object"),
    ],
)
def test_an_unusable_spec_store_says_which_field(written: object, message: str) -> None:
    with pytest.raises(StoreProblem) as problem:
        effective_store(CONFIGMAP, written)
    assert message in str(problem.value), str(problem.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "s3"}', "--default-store.type is s3: set --default-store.s3.bucket"),
        ("[1", "--default-store is neither JSON nor YAML"),
        ('"configmap"', "--default-store must be a store spec"),
        ('{"type": "nfs"}', "--default-store.type: Input should be 'configmap', 's3' or 'pvc'"),
    ],
)
def test_a_bad_default_store_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(StoreProblem) as problem:
        parse_store_spec(text)
    assert message in str(problem.value), str(problem.value)


# -- the Job -------------------------------------------------------------------------------------


def test_a_configmap_store_is_only_its_location() -> None:
    job = _job(_run())
    env = _env(job)
    location = StoreLocation.from_json(env["FLOWLIB_STORE"])
    assert location == resolve(StoreSpec(), namespace="team", run="r1", uid=UID)
    assert location.root == "r1-store" and location.namespace == "team"
    assert not {"FLOWLIB_RESUME_FROM", "FLOWLIB_RESUME_MODE", "AWS_ACCESS_KEY_ID"} & set(env)
    assert [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]] == ["definition", "tmp"]


def test_an_s3_store_reads_its_keys_from_the_secret() -> None:
    job = _job(_run(store=S3))
    env = _env(job)
    location = StoreLocation.from_json(env["FLOWLIB_STORE"])
    assert (location.type, location.bucket, location.secret_name) == ("s3", "runs", "s3-keys")
    assert location.root == f"flowlib/team/r1-{UID[:8]}/"
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID", "optional": False}
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["optional"] is False
    assert env["AWS_SESSION_TOKEN"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "AWS_SESSION_TOKEN", "optional": True}
    }
    without = _env(_job(_run(store={"type": "s3", "s3": {"bucket": "runs"}})))
    assert "FLOWLIB_STORE" in without and "AWS_ACCESS_KEY_ID" not in without  # the pod's own credentials


def test_a_pvc_store_mounts_its_claim_and_stays_restricted() -> None:
    job = _job(_run(store=PVC))
    pod = job["spec"]["template"]["spec"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "shared", "readOnly": False}} in pod["volumes"]
    assert {"name": "store", "mountPath": STORE_MOUNT, "readOnly": False} in pod["containers"][0]["volumeMounts"]
    location = StoreLocation.from_json(_env(job)["FLOWLIB_STORE"])
    assert location.root == f"{STORE_MOUNT}/team/r1-{UID[:8]}" and location.claim_name == "shared"
    for each in (job, _job(_run(store=S3)), _job(_run())):
        assert restricted_violations(pod_template_of(each)) == []
        kubernetes_validate.validate(each, KUBERNETES_VERSION, strict=True)


def test_a_run_without_a_store_gets_none() -> None:
    env = _env(_job(_run(store={"enabled": False})))
    assert "FLOWLIB_STORE" not in env
    assert "FLOWLIB_STORE" not in _env(_job(_run(), default=parse_store_spec('{"enabled": false}')))


def test_the_runs_own_env_comes_last() -> None:
    job = _job(_run(env=[{"name": "AWS_REGION", "value": "eu-west-1"}]))
    names = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.index("FLOWLIB_STORE") < names.index("AWS_REGION")


# -- the Role ------------------------------------------------------------------------------------


def _configmap_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rules if r["resources"] == ["configmaps"]]


def test_a_configmap_store_role_names_its_own_chunks() -> None:
    store = store_location(CONFIGMAP, FlowRunView(_run()))
    assert store is not None
    rules = _configmap_rules(runner_rules("r1", store))
    assert rules == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [f"r1-store-{i}" for i in range(8)],
            "verbs": ["get", "update", "patch", "delete"],
        },
    ]
    for other in (StoreLocation("s3", "x/", bucket="b"), StoreLocation("pvc", "/x", claim_name="c"), None):
        assert _configmap_rules(runner_rules("r1", other)) == []


# -- what a run borrows --------------------------------------------------------------------------


def test_the_store_a_spec_names_is_borrowed_the_defaults_is_not() -> None:
    run = FlowRunView(_run(store={"type": "s3", "s3": {"bucket": "runs", "secretName": "mine"}}))
    assert borrowed(run) == [Borrowed("Secret", "mine", "spec.store.s3.secretName")]
    claim = borrowed(FlowRunView(_run(store=PVC)))
    assert claim == [Borrowed("PersistentVolumeClaim", "shared", "spec.store.pvc.claimName")]
    assert claim[0].needed("team") == {"namespace": "team", "verb": "create", "group": "", "resource": "pods"}
    assert borrowed(FlowRunView(_run(store={"checkpointItems": 5}))) == []  # the default's Secret is lent


def test_a_retry_borrows_its_source_and_what_the_sources_store_names() -> None:
    retry = FlowRunView(_run("again", retryOf="first"))
    source = _run("first", store=S3)
    found = borrowed(retry, source)
    assert found == [
        Borrowed("FlowRun", "first", "spec.retryOf"),
        Borrowed("Secret", "s3-keys", "spec.retryOf: FlowRun 'first' has spec.store.s3.secretName"),
    ]
    assert found[0].needed("team") == {
        "namespace": "team",
        "verb": "get",
        "group": "flowlib.dev",
        "resource": "flowruns",
        "name": "first",
    }
    assert borrowed(retry) == [Borrowed("FlowRun", "first", "spec.retryOf")]


# -- retries -------------------------------------------------------------------------------------


def _finished(name: str = "first", phase: str = "Failed", store: StoreLocation | None = None) -> dict[str, Any]:
    body = _run(name)
    body["metadata"]["uid"] = "source-uid"
    body["status"] = {"phase": phase, "flow": "f"}
    if store is not None:
        body["status"]["store"] = store.status()
    return body


SOURCE_STORE = StoreLocation("configmap", "first-store", namespace="team")


def test_a_retry_resumes_from_its_sources_store() -> None:
    plan = plan_resume(FlowRunView(_run("again", retryOf="first")), _finished(store=SOURCE_STORE))
    assert plan == Resume("first", "source-uid", SOURCE_STORE.to_json(), SOURCE_STORE, "retry", "f")
    resubmit = plan_resume(FlowRunView(_run("again", retryOf="first", resubmit=True)), _finished(store=SOURCE_STORE))
    assert isinstance(resubmit, Resume) and resubmit.mode == "resubmit"
    job = _job(_run("again", retryOf="first"), resume=plan)
    env = _env(job)
    assert env["FLOWLIB_RESUME_FROM"] == SOURCE_STORE.to_json() and env["FLOWLIB_RESUME_MODE"] == "retry"
    rules = runner_rules("again", store_location(CONFIGMAP, FlowRunView(_run("again"))), plan)
    assert {
        "apiGroups": ["flowlib.dev"],
        "resources": ["flowruns"],
        "resourceNames": ["first"],
        "verbs": ["get"],
    } in rules
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": configmap_chunk_names("first-store"),
        "verbs": ["get"],
    } in rules


@pytest.mark.parametrize(
    ("source", "reason", "message"),
    [
        (None, RETRY_SOURCE_NOT_FOUND, "spec.retryOf: FlowRun 'first' does not exist in namespace 'team'"),
        (_finished(phase="Running", store=SOURCE_STORE), RETRY_SOURCE_NOT_FINISHED, "has not finished (phase Running)"),
        (_finished(), NOTHING_TO_RETRY, "spec.retryOf: FlowRun 'first' ran without a store"),
    ],
)
def test_a_retry_of_what_cannot_be_retried_is_refused(source: dict[str, Any] | None, reason: str, message: str) -> None:
    refused = plan_resume(FlowRunView(_run("again", retryOf="first")), source)
    assert isinstance(refused, Refusal) and refused.reason == reason and message in refused.message, refused
    itself = plan_resume(FlowRunView(_run("first", retryOf="first")), source)
    assert isinstance(itself, Refusal) and "cannot retry itself" in itself.message


def test_one_pod_reaches_both_stores_or_the_retry_says_which_setting_works() -> None:
    def resume(location: StoreLocation) -> Resume:
        return Resume("first", "u", location.to_json(), location, "retry", "f")

    on_a = resume(StoreLocation("pvc", f"{STORE_MOUNT}/team/first-1", claim_name="a"))
    own_b = StoreLocation("pvc", f"{STORE_MOUNT}/team/again-2", claim_name="b")
    problem = store_conflict(own_b, on_a)
    assert problem is not None and "spec.store to {type: pvc, pvc: {claimName: a}}" in problem
    assert store_conflict(StoreLocation("pvc", "/x", claim_name="a"), on_a) is None
    assert store_conflict(StoreLocation("configmap", "again-store"), on_a) is None
    # The source's claim alone is mounted read-only: a retry never changes its source's checkpoints.
    job = _job(_run("again", retryOf="first"), resume=on_a)
    pod = job["spec"]["template"]["spec"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "a", "readOnly": True}} in pod["volumes"]
    s3_source = resume(StoreLocation("s3", "p/", bucket="runs", secret_name="old-keys"))
    problem = store_conflict(StoreLocation("s3", "q/", bucket="runs", secret_name="new-keys"), s3_source)
    assert problem is not None and "spec.store.s3.secretName to 'old-keys'" in problem
    env = _env(_job(_run("again", retryOf="first"), resume=s3_source))  # its own store is configmap
    assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "old-keys"
    assert json.loads(env["FLOWLIB_RESUME_FROM"])["secret_name"] == "old-keys"
