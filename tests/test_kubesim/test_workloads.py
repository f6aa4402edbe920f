"""Pods run as local processes by the simulated kubelet, and the Job controller.

Docs: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ (phases, container states,
restartPolicy, termination), https://kubernetes.io/docs/tasks/inject-data-application/ (env,
valueFrom, $(VAR)), https://kubernetes.io/docs/concepts/configuration/configmap/ and /secret/
(volumes), https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/ (in-cluster config),
https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/ (termination
messages), https://kubernetes.io/docs/concepts/workloads/controllers/job/ (Jobs),
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod (logs).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = Simulator(workdir=tmp_path_factory.mktemp("workloads")).start()
    s.set_timing(backoff_base=0.2, retry_interval=0.3)
    yield s
    s.stop()


def pod(name: str, script: str, image: str = "busybox", policy: str = "Never", **extra: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": ["sh", "-c", script], **extra.pop("container", {})}
    return {"metadata": {"name": name}, "spec": {"restartPolicy": policy, "containers": [container], **extra}}


def phase(raw: Raw, name: str) -> str:
    return str(raw.get(f"{PODS}/{name}").body.get("status", {}).get("phase"))


def state(raw: Raw, name: str, index: int = 0) -> dict[str, Any]:
    statuses = raw.get(f"{PODS}/{name}").body.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[index])


def test_env_value_from_env_from_and_expansion(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(
        "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "env-cm"}, "data": {"colour": "blue", "n": "1"}}
    )
    raw.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "env-sec"}, "stringData": {"pw": "hunter2"}})
    env = [
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "colour"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "env-sec", "key": "pw"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hi $(POD) $$(POD)"},
    ]
    body = pod(
        "envpod",
        'echo "$COLOUR $PW $POD $NS $LBL $GREETING $CM_n $(pwd)"',
        container={
            "env": env,
            "envFrom": [{"configMapRef": {"name": "env-cm"}, "prefix": "CM_"}],
            "workingDir": "/tmp",
        },
    )
    body["metadata"]["labels"] = {"app": "demo"}
    raw.post(PODS, body)
    eventually(lambda: phase(raw, "envpod") == "Succeeded")
    assert sim.kubectl("logs", "envpod").stdout == "blue hunter2 envpod default demo hi envpod $(POD) 1 /tmp\n"


def test_volumes_termination_message_and_exit_code(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "vol-cm"}, "data": {"app.yaml": "x: 1\n"}})
    raw.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "vol-sec"}, "stringData": {"key": "s3"}})
    script = (
        "cat /etc/app/app.yaml; cat /etc/sec/key; echo;"
        " cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo;"
        " test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token;"
        " touch /etc/app/new 2>/dev/null || echo readonly; echo 'it broke' > /dev/termination-log; exit 7"
    )
    mounts = [{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}, {"name": "sec", "mountPath": "/etc/sec"}]
    body = pod(
        "volpod",
        script,
        container={"volumeMounts": mounts},
        volumes=[
            {"name": "cfg", "configMap": {"name": "vol-cm"}},
            {"name": "sec", "secret": {"secretName": "vol-sec"}},
        ],
    )
    raw.post(PODS, body)
    eventually(lambda: phase(raw, "volpod") == "Failed")
    assert sim.kubectl("logs", "volpod").stdout == "x: 1\ns3\ndefault\ntoken\nreadonly\n"
    term = state(raw, "volpod")["state"]["terminated"]
    assert term["exitCode"] == 7 and term["reason"] == "Error" and term["message"] == "it broke\n"
    assert not os.path.exists("/etc/app/app.yaml")  # mounted only inside the pod's mount namespace


def test_in_cluster_config_reaches_the_simulator_with_rbac(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "lister"}})
    raw.post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        {
            "metadata": {"name": "lister"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    raw.post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        {
            "metadata": {"name": "lister"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lister"},
            "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": "default"}],
        },
    )
    script = (
        "from kubernetes import client, config\nconfig.load_incluster_config()\napi = client.CoreV1Api()\n"
        "print(len(api.list_namespaced_config_map('default').items) > 0)\n"
        "try:\n    api.list_namespaced_pod('default')\nexcept client.ApiException as e:\n    print(e.status)\n"
    )
    body = {
        "metadata": {"name": "incluster"},
        "spec": {
            "serviceAccountName": "lister",
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.11", "command": ["python3", "-c", script]}],
        },
    }
    raw.post(PODS, body)
    eventually(lambda: phase(raw, "incluster") in ("Succeeded", "Failed"), 30)
    assert sim.kubectl("logs", "incluster").stdout == "True\n403\n"


def test_restart_policy_on_failure_back_off_and_previous_logs(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(PODS, pod("crash", "echo run-$(date +%N); exit 3", policy="OnFailure"))
    eventually(lambda: state(raw, "crash").get("restartCount", 0) >= 2)
    status = state(raw, "crash")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    waiting_or_running = status["state"]
    assert "waiting" in waiting_or_running or "running" in waiting_or_running or "terminated" in waiting_or_running
    eventually(lambda: "CrashLoopBackOff" in json.dumps(raw.get(f"{PODS}/crash").body["status"]))
    previous = sim.kubectl("logs", "crash", "--previous").stdout
    assert previous.startswith("run-")
    assert phase(raw, "crash") == "Running"
    sim.kubectl("delete", "pod", "crash", "--grace-period=0", "--force")


def test_log_options(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(PODS, pod("logs", "for i in 1 2 3 4 5; do echo line$i; done"))
    eventually(lambda: phase(raw, "logs") == "Succeeded")
    assert raw.get(f"{PODS}/logs/log?tailLines=2").raw == b"line4\nline5\n"
    stamped = raw.get(f"{PODS}/logs/log?timestamps=true&tailLines=1").raw.decode()
    assert stamped.endswith(" line5\n") and stamped[:4].isdigit() and "T" in stamped.split(" ")[0]
    assert raw.get(f"{PODS}/logs/log?sinceTime=2999-01-01T00:00:00Z").raw == b""
    assert raw.get(f"{PODS}/logs/log?sinceSeconds=600").raw.count(b"\n") == 5
    assert raw.get(f"{PODS}/logs/log?limitBytes=3").raw == b"lin"
    missing = raw.get(f"{PODS}/logs/log?previous=true")
    assert missing.status == 400 and "previous terminated container" in missing.body["message"]


def test_logs_follow_ends_when_the_container_exits(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(PODS, pod("follow", "echo start; sleep 1; echo end"))
    eventually(lambda: phase(raw, "follow") == "Running")
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}
    out = subprocess.run(
        ["kubectl", "logs", "-f", "follow"], capture_output=True, text=True, timeout=20, env=env, check=False
    )
    assert out.stdout == "start\nend\n" and out.returncode == 0


def test_deletion_sends_sigterm_then_sigkill_after_grace(sim: Simulator, tmp_path: Any) -> None:
    raw = Raw(sim)
    out = {"name": "out", "hostPath": {"path": str(tmp_path)}}
    mount = {"volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    graceful = "trap 'echo got-term > /out/graceful; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    stubborn = "trap 'echo ignored-term > /out/stubborn' TERM; echo ready; while true; do sleep 0.1; done"
    raw.post(PODS, pod("graceful", graceful, terminationGracePeriodSeconds=30, volumes=[out], container=mount))
    raw.post(PODS, pod("stubborn", stubborn, terminationGracePeriodSeconds=2, volumes=[out], container=mount))
    for name in ("graceful", "stubborn"):
        eventually(lambda n=name: raw.get(f"{PODS}/{n}/log").raw == b"ready\n")
    started = time.monotonic()
    for name in ("graceful", "stubborn"):
        assert raw.delete(f"{PODS}/{name}").status == 200  # pending, answered with the pod
        assert raw.get(f"{PODS}/{name}").body["metadata"]["deletionTimestamp"]
    eventually(lambda: raw.get(f"{PODS}/graceful").status == 404)
    # It exited on SIGTERM: the pod went away long before its 30 s grace period could have run out.
    assert time.monotonic() - started < 25
    assert (tmp_path / "graceful").read_text() == "got-term\n"
    eventually(lambda: raw.get(f"{PODS}/stubborn").status == 404)
    assert time.monotonic() - started >= 1.9  # it ignored SIGTERM and was SIGKILLed after its grace period
    assert (tmp_path / "stubborn").read_text() == "ignored-term\n"


def test_unknown_image_waits_in_image_pull_back_off(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(PODS, pod("noimage", "true", image="registry.invalid/nothing:1"))
    reasons = set()
    eventually(
        lambda: (
            reasons.add(state(raw, "noimage").get("state", {}).get("waiting", {}).get("reason"))
            or {"ErrImagePull", "ImagePullBackOff"} <= reasons
        )
    )
    assert phase(raw, "noimage") == "Pending"
    lines = sim.kubectl("get", "pod", "noimage").stdout.splitlines()
    assert lines[1].split()[2] in ("ErrImagePull", "ImagePullBackOff")
    log = raw.get(f"{PODS}/noimage/log")
    assert log.status == 400 and "waiting to start: trying and failing to pull image" in log.body["message"]
    sim.kubectl("delete", "pod", "noimage")


def test_missing_config_map_is_create_container_config_error(sim: Simulator) -> None:
    raw = Raw(sim)
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    raw.post(PODS, pod("noconf", "echo $X", container={"env": env}))
    eventually(
        lambda: state(raw, "noconf").get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"
    )
    assert state(raw, "noconf")["state"]["waiting"]["message"] == 'configmap "absent" not found'
    raw.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "absent"}, "data": {"k": "now"}})
    eventually(lambda: phase(raw, "noconf") == "Succeeded")
    assert sim.kubectl("logs", "noconf").stdout == "now\n"


def test_kill_pod_process_fault(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(PODS, pod("victim", "echo up; sleep 30"))
    eventually(lambda: raw.get(f"{PODS}/victim/log").raw == b"up\n")
    assert sim.kill_pod_process("default", "victim")
    eventually(lambda: phase(raw, "victim") == "Failed")
    term = state(raw, "victim")["state"]["terminated"]
    assert term["exitCode"] == 137 and term["reason"] == "Error"


JOB = "/apis/batch/v1/namespaces/default/jobs"


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    tmpl = {
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
        }
    }
    return {"metadata": {"name": name}, "spec": {"template": tmpl, **spec}}


def conditions(raw: Raw, name: str) -> dict[str, str]:
    return {
        c["type"]: c.get("reason", "") for c in raw.get(f"{JOB}/{name}").body.get("status", {}).get("conditions", [])
    }


def test_job_completions_parallelism_and_pod_labels(sim: Simulator) -> None:
    raw = Raw(sim)
    created = raw.post(JOB, job("para", "echo done", completions=3, parallelism=2)).body
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    sim.kubectl("wait", "--for=condition=Complete", "job/para", "--timeout=30s")
    body = raw.get(f"{JOB}/para").body
    assert body["status"]["succeeded"] == 3 and body["status"]["completionTime"]
    assert set(conditions(raw, "para")) == {"SuccessCriteriaMet", "Complete"}
    pods = raw.get(f"{PODS}?labelSelector=job-name%3Dpara").body["items"]
    assert len(pods) == 3
    for p in pods:
        assert (
            p["metadata"]["labels"]["controller-uid"] == uid
            and p["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "para"
        )
        ref = p["metadata"]["ownerReferences"][0]
        assert ref == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "para",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    lines = sim.kubectl("get", "job", "para").stdout.splitlines()
    assert lines[1].split()[:3] == ["para", "Complete", "3/3"]


def test_job_backoff_limit(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(JOB, job("fails", "exit 2", backoffLimit=1))
    sim.kubectl("wait", "--for=condition=Failed", "job/fails", "--timeout=30s")
    assert conditions(raw, "fails") == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    assert raw.get(f"{JOB}/fails").body["status"]["failed"] == 2


def test_job_active_deadline(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(JOB, job("slow", "sleep 30", activeDeadlineSeconds=1))
    sim.kubectl("wait", "--for=condition=Failed", "job/slow", "--timeout=30s")
    assert conditions(raw, "slow")["Failed"] == "DeadlineExceeded"
    eventually(lambda: not raw.get(f"{PODS}?labelSelector=job-name%3Dslow").body["items"])


def test_indexed_job(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(
        JOB, job("idx", "echo index-$JOB_COMPLETION_INDEX", completions=3, parallelism=3, completionMode="Indexed")
    )
    sim.kubectl("wait", "--for=condition=Complete", "job/idx", "--timeout=30s")
    body = raw.get(f"{JOB}/idx").body
    assert body["status"]["completedIndexes"] == "0-2"
    pods = raw.get(f"{PODS}?labelSelector=job-name%3Didx").body["items"]
    logs = sorted(raw.get(f"{PODS}/{p['metadata']['name']}/log").raw.decode() for p in pods)
    assert logs == ["index-0\n", "index-1\n", "index-2\n"]
    assert {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods} == {"0", "1", "2"}


def test_ttl_after_finished_deletes_the_job_and_its_pods(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(JOB, job("ttl", "echo done", ttlSecondsAfterFinished=0))
    eventually(lambda: raw.get(f"{JOB}/ttl").status == 404, 20)
    eventually(lambda: not raw.get(f"{PODS}?labelSelector=job-name%3Dttl").body["items"], 20)
    events = raw.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dttl").body["items"]
    assert "Completed" in {e["reason"] for e in events}  # it finished before the TTL removed it


def test_job_template_is_immutable_and_restart_policy_validated(sim: Simulator) -> None:
    raw = Raw(sim)
    bad = job("bad", "true")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    r = raw.post(JOB, bad)
    assert r.status == 422 and r.body["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    raw.post(JOB, job("imm", "true", suspend=True))
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    }
    assert raw.patch(f"{JOB}/imm", patch, "application/strategic-merge-patch+json").status == 422
    eventually(lambda: "Suspended" in conditions(raw, "imm"))
    assert raw.get(f"{JOB}/imm").body["status"].get("active", 0) == 0


def test_no_processes_or_mounts_leak_after_stop(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = Simulator(workdir=tmp_path_factory.mktemp("leak")).start()
    raw = Raw(s)
    raw.post(PODS, pod("lingering", "sleep 60"))
    eventually(lambda: phase(raw, "lingering") == "Running")
    marker = str(s.workdir)
    s.stop()
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert marker not in procs
    assert not os.path.exists(marker) or not any((s.workdir / "pods").iterdir())


@pytest.mark.parametrize("run_as", [None, 65532])
def test_what_an_image_ships_stays_visible_under_volumes_and_for_non_root(
    sim: Simulator, tmp_path_factory: pytest.TempPathFactory, run_as: int | None
) -> None:
    """An image's files are part of its filesystem: an emptyDir mounted over a parent directory
    (a clone, and its virtualenv, living under /tmp) and a private host directory (a pyenv Python
    under /root, mode 700) must not hide them from the container. Simulator-specific: on a real
    node the image filesystem is the container's root, so neither can happen."""
    from tests.kubesim.images import Image, default_images

    base = tmp_path_factory.mktemp("shipped")
    base.chmod(0o755)  # an image's directories are world-readable; pytest makes its own private
    tool = base / "bin" / "shipped-tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho shipped tool ran as $(id -u)\n")
    tool.chmod(0o755)
    busybox = default_images()["busybox"]
    name = f"ships-{run_as or 'root'}"
    sim.images[f"ships-{name}:1"] = Image(path=[str(tool.parent), *busybox.path], cmd=["sh"], ships=[str(base)])
    raw = Raw(sim)
    context = {"securityContext": {"runAsUser": run_as, "runAsNonRoot": True}} if run_as else {}
    body = pod(
        name,
        "shipped-tool; test -d /tmp && touch /tmp/scratch && echo tmp writable",
        image=f"ships-{name}:1",
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}], **context},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    raw.post(PODS, body)
    eventually(lambda: phase(raw, name) in ("Succeeded", "Failed"))
    assert sim.kubectl("logs", name).stdout == f"shipped tool ran as {run_as or 0}\ntmp writable\n", state(raw, name)
