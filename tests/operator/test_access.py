"""A FlowRun does no more than its author: borrowed accounts and Secrets, and one identity per run.

The reproducers of the trust review, against the session operator (``--access-check labels``): a
user who may create FlowRuns but may neither read Secrets nor create pods tries to run as a
service account that may read Secrets, to read a Secret into the environment, and (from user code
in one run) to read and forge another run. With the webhook (``test_webhook``'s second operator),
the author is asked instead (SubjectAccessReview).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster import Cluster, flow, flowrun

PASSWORD = "S3cr3t-db-pw"

POD_CLIENT = """
import base64, json, os, ssl, urllib.error, urllib.request


def call(path, method="GET", body=None):
    \"\"\"(HTTP status, JSON body or None) of a request to the API with the pod's own token.\"\"\"
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    namespace = open(account + "/namespace").read()
    host = os.environ["KUBERNETES_SERVICE_HOST"] + ":" + os.environ["KUBERNETES_SERVICE_PORT"]
    headers = {"Authorization": "Bearer " + open(account + "/token").read()}
    if body is not None:
        headers["Content-Type"] = "application/merge-patch+json"
    url = "https://" + host + path.format(namespace=namespace)
    request = urllib.request.Request(url, method=method, data=body, headers=headers)
    context = ssl.create_default_context(cafile=account + "/ca.crt")
    try:
        with urllib.request.urlopen(request, context=context) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None
"""
"""User code's own API client in a runner pod, as an attacker would write it."""

LOOT = (
    POD_CLIENT
    + """
def exec(_):
    status, secret = call("/api/v1/namespaces/{namespace}/secrets/db")
    return base64.b64decode(secret["data"]["password"]).decode()
"""
)


def _secret(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "labels": labels or {}},
        "stringData": {"password": PASSWORD},
    }


@pytest.fixture
def alice(simulator_only: Cluster, namespace: str, tmp_path: Path) -> Path:
    """A kubeconfig of a user who may create and read FlowRuns and Flows, and nothing else."""
    rules = [{"apiGroups": ["flowlib.dev"], "resources": ["flows", "flowruns"], "verbs": ["get", "list", "create"]}]
    return simulator_only.user(namespace, "alice", rules, tmp_path)


@pytest.fixture
def deployer(simulator_only: Cluster, namespace: str) -> str:
    """A service account that may read the namespace's Secrets, and the Secret it may read.

    It also holds what a runner needs (as version 0.1 told users to give a custom account), so that
    on the old code the reproducer's run succeeds and publishes the password."""
    rules = [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
        {"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["get"]},
        {"apiGroups": ["flowlib.dev"], "resources": ["flowruns/status"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    simulator_only.grant(namespace, "deployer", rules)
    simulator_only.apply(namespace, _secret())
    return "deployer"


def _as(cluster: Cluster, kubeconfig: Path, namespace: str, document: dict[str, Any]) -> None:
    cluster.kubectl("--kubeconfig", str(kubeconfig), "apply", "-n", namespace, "-f", "-", input=json.dumps(document))


def _refused(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    status = cluster.wait_phase(name, namespace, "Failed", "Succeeded")
    assert status["phase"] == "Failed", status
    assert status["conditions"][0]["reason"] == "Forbidden", status
    assert cluster.list("job", namespace, f"flowlib.dev/flowrun={name}") == []
    assert PASSWORD not in json.dumps(status)
    return status


def test_a_run_cannot_borrow_a_service_account_its_author_cannot_use(
    simulator_only: Cluster, namespace: str, alice: Path, deployer: str
) -> None:
    cluster = simulator_only
    denied = cluster.try_kubectl("--kubeconfig", str(alice), "get", "secret", "db", "-n", namespace)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    run = flowrun("loot", flow={"nodes": {"steal": {"run": {"python": LOOT}, "output": "loot"}}})
    run["spec"] |= {"serviceAccountName": deployer, "outputs": ["loot"]}
    _as(cluster, alice, namespace, run)
    status = _refused(cluster, "loot", namespace)
    assert "spec.serviceAccountName: ServiceAccount 'deployer' does not exist or is not open" in status["message"]
    assert f"kubectl label serviceaccount deployer -n {namespace} flowlib.dev/runner-access=true" in status["message"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=loot")
    assert "Forbidden" in events


def test_a_run_cannot_read_a_secret_its_author_cannot_read(
    simulator_only: Cluster, namespace: str, alice: Path, deployer: str
) -> None:
    cluster = simulator_only
    leak = {"nodes": {"a": {"run": {"python": "__import__('os').environ['PW']"}, "output": "pw"}}}
    run = flowrun("leak", flow=leak, outputs=["pw"])
    run["spec"]["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    _as(cluster, alice, namespace, run)
    status = _refused(cluster, "leak", namespace)
    assert "spec.env[0].valueFrom.secretKeyRef: Secret 'db' does not exist or is not open" in status["message"]


def test_an_opened_secret_and_account_may_be_borrowed(simulator_only: Cluster, namespace: str, deployer: str) -> None:
    cluster = simulator_only
    cluster.kubectl("label", "secret", "db", "-n", namespace, "flowlib.dev/runner-access=true")
    cluster.kubectl("label", "serviceaccount", deployer, "-n", namespace, "flowlib.dev/runner-access=true")
    code = "len(__import__('os').environ['PW'])"
    run = flowrun("opened", flow={"nodes": {"a": {"run": {"python": code}, "output": "n"}}}, outputs=["n"])
    run["spec"] |= {
        "serviceAccountName": deployer,
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
    }
    # The first attempts to make the runner's token fail (more than the client retries): the pod
    # waits for the token, and a resync pass makes it.
    injected = cluster.sim.faults.injected
    cluster.sim.faults.fail("POST", f"/namespaces/{namespace}/serviceaccounts/opened-runner/token$", 500, times=12)
    cluster.apply(namespace, run)
    status = cluster.wait_phase("opened", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"n": len(PASSWORD)}
    pod = cluster.list("pod", namespace, "flowlib.dev/flowrun=opened")[0]
    assert pod["spec"]["serviceAccountName"] == deployer
    assert cluster.sim.faults.injected - injected == 12
    # Nothing was lent: the run's Role is bound to the run's own account, never to the borrowed one.
    binding = cluster.get("rolebinding", "opened-runner", namespace) or {}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "opened-runner", "namespace": namespace}]


def test_another_runs_identity_cannot_be_borrowed(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("quick", {"nodes": {"a": {"run": {"python": "1"}}}}), flowrun("victim", "quick"))
    cluster.wait_phase("victim", namespace, "Succeeded")
    cluster.kubectl("label", "serviceaccount", "victim-runner", "-n", namespace, "flowlib.dev/runner-access=true")
    run = flowrun("impostor", "quick", serviceAccountName="victim-runner")
    cluster.apply(namespace, run)
    status = _refused(cluster, "impostor", namespace)
    assert "is the identity of another FlowRun" in status["message"]


FORGE = (
    POD_CLIENT
    + """
def exec(_):
    runs = "/apis/flowlib.dev/v1alpha1/namespaces/{namespace}/flowruns/"
    forged = json.dumps({"status": {"phase": "Succeeded", "output": {"result": "forged"}}}).encode()
    return {
        "read": call(runs + "victim")[0],
        "forge": call(runs + "victim/status", "PATCH", forged)[0],
        "own": call(runs + "attacker")[0],
    }
"""
)


def test_one_run_cannot_read_or_forge_another(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    slow = "import time\ndef exec(_):\n    time.sleep(2)\n    return 'real'\n"
    victim = flowrun("victim", flow={"nodes": {"a": {"run": {"python": slow}, "output": "result"}}})
    victim["spec"] |= {"input": {"apiKey": "victim-key"}, "outputs": ["result"]}
    attacker = flowrun("attacker", flow={"nodes": {"a": {"run": {"python": FORGE}, "output": "tries"}}})
    attacker["spec"]["outputs"] = ["tries"]
    cluster.apply(namespace, victim, attacker)
    tries = cluster.wait_phase("attacker", namespace, "Succeeded", "Failed")["output"]["tries"]
    assert tries == {"read": 403, "forge": 403, "own": 200}
    victim_status = cluster.wait_phase("victim", namespace, "Succeeded", "Failed")
    assert victim_status["output"] == {"result": "real"}


NEIGHBOUR = """
import json, os, ssl, urllib.error, urllib.request


def call(path, token, method="GET", body=None):
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    host = os.environ["KUBERNETES_SERVICE_HOST"] + ":" + os.environ["KUBERNETES_SERVICE_PORT"]
    headers = {"Authorization": "Bearer " + token}
    if body is not None:
        headers["Content-Type"] = "application/merge-patch+json"
    url = "https://" + host + "/apis/flowlib.dev/v1alpha1/namespaces/" + open(account + "/namespace").read() + path
    request = urllib.request.Request(url, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=account + "/ca.crt")) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def exec(_):
    mine, other = os.environ["FLOWLIB_FLOWRUN"], os.environ["OTHER"]
    runner = open(os.environ["FLOWLIB_RUNNER_TOKEN_FILE"]).read()
    borrowed = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
    forged = json.dumps({"status": {"message": "forged"}}).encode()
    untouched = json.dumps({"status": {}}).encode()
    tries = {}
    for who, token in (("runner", runner), ("borrowed", borrowed)):
        tries[who] = {
            "getMine": call("/flowruns/" + mine, token),
            "patchMine": call("/flowruns/" + mine + "/status", token, "PATCH", untouched),
            "getOther": call("/flowruns/" + other, token),
            "patchOther": call("/flowruns/" + other + "/status", token, "PATCH", forged),
        }
    return tries
"""
"""User code in a run under a shared borrowed account, trying its runner's token and the account's own."""


def test_runs_borrowing_one_account_cannot_reach_each_other(simulator_only: Cluster, namespace: str) -> None:
    """Two runs under the same opened service account: each runner's token (the file its runner
    uses) reaches its own FlowRun only, and the shared account itself reaches neither run."""
    cluster = simulator_only
    cluster.sim.ensure_service_account(namespace, "shared")
    cluster.kubectl("label", "serviceaccount", "shared", "-n", namespace, "flowlib.dev/runner-access=true")
    probe = {"nodes": {"a": {"run": {"python": NEIGHBOUR}, "output": "tries"}}}

    def run(name: str, other: str) -> dict[str, Any]:
        document = flowrun(name, flow=probe, outputs=["tries"], serviceAccountName="shared")
        document["spec"]["env"] = [{"name": "OTHER", "value": other}]
        return document

    cluster.apply(namespace, run("first", "second"), run("second", "first"))
    for name in ("first", "second"):
        status = cluster.wait_phase(name, namespace, "Succeeded", "Failed")
        assert status["phase"] == "Succeeded", status  # its runner could only report with its own token
        assert status["output"]["tries"] == {
            "runner": {"getMine": 200, "patchMine": 200, "getOther": 403, "patchOther": 403},
            "borrowed": {"getMine": 403, "patchMine": 403, "getOther": 403, "patchOther": 403},
        }, status
        assert "forged" not in json.dumps(status)
    for name in ("first", "second"):
        pod = cluster.list("pod", namespace, f"flowlib.dev/flowrun={name}")[0]
        assert pod["spec"]["serviceAccountName"] == "shared"
        subjects = (cluster.get("rolebinding", f"{name}-runner", namespace) or {})["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": f"{name}-runner", "namespace": namespace}]
        secret = cluster.get("secret", f"{name}-runner-token", namespace) or {}
        assert [o["name"] for o in secret["metadata"]["ownerReferences"]] == [name]


def test_a_runner_token_reaches_only_its_own_run(simulator_only: Cluster, namespace: str, tmp_path: Path) -> None:
    """The RBAC proof: the run's own account may read its FlowRun and patch its status, and gets 403
    on another run's FlowRun and status."""
    cluster = simulator_only
    cluster.apply(namespace, flow("quick", {"nodes": {"a": {"run": {"python": "1"}}}}))
    cluster.apply(namespace, flowrun("mine", "quick"), flowrun("theirs", "quick"))
    for name in ("mine", "theirs"):
        cluster.wait_phase(name, namespace, "Succeeded")
    kubeconfig = str(cluster.sim.kubeconfig_for(namespace, "mine-runner", tmp_path / "mine.kubeconfig"))

    def can(*args: str) -> str:
        return cluster.kubectl("--kubeconfig", kubeconfig, "auth", "can-i", *args, "-n", namespace, check=False).strip()

    assert can("get", "flowruns/mine") == "yes"
    assert can("patch", "flowruns/mine", "--subresource=status") == "yes"
    assert can("get", "flowruns/theirs") == "no"
    assert can("patch", "flowruns/theirs", "--subresource=status") == "no"
    assert can("list", "flowruns") == "no"
    assert can("get", "secrets") == "no"
    patched = cluster.try_kubectl(
        "--kubeconfig",
        kubeconfig,
        "patch",
        "flowrun",
        "theirs",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"message":"forged"}}',
    )
    assert patched.returncode != 0 and "forbidden" in patched.stderr.lower()
    # The identity belongs to the run: deleting the FlowRun collects it.
    owners = cluster.get("serviceaccount", "mine-runner", namespace)["metadata"]["ownerReferences"]  # type: ignore[index]
    assert [o["name"] for o in owners] == ["mine"]


PEEK = (
    POD_CLIENT
    + """
def exec(_):
    status, source = call("/apis/flowlib.dev/v1alpha1/namespaces/{namespace}/flowruns/victim")
    return {"code": status, "apiKey": ((source or {}).get("spec") or {}).get("input", {}).get("apiKey")}
"""
)
"""A retry's own code reading the run it retries (its Role grants ``get`` on the source)."""


def test_a_retry_cannot_read_a_run_nobody_opened_to_it(simulator_only: Cluster, namespace: str, tmp_path: Path) -> None:
    """The audit's probe: someone who may only create FlowRuns retried another user's finished run
    with a definition of their own and read its ``spec.input``. Without the webhook the source must
    carry the opt-in label; once a namespace admin (or its author) sets it, the retry may run."""
    cluster = simulator_only
    creates_only = [{"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["create"]}]
    mallory = cluster.user(namespace, "mallory", creates_only, tmp_path)
    victim = flowrun("victim", flow={"nodes": {"a": {"run": {"python": "1"}}}}, input={"apiKey": "victim-key"})
    cluster.apply(namespace, victim)
    cluster.wait_phase("victim", namespace, "Succeeded", "Failed")
    denied = cluster.try_kubectl("--kubeconfig", str(mallory), "get", "flowrun", "victim", "-n", namespace)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    def thief(name: str) -> dict[str, Any]:
        run = flowrun(name, flow={"nodes": {"a": {"run": {"python": PEEK}, "output": "peek"}}})
        run["spec"] |= {"retryOf": "victim", "resubmit": True, "outputs": ["peek"]}
        return run

    def create(document: dict[str, Any]) -> None:  # kubectl apply would need get
        cluster.kubectl("--kubeconfig", str(mallory), "create", "-n", namespace, "-f", "-", input=json.dumps(document))

    create(thief("thief"))
    status = _refused(cluster, "thief", namespace)
    assert "victim-key" not in json.dumps(status)
    assert "spec.retryOf: FlowRun 'victim' does not exist or is not open to FlowRuns" in status["message"], status
    assert f"kubectl label flowrun victim -n {namespace} flowlib.dev/runner-access=true" in status["message"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=thief")
    assert "Forbidden" in events and "victim-key" not in events
    cluster.kubectl("label", "flowrun", "victim", "-n", namespace, "flowlib.dev/runner-access=true")
    create(thief("opened"))
    opened = cluster.wait_phase("opened", namespace, "Succeeded", "Failed")
    assert opened["output"] == {"peek": {"code": 200, "apiKey": "victim-key"}}, opened


def test_a_configmap_is_borrowed_only_once_opened(simulator_only: Cluster, namespace: str, alice: Path) -> None:
    """``configMapKeyRef`` takes the same path as a Secret: refused while the ConfigMap carries no
    opt-in label (phase Failed, reason Forbidden, an Event), read into the pod once it does."""
    cluster = simulator_only
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "blue"}}
    cluster.apply(namespace, settings)
    read = {"nodes": {"a": {"run": {"python": "__import__('os').environ['MODE']"}, "output": "mode"}}}

    def run(name: str) -> dict[str, Any]:
        document = flowrun(name, flow=read, outputs=["mode"])
        document["spec"]["env"] = [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}
        ]
        return document

    _as(cluster, alice, namespace, run("closed"))
    status = _refused(cluster, "closed", namespace)
    assert (
        "spec.env[0].valueFrom.configMapKeyRef: ConfigMap 'settings' does not exist or is not open" in status["message"]
    )
    assert f"kubectl label configmap settings -n {namespace} flowlib.dev/runner-access=true" in status["message"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=closed")
    assert "Forbidden" in events
    cluster.kubectl("label", "configmap", "settings", "-n", namespace, "flowlib.dev/runner-access=true")
    _as(cluster, alice, namespace, run("open"))
    opened = cluster.wait_phase("open", namespace, "Succeeded", "Failed")
    assert opened["phase"] == "Succeeded" and opened["output"] == {"mode": "blue"}, opened
