"""Pod controls and namespace defaults as data: what is refused, how the levels merge, what a run
borrows through them, and what the runner Job gets (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flowlib_operator.access import borrowed
from flowlib_operator.jobspec import RunnerSettings, runner_job
from flowlib_operator.rundefaults import NamespaceDefaults, effective_run, own_pod_refusal
from flowlib_operator.stores import Refusal, parse_store_spec

from flowlib_api.defaults import FlowRunDefaultsSpec, apply
from flowlib_api.podcontrols import RESTRICTED_VOLUME_KINDS, layer, pod_problems
from flowlib_api.views import FlowRunView
from tests.deploy.manifests import EVERY_POD_CONTROL
from tests.deploy.pss import restricted_violations


def _run(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": "r1", "namespace": "team", "uid": "u-1"},
        "spec": {"flowRef": {"name": "f"}, **spec},
    }


def test_every_pod_control_is_valid_and_reaches_a_restricted_pod() -> None:
    assert pod_problems(EVERY_POD_CONTROL) == []
    assert {next(k for k in v if k != "name") for v in EVERY_POD_CONTROL["volumes"]} == set(RESTRICTED_VOLUME_KINDS)
    job = runner_job(_run(pod=EVERY_POD_CONTROL), "f", RunnerSettings(image="img"))
    template = job["spec"]["template"]
    pod = template["spec"]
    assert restricted_violations(template) == []
    for field in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert pod[field] == EVERY_POD_CONTROL[field], field
    names = [v["name"] for v in pod["volumes"]]
    assert names[:2] == ["definition", "tmp"] and set(names) >= {v["name"] for v in EVERY_POD_CONTROL["volumes"]}
    mounts = pod["containers"][0]["volumeMounts"]
    assert all(m in mounts for m in EVERY_POD_CONTROL["volumeMounts"])
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "flowlib-operator"
    assert template["metadata"]["annotations"]["example.com/owner"] == "team-a"


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "volumes.0.hostPath: Extra inputs"),
        ({"volumes": [{"name": "x"}]}, "set exactly one source"),
        ({"volumes": [{"name": "x", "emptyDir": {}, "secret": {"secretName": "s"}}]}, "set exactly one source"),
        ({"volumes": [{"name": "tmp", "emptyDir": {}}]}, "volumes[0].name: 'tmp' is one of the runner's own"),
        ({"volumes": [{"name": "Data", "emptyDir": {}}]}, "must be a DNS label"),
        ({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]}, "'a' is named twice"),
        ({"volumeMounts": [{"name": "a", "mountPath": "/tmp/cache"}]}, "at, under or over /tmp"),
        ({"volumeMounts": [{"name": "a", "mountPath": "/var/run"}]}, "over /var/run/flowlib"),
        ({"volumeMounts": [{"name": "a", "mountPath": "data"}]}, "must be absolute"),
        ({"volumeMounts": [{"name": "a", "mountPath": "/x/../tmp"}]}, "may not contain '..'"),
        (
            {"volumes": [{"name": "a", "emptyDir": {}}], "volumeMounts": [{"name": "b", "mountPath": "/b"}]},
            "no volume 'b'",
        ),
        ({"labels": {"flowlib.dev/flowrun": "other"}}, "labels: key 'flowlib.dev/flowrun' is set by the operator"),
        ({"labels": {"app.kubernetes.io/managed-by": "me"}}, "is set by the operator"),
        ({"labels": {"batch.kubernetes.io/job-name": "x"}}, "is set by the operator"),
        ({"labels": {"team": "not ok"}}, "value 'not ok' must be"),
        ({"labels": {"Bad_Prefix.com/x": "y"}}, "prefix must be a DNS subdomain"),
        ({"annotations": {"container.apparmor.security.beta.kubernetes.io/runner": "unconfined"}}, "security profile"),
        ({"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}, "security profile"),
        ({"nodeSelector": {"pool": "a b"}}, "nodeSelector: 'pool': value 'a b'"),
        ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "takes no value"),
        ({"tolerations": [{"operator": "Equal", "value": "v"}]}, "without a key must use operator Exists"),
        ({"tolerations": [{"key": "k", "tolerationSeconds": 5}]}, "only to effect NoExecute"),
        ({"priorityClassName": "system-cluster-critical"}, "reserved for the kube-system namespace"),
        ({"hostNetwork": True}, "hostNetwork: Extra inputs are not permitted"),
    ],
)
def test_pod_controls_refused_name_the_field(pod: dict[str, Any], expected: str) -> None:
    problems = pod_problems(pod)
    assert any(expected in p for p in problems), problems


def test_a_run_with_bad_pod_controls_is_refused_before_anything_is_created() -> None:
    refusal = own_pod_refusal(FlowRunView(_run(pod={"labels": {"flowlib.dev/x": "y"}})))
    assert refusal is not None and refusal.reason == "InvalidSpec"
    assert refusal.message.startswith("invalid FlowRun: spec.pod.labels: key 'flowlib.dev/x'")
    inline = _run(flow={"nodes": {"a": {}}, "pod": {"volumes": [{"name": "tmp", "emptyDir": {}}]}})
    del inline["spec"]["flowRef"]
    refusal = own_pod_refusal(FlowRunView(inline))
    assert refusal is not None and "spec.flow.pod.volumes[0].name" in refusal.message
    assert own_pod_refusal(FlowRunView(_run(pod=EVERY_POD_CONTROL))) is None


def test_levels_merge_maps_by_key_named_lists_by_name_and_the_rest_whole() -> None:
    namespace = {
        "labels": {"team": "a", "tier": "batch"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "volumes": [{"name": "certs", "secret": {"secretName": "ca"}}],
        "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "low",
    }
    flow = {"labels": {"tier": "interactive"}, "priorityClassName": "high"}
    run = {
        "labels": {"owner": "me"},
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "volumes": [{"name": "certs", "secret": {"secretName": "own-ca"}}, {"name": "scratch", "emptyDir": {}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    merged = layer(namespace, flow, run)
    assert merged["labels"] == {"team": "a", "tier": "interactive", "owner": "me"}
    assert merged["tolerations"] == run["tolerations"]
    assert merged["volumes"] == run["volumes"]  # certs replaced by the run's, scratch added
    assert [m["mountPath"] for m in merged["volumeMounts"]] == ["/certs", "/scratch"]
    assert merged["imagePullSecrets"] == [{"name": "registry"}]
    assert merged["priorityClassName"] == "high"
    assert layer(None, None, None) == {}


def test_namespace_defaults_fill_in_what_the_run_leaves_out_and_say_so() -> None:
    defaults = NamespaceDefaults(
        FlowRunDefaultsSpec.model_validate(
            {
                "image": "registry.example/runner:2",
                "timeout": "2h",
                "ttlSecondsAfterFinished": 3600,
                "resources": {"limits": {"memory": "4Gi"}},
                "pod": {"nodeSelector": {"pool": "batch"}, "labels": {"team": "a"}},
            }
        ).model_dump(by_alias=True, exclude_none=True, exclude_unset=True),
        generation=3,
    )
    effective = effective_run(_run(timeout="5m", pod={"labels": {"owner": "me"}}), defaults, {"labels": {"f": "1"}})
    assert not isinstance(effective, Refusal)
    spec = effective.body["spec"]
    assert spec["timeout"] == "5m" and spec["image"] == "registry.example/runner:2"
    assert spec["pod"] == {"nodeSelector": {"pool": "batch"}, "labels": {"team": "a", "f": "1", "owner": "me"}}
    assert effective.defaults_status == {
        "name": "default",
        "generation": 3,
        "fields": ["image", "resources", "ttlSecondsAfterFinished", "pod.nodeSelector", "pod.labels"],
        "ttlSecondsAfterFinished": 3600,
    }
    job = runner_job(effective.body, "f", RunnerSettings(image="operator-default"))
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600 and job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/runner:2"
    # After the start, the run's view reads what the defaults gave it from its status.
    started = {**_run(), "status": {"defaults": effective.defaults_status}}
    assert FlowRunView(started).ttl_seconds_after_finished == 3600
    # Without defaults nothing is added and nothing is said.
    bare = effective_run(_run(), NamespaceDefaults(), None)
    assert not isinstance(bare, Refusal) and bare.defaults_status is None and "pod" not in bare.body["spec"]


def test_a_mount_of_a_volume_no_level_declares_is_refused_after_merging() -> None:
    defaults = NamespaceDefaults({"pod": {"volumes": [{"name": "certs", "secret": {"secretName": "ca"}}]}})
    fine = effective_run(_run(pod={"volumeMounts": [{"name": "certs", "mountPath": "/certs"}]}), defaults, None)
    assert not isinstance(fine, Refusal)
    dangling = effective_run(_run(pod={"volumeMounts": [{"name": "keys", "mountPath": "/keys"}]}), defaults, None)
    assert isinstance(dangling, Refusal) and "spec.pod.volumeMounts[0].name: no volume 'keys'" in dangling.message


def test_the_defaults_store_replaces_the_operators_and_a_typeless_one_is_laid_over_it() -> None:
    operator = parse_store_spec('{"type": "configmap", "checkpointItems": 50}')
    s3 = NamespaceDefaults({"store": {"type": "s3", "s3": {"bucket": "runs"}}}).store(operator)
    assert s3.type == "s3" and s3.s3 is not None and s3.s3.bucket == "runs"
    tuned = NamespaceDefaults({"store": {"checkpointSeconds": 5}}).store(operator)
    assert tuned.type == "configmap" and tuned.checkpoint_items == 50 and tuned.checkpoint_seconds == 5
    assert NamespaceDefaults().store(operator) is operator
    _, supplied = apply({"store": {"type": "configmap"}}, {"store": {"type": "s3"}})
    assert "store" not in supplied


def test_what_pod_controls_name_is_borrowed_with_the_field_that_names_it() -> None:
    items = {(b.kind, b.name, b.field) for b in borrowed(FlowRunView(_run(pod=EVERY_POD_CONTROL)))}
    assert items >= {
        ("PersistentVolumeClaim", "models", "spec.pod.volumes[0].persistentVolumeClaim.claimName"),
        ("ConfigMap", "settings", "spec.pod.volumes[1].configMap.name"),
        ("Secret", "tls", "spec.pod.volumes[2].secret.secretName"),
        ("Secret", "api", "spec.pod.volumes[4].projected.sources[0].secret.name"),
        ("EphemeralVolume", "cache", "spec.pod.volumes[7].ephemeral"),
        ("PullSecret", "registry", "spec.pod.imagePullSecrets[0].name"),
    }
    flow_pod = {"volumes": [{"name": "k", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-creds"}}}]}
    from_flow = borrowed(FlowRunView(_run()), flow_pod=("f", flow_pod))
    assert [(b.kind, b.name, b.field) for b in from_flow] == [
        ("Secret", "csi-creds", "spec.flowRef: Flow 'f' has spec.pod.volumes[0].csi.nodePublishSecretRef.name")
    ]
    # A pull secret is used by the kubelet, not read by the run: what creating pods takes.
    pull = next(b for b in borrowed(FlowRunView(_run(pod=EVERY_POD_CONTROL))) if b.kind == "PullSecret")
    assert pull.needed("team") == {"namespace": "team", "verb": "create", "group": "", "resource": "pods"}
    assert pull.object_kind == "Secret"


def test_the_flow_model_takes_pod_controls_too() -> None:
    from flowlib_api.flowspec import FlowSpec

    spec = FlowSpec.model_validate({"nodes": {"a": {}}, "pod": copy.deepcopy(EVERY_POD_CONTROL)})
    assert spec.pod is not None and spec.pod.priority_class_name == "batch-low"
