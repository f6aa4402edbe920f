"""Nothing lost, on the simulator with real runner processes: a 5 MB output is kept whole in the
run's store (the default configmap store, and an s3 store on moto's loopback server) and
``flowctl output`` gives it back exactly; a run cancelled mid-node stops by itself and keeps its
Job, its pod and the pod's log (``kubectl logs``, ``flowctl logs``), and once they are gone (the
FlowRun's TTL, or someone deleting them) ``flowctl logs`` reads the log the runner archived in the
store.

flowctl runs as the user would (a subprocess with the test's admin kubeconfig; for s3, the AWS keys
moto takes in its environment), so what it reads is read with the user's credentials.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

from flowlib_runner.execution.logarchive import archived_attempts, read_log
from flowlib_runner.kube import KubeClient, load_config
from flowlib_runner.store import ConfigMapStore

from flowlib_api.meta import FLOWRUNS
from tests.flowctl.test_cluster import flowctl
from tests.operator.cluster import Cluster, flow, flowrun
from tests.store.conftest import S3Server, s3_server  # noqa: F401 (the fixture)

WAIT = 120.0
SIZE = 2_500_000
"""Random bytes whose hex makes the 5 MB value (hex compresses to about half: not trivially)."""
SEED = 1313

BIG = {
    "nodes": {
        "make": {
            "run": {
                "python": "import random\ndef exec(_):\n"
                "    return random.Random(params['seed']).randbytes(params['size']).hex()\n"
            },
            "output": "report",
            "next": {"default": "small"},
        },
        "small": {"run": {"python": "'fine'"}, "output": "note"},
    }
}

TICKING = {
    "nodes": {
        "first": {"run": {"python": "'one'"}, "output": "one", "next": {"default": "wait"}},
        "wait": {
            "run": {
                "python": "import asyncio\nasync def exec(_):\n    for i in range(params.get('ticks', 1200)):\n"
                "        print(f'tick {i}', flush=True)\n        await asyncio.sleep(0.05)\n"
            }
        },
    }
}


def expected_value() -> str:
    return random.Random(SEED).randbytes(SIZE).hex()


def check_output(cluster: Cluster, namespace: str, run: str, tmp_path: Path, where: str) -> dict[str, Any]:
    status = cluster.wait_phase(run, namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)[:4000]
    assert "outputRefs" in status, json.dumps({k: v for k, v in status.items() if k != "output"}, indent=1)[:4000]
    ref = status["outputRefs"]["report"]
    assert ref["blob"] == "outputs/report" and ref["bytes"] == 2 * SIZE + 2, ref
    assert status["output"]["report"].startswith(f"<{2 * SIZE + 2 + len('report')} bytes of JSON, shortened>")
    assert status["output"]["note"] == "fine" and "note" not in status["outputRefs"]
    target = tmp_path / f"{run}.json"
    started = time.monotonic()
    done = flowctl(cluster, "-n", namespace, "output", run, "report", "-o", str(target), timeout=WAIT)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert where in done.stderr, done.stderr
    data = target.read_bytes()
    assert json.loads(data) == expected_value()
    print(
        f"{run}: {len(data)} bytes of JSON kept in {ref['parts']} part(s), {ref['storedBytes']} bytes stored; "
        f"flowctl output took {took:.1f}s"
    )
    return status


def test_a_5mb_output_is_kept_whole_in_the_configmap_store(
    simulator_only: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster = simulator_only
    params = {"size": SIZE, "seed": SEED}
    cluster.apply(namespace, flow("big", BIG), flowrun("big", "big", params=params, outputs=["report", "note"]))
    status = check_output(cluster, namespace, "big", tmp_path, f"configmap {namespace}/big-store-*")
    assert status["outputRefs"]["report"]["parts"] > 1  # a ConfigMap holds about 1000 KiB: the value spans several
    listed = flowctl(cluster, "-n", namespace, "output", "big")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[1][:2] == ["note", "6"] and rows[2][:2] == ["report", str(2 * SIZE + 2)], rows
    small = flowctl(cluster, "-n", namespace, "output", "big", "note")
    assert (small.returncode, small.stdout) == (0, '"fine"\n'), small.stderr


def test_a_5mb_output_is_kept_whole_in_an_s3_store(
    simulator_only: Cluster,
    namespace: str,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
) -> None:
    cluster = simulator_only
    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-keys", "labels": {"flowlib.dev/runner-access": "true"}},
        "stringData": {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key"},
    }
    store = {
        "type": "s3",
        "s3": {
            "bucket": s3_server.bucket,
            "prefix": "runs",
            "endpoint": s3_server.endpoint,
            "region": "us-east-1",
            "secretName": "s3-keys",
        },
    }
    params = {"size": SIZE, "seed": SEED}
    run = flowrun("big-s3", "big", params=params, outputs=["report", "note"], store=store)
    cluster.apply(namespace, keys, flow("big", BIG), run)
    status = check_output(cluster, namespace, "big-s3", tmp_path, f"s3://{s3_server.bucket}/runs/{namespace}/big-s3-")
    assert status["outputRefs"]["report"]["parts"] == 1


def test_a_cancelled_run_keeps_its_pod_and_log_then_its_archive(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("ticking", TICKING), flowrun("ticks", "ticking"))

    def ticking() -> bool:
        log = cluster.kubectl("logs", "-n", namespace, "job/ticks-run", check=False)
        return "tick 5" in log

    cluster.wait_for("the node to tick", ticking, timeout=WAIT)
    done = flowctl(cluster, "-n", namespace, "cancel", "ticks", "--wait", timeout=WAIT)
    assert done.returncode == 130, done.stderr
    status = cluster.run_status("ticks", namespace)
    assert status["message"] == "cancelled: cancelled (spec.cancel)", status  # the runner's own report
    # The runner ended by itself: its Job completed (no retry) and its pod stays, with its log.
    complete = cluster.wait_for(
        "the Job to complete",
        lambda: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in ((cluster.get("job", "ticks-run", namespace) or {}).get("status") or {}).get("conditions") or []
        ),
        timeout=WAIT,
    )
    assert complete
    job = cluster.get("job", "ticks-run", namespace)
    assert job is not None and not job["metadata"].get("deletionTimestamp")
    assert not job["status"].get("failed"), job["status"]
    pods = cluster.list("pod", namespace, "flowlib.dev/flowrun=ticks")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded", [p.get("status") for p in pods]
    assert not pods[0]["metadata"].get("deletionTimestamp")
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0, terminated
    pod_log = cluster.kubectl("logs", "-n", namespace, pods[0]["metadata"]["name"])
    assert "tick 5" in pod_log and "WARNING [run] run cancelled: cancelled (spec.cancel)" in pod_log, pod_log[-800:]
    assert "the run log of attempt 1 was saved" in pod_log.splitlines()[-1], pod_log[-800:]  # then it exited
    reasons = {e["reason"] for e in cluster.list("events", namespace) if e["involvedObject"]["kind"] == "FlowRun"}
    assert "CancelGraceExpired" not in reasons, reasons
    # flowctl reads the pod while it is there (not the archive)...
    from_pod = flowctl(cluster, "-n", namespace, "logs", "ticks")
    assert from_pod.returncode == 0, from_pod.stderr
    assert "archived" not in from_pod.stderr and "archived" not in from_pod.stdout, from_pod.stderr
    assert "tick 5" in from_pod.stdout
    assert "WARNING [run] run cancelled: cancelled (spec.cancel)" in from_pod.stdout, from_pod.stdout[-800:]
    # ...and the runner archived the same log in the store on its way out.
    archived = cluster.wait_for(
        "the attempt's log in the store",
        lambda: asyncio.run(_archived_logs(cluster, namespace, "ticks")).get(1),
        timeout=WAIT,
    )
    assert "tick 5" in archived and "run cancelled: cancelled (spec.cancel)" in archived.splitlines()[-1]

    # Once the Job and pod are gone (as the FlowRun's TTL would take them), the archive is read.
    cluster.kubectl("delete", "job", "ticks-run", "-n", namespace, "--cascade=background")
    cluster.wait_for(
        "the run's pods to be gone",
        lambda: not cluster.list("pod", namespace, "flowlib.dev/flowrun=ticks"),
        timeout=WAIT,
    )
    logs = flowctl(cluster, "-n", namespace, "logs", "ticks")
    assert logs.returncode == 0, logs.stderr
    assert (
        f"printing the log archived in the run's store (configmap {namespace}/ticks-store-*, with your kubeconfig's "
        "credentials)" in logs.stderr
    ), logs.stderr
    lines = logs.stdout.splitlines()
    assert lines[0] == f"==> attempt 1 (archived in configmap {namespace}/ticks-store-*) <==", lines[:3]
    text = logs.stdout
    assert "[first#1] finished" in text and "tick 0" in text and "tick 5" in text
    assert "run cancelled: cancelled (spec.cancel)" in lines[-1], lines[-8:]
    followed = flowctl(cluster, "-n", namespace, "logs", "-f", "ticks")  # -f on a finished run: the same log
    assert followed.returncode == 130 and "tick 5" in followed.stdout, followed.stderr


def test_a_pod_stopped_with_sigterm_archives_its_attempt_too(simulator_only: Cluster, namespace: str) -> None:
    """An eviction's SIGTERM (no cancel): the attempt's log is saved before the pod goes, and the
    next attempt's after it; both are in the store."""
    cluster = simulator_only
    cluster.apply(namespace, flow("ticking", TICKING), flowrun("evicted", "ticking", params={"ticks": 60}, retries=1))

    def first_pod() -> str | None:
        for pod in cluster.list("pod", namespace, "flowlib.dev/flowrun=evicted"):
            log = cluster.kubectl("logs", "-n", namespace, pod["metadata"]["name"], check=False)
            if "tick 5" in log:
                name: str = pod["metadata"]["name"]
                return name
        return None

    pod = cluster.wait_for("the first pod to tick", first_pod, timeout=WAIT)
    assert cluster.sim.kill_pod_process(namespace, pod, sig=signal.SIGTERM)
    status = cluster.wait_phase("evicted", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Succeeded" and status["attempt"] == 2, status

    def archived() -> dict[int, str] | None:
        logs = asyncio.run(_archived_logs(cluster, namespace, "evicted"))
        return logs if sorted(logs) == [1, 2] else None

    logs = cluster.wait_for("both attempts' logs in the store", archived, timeout=WAIT)
    assert "tick 5" in logs[1] and "runner pod stopped (SIGTERM)" in logs[1], logs[1][-1500:]
    assert "resumed at wait" in logs[2] and "run finished" in logs[2].splitlines()[-1], logs[2][-1500:]


async def _archived_logs(cluster: Cluster, namespace: str, run: str) -> dict[int, str]:
    """The logs archived in the run's configmap store, read as flowctl reads them (admin here)."""
    async with KubeClient(load_config(str(cluster.kubeconfig))) as client:
        flowrun_body = await client.get(FLOWRUNS, run, namespace)
        store = ConfigMapStore(client, namespace, f"{run}-store", owner=flowrun_body)
        found = {}
        for attempt in await archived_attempts(store):
            found[attempt] = await read_log(store, attempt) or ""
        return found
