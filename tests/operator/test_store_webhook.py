"""With the admission webhook (``--access-check webhook``), a store or a retry source is borrowed
only by an author who may use it directly: ``get`` on the store's Secret and on the retried
FlowRun, ``create pods`` for a mounted claim; and an unusable ``spec.store`` is refused at the door.

The webhook is ``test_webhook``'s second operator; creations are server-side dry runs, so only the
webhook's answer counts (the simulator serves no PersistentVolumeClaims, which the check never needs).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.operator.cluster import Cluster, flowrun
from tests.operator.test_webhook import guarded_namespace

__all__ = ["guarded_namespace"]  # the fixture, shared with test_webhook

INLINE = {"nodes": {"a": {"run": {"python": "1"}}}}
RUNS = {"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["get", "create"]}
S3 = {"type": "s3", "s3": {"bucket": "runs", "secretName": "s3-keys"}}


def _creator(cluster: Cluster, namespace: str, kubeconfig: Path) -> Any:
    def create(document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return cluster.try_kubectl(
            "--kubeconfig", str(kubeconfig), "create", "--dry-run=server", "-n", namespace, "-f", "-",
            input=json.dumps(document),
        )  # fmt: skip

    return create


def test_a_store_is_borrowed_only_by_an_author_who_may_use_it(
    simulator_only: Cluster, guarded_namespace: str, tmp_path: Path
) -> None:
    cluster, namespace = simulator_only, guarded_namespace
    alice = _creator(cluster, namespace, cluster.user(namespace, "alice", [RUNS], tmp_path))
    reader = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s3-keys"], "verbs": ["get"]}
    bob = _creator(cluster, namespace, cluster.user(namespace, "bob", [RUNS, reader], tmp_path))
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}
    carol = _creator(cluster, namespace, cluster.user(namespace, "carol", [RUNS, pods], tmp_path))
    bucketed = flowrun("bucketed", flow=INLINE, store=S3)
    claimed = flowrun("claimed", flow=INLINE, store={"type": "pvc", "pvc": {"claimName": "shared"}})

    refused = alice(bucketed)
    assert refused.returncode != 0
    assert (
        f"spec.store.s3.secretName: system:serviceaccount:{namespace}:alice may not get secret 's3-keys' in "
        f"namespace '{namespace}', so a FlowRun of theirs may not either" in refused.stderr
    ), refused.stderr
    assert bob(bucketed).returncode == 0
    refused = alice(claimed)
    assert refused.returncode != 0
    assert "spec.store.pvc.claimName: " in refused.stderr
    assert "may not create pods (what mounting claim 'shared' takes)" in refused.stderr, refused.stderr
    assert carol(claimed).returncode == 0
    assert bob(claimed).returncode != 0
    # What the operator's default store names is lent by its administrator: nobody borrows it.
    assert alice(flowrun("tuned", flow=INLINE, store={"checkpointItems": 10})).returncode == 0
    broken = alice(flowrun("broken", flow=INLINE, store={"type": "s3"}))
    assert broken.returncode != 0
    assert "invalid FlowRun: spec.store.type is s3: set spec.store.s3.bucket" in broken.stderr, broken.stderr


def test_a_retry_is_allowed_only_to_an_author_who_may_read_its_source(
    simulator_only: Cluster, guarded_namespace: str, tmp_path: Path
) -> None:
    cluster, namespace = simulator_only, guarded_namespace
    cluster.apply(
        namespace,
        flowrun("first", flow=INLINE, cancel=True),
        flowrun("first-s3", flow=INLINE, store=S3, cancel=True),
    )
    creates_only = {"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["create"]}
    eve = _creator(cluster, namespace, cluster.user(namespace, "eve", [creates_only], tmp_path))
    alice = _creator(cluster, namespace, cluster.user(namespace, "alice", [RUNS], tmp_path))
    reader = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s3-keys"], "verbs": ["get"]}
    bob = _creator(cluster, namespace, cluster.user(namespace, "bob", [RUNS, reader], tmp_path))

    refused = eve(flowrun("again", retryOf="first"))
    assert refused.returncode != 0
    assert (
        f"spec.retryOf: system:serviceaccount:{namespace}:eve may not get flowrun 'first' in namespace "
        f"'{namespace}', so a FlowRun of theirs may not either; ask for that permission, or ask someone who may "
        "read it to create the retry" in refused.stderr
    ), refused.stderr
    assert alice(flowrun("again", retryOf="first")).returncode == 0
    # The source's store Secret reaches the retry's pod: the retry's author must be allowed it too.
    refused = alice(flowrun("again-s3", retryOf="first-s3"))
    assert refused.returncode != 0
    assert "spec.retryOf: FlowRun 'first-s3' has spec.store.s3.secretName: " in refused.stderr, refused.stderr
    assert "may not get secret 's3-keys'" in refused.stderr
    assert bob(flowrun("again-s3", retryOf="first-s3")).returncode == 0
