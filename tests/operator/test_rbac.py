"""The operator's ClusterRole covers every call it makes, and grants nothing it does not use.

The simulator audits every authorization decision while the operator restarts (so kopf lists and
watches again) and drives runs through every path that touches the API: a success in a fresh
namespace (runner identity, snapshot, Job, status, events), an invalid Flow, a cancellation, a pod
that cannot start, a TTL deletion, a run under a borrowed account (its runner token: a Secret and a
TokenRequest), and a retry of a run whose configmap store has a chunk (the source's snapshot read,
the chunk given the retry as an owner). Then: no request of the operator
was denied, and every rule in ``deploy/base/operator-rbac.yaml`` was used, except the few listed
below with the reason.
"""

from __future__ import annotations

from datetime import timedelta

import yaml

from tests.operator.cluster import ROOT, Cluster, flow, flowrun
from tests.operator.test_schedules import schedule, start_clock

OPERATOR_USER = "system:serviceaccount:flowlib-system:flowlib-operator"

# (verb, group, resource) granted but not exercised here, each for a reason the tests cannot reach.
NOT_EXERCISED = {
    # Held only so that RBAC lets the operator create the runner's Role, which grants them
    # (Kubernetes refuses to let anyone grant what it does not hold itself).
    ("get", "flowlib.dev", "flowruns/status"),
    # The same, for the Role of a run with a configmap store: it grants update and delete on the
    # run's own chunks, which the operator never calls itself.
    ("update", "", "configmaps"),
    ("delete", "", "configmaps"),
    # The label check of a claim a run's spec.store mounts: the simulator serves no
    # PersistentVolumeClaims, so that request ends in 404 before any authorization.
    ("get", "", "persistentvolumeclaims"),
    # Adopting a run's Role after a restart that fell between creating it and the Job.
    ("get", "rbac.authorization.k8s.io", "roles"),
    # The operator creates its own peering object at start; the tests here run it --standalone.
    # tests/deploy/test_install_kubesim.py runs it with peering and checks those calls are allowed.
    ("create", "kopf.dev", "clusterkopfpeerings"),
    ("get", "rbac.authorization.k8s.io", "rolebindings"),
    # The admission webhook's author checks: test_webhook runs them in a second operator process.
    ("create", "authorization.k8s.io", "subjectaccessreviews"),
    # kopf peering: the tests run the operator --standalone; the kind e2e runs it with peering.
    ("get", "kopf.dev", "clusterkopfpeerings"),
    ("list", "kopf.dev", "clusterkopfpeerings"),
    ("watch", "kopf.dev", "clusterkopfpeerings"),
    ("patch", "kopf.dev", "clusterkopfpeerings"),
}


def granted_rules() -> set[tuple[str, str, str]]:
    documents = yaml.safe_load_all((ROOT / "deploy/base/operator-rbac.yaml").read_text())
    role = next(d for d in documents if d and d.get("kind") == "ClusterRole")
    return {
        (verb, group, resource)
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_the_cluster_role_is_exactly_what_the_operator_uses(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    assert cluster.operator is not None
    slow = "import asyncio\nasync def exec(p):\n    await asyncio.sleep(3)\n"
    with cluster.sim.auditing() as audit:
        cluster.apply(namespace, flow("slow", {"nodes": {"a": {"run": {"python": slow}}}}))
        cluster.apply(namespace, flowrun("during-restart", "slow"))
        cluster.wait_for(
            "a running run", lambda: cluster.run_status("during-restart", namespace).get("phase") == "Running"
        )
        cluster.operator.restart()
        cluster.apply(
            namespace,
            flow("ok", {"nodes": {"a": {"run": {"python": "1"}}}}),
            flow("bad", {"nodes": {"a": {"next": {"default": "missing"}}}}),
            flowrun("ok-1", "ok", ttlSecondsAfterFinished=0),
            flowrun("cancel-1", "slow"),
            flowrun("image-1", "ok", image="registry.invalid/none:1"),
        )
        # A FlowSchedule: watched, its run created (flowruns create), its status written.
        schedule_minute = start_clock(cluster)
        cluster.apply(namespace, schedule("sched", "ok"))
        cluster.set_clock(schedule_minute + timedelta(seconds=1))
        cluster.wait_for(
            "the scheduled run",
            lambda: (cluster.get("flowschedule", "sched", namespace) or {}).get("status", {}).get("lastScheduleTime"),
        )
        # A run that borrows an opened account and Secret: the label checks, and its runner's own token
        # (the Secret it is bound to, created and patched; the TokenRequest).
        cluster.sim.ensure_service_account(namespace, "lent")
        opened = {"flowlib.dev/runner-access": "true"}
        cluster.kubectl("label", "serviceaccount", "lent", "-n", namespace, "flowlib.dev/runner-access=true")
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pw", "labels": opened}}
        borrowing = flowrun("borrow-1", "ok", serviceAccountName="lent")
        borrowing["spec"]["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "pw"}}}]
        cluster.apply(namespace, {**secret, "stringData": {"pw": "x"}}, borrowing)
        cluster.wait_phase("borrow-1", namespace, "Succeeded", timeout=60)
        assert cluster.get("secret", "borrow-1-runner-token", namespace) is not None
        cluster.wait_for(
            "cancel-1 running", lambda: cluster.run_status("cancel-1", namespace).get("phase") == "Running"
        )
        cluster.kubectl(
            "patch", "flowrun", "cancel-1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}'
        )
        cluster.wait_phase("cancel-1", namespace, "Cancelled", timeout=40)
        # A retry: reads its source's snapshot and store chunks (get) and becomes a chunk's owner (patch).
        source_run = flowrun("source-1", "ok")
        source_run["metadata"]["labels"] = {"flowlib.dev/runner-access": "true"}  # opened to retries
        cluster.apply(namespace, source_run)
        cluster.wait_phase("source-1", namespace, "Succeeded", timeout=60)
        source = cluster.get("flowrun", "source-1", namespace) or {}
        owner = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "name": "source-1", "controller": True}
        chunk = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "source-1-store-7"}}
        chunk["metadata"]["ownerReferences"] = [{**owner, "uid": source["metadata"]["uid"]}]
        cluster.apply(namespace, chunk, flowrun("retry-1", retryOf="source-1"))
        # Its outcome is the runner's business (the chunk holds no real checkpoint): only that it ends.
        cluster.wait_phase("retry-1", namespace, "Succeeded", "Failed", timeout=60)
        cluster.wait_phase("image-1", namespace, "Failed", timeout=60)
        cluster.wait_phase("during-restart", namespace, "Succeeded", timeout=60)
        cluster.wait_for(
            "ok-1 deleted by its TTL", lambda: cluster.get("flowrun", "ok-1", namespace) is None, timeout=30
        )
        cluster.wait_for(
            "the invalid Flow reported",
            lambda: (cluster.get("flow", "bad", namespace) or {}).get("status", {}).get("conditions"),
        )
    decisions = [(attrs, allowed) for user, attrs, allowed in audit if user == OPERATOR_USER]
    denied = sorted({(a.verb, a.group, a.resource, a.subresource) for a, allowed in decisions if not allowed})
    assert denied == [], f"the operator was refused: {denied}"
    used = {
        (a.verb, a.group, f"{a.resource}/{a.subresource}" if a.subresource else a.resource)
        for a, _ in decisions
        if a.is_resource
    }
    granted = granted_rules()
    assert used <= granted
    unused = granted - used - NOT_EXERCISED
    assert unused == set(), f"granted but never used (remove them, or say why in NOT_EXERCISED): {sorted(unused)}"
    assert granted >= NOT_EXERCISED, "NOT_EXERCISED names a rule the ClusterRole no longer has"
