"""The runner token of a run under a borrowed account (``runner_token``): made with its Secret and the
run's account, refreshed once a quarter of its life has gone (a fake clock: no waiting), read back
after a restart and revoked with its Secret, against a simulator of its own (no operator process,
so nothing else touches the run); and a replaced token reaching a running runner, with the
session's operator."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
from flowlib_operator.runner_token import ANNOTATION_ISSUED, RunnerTokens
from flowlib_runner.kube import KubeClient, load_config

from flowlib_api.meta import FLOWRUNS
from tests.kubesim import Simulator
from tests.operator.cluster import ROOT, Cluster, flowrun
from tests.test_kubesim.helpers import Raw

pytestmark = pytest.mark.kubesim

NAMESPACE = "team"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _secret(sim: Simulator) -> dict[str, Any]:
    answer = Raw(sim).get(f"/api/v1/namespaces/{NAMESPACE}/secrets/borrower-runner-token")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def _token(sim: Simulator) -> str:
    return base64.b64decode(_secret(sim)["data"]["token"]).decode()


def _user(sim: Simulator, token: str) -> str | None:
    review = Raw(sim).post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token}}).body
    status = review["status"]
    return status["user"]["username"] if status["authenticated"] else None


def test_the_runner_token_is_made_refreshed_and_revoked_with_its_secret(kubesim: Simulator) -> None:
    sim = kubesim
    sim.kubectl("apply", "-k", str(ROOT / "crds"))
    sim.ensure_service_account(NAMESPACE, "shared")
    run = flowrun("borrower", flow={"nodes": {"a": {"run": {"python": "1"}}}}, serviceAccountName="shared")
    created = Raw(sim).post(f"/apis/flowlib.dev/v1alpha1/namespaces/{NAMESPACE}/flowruns", run)
    assert created.status == 201, created.body
    clock = Clock()

    async def scenario() -> None:
        async with KubeClient(load_config(str(sim.kubeconfig))) as client:
            body = await client.get(FLOWRUNS, "borrower", NAMESPACE)
            tokens = RunnerTokens(client, lifetime=600, clock=clock)
            assert await tokens.keep(body) is True
            first = _token(sim)
            assert _user(sim, first) == f"system:serviceaccount:{NAMESPACE}:borrower-runner"
            account = Raw(sim).get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/borrower-runner").body
            assert [o["uid"] for o in account["metadata"]["ownerReferences"]] == [body["metadata"]["uid"]]
            secret = _secret(sim)
            assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [body["metadata"]["uid"]]
            issued = secret["metadata"]["annotations"][ANNOTATION_ISSUED]

            # Fresh: nothing to do, and no request made.
            sim.server.request_log.clear()
            sim.server.log_requests = True
            assert await tokens.keep(body) is False
            sim.server.log_requests = False
            assert sim.server.request_log == []

            # A quarter of its life later it is replaced; the Secret holds the new one.
            clock.now += 151
            assert await tokens.keep(body) is True
            second = _token(sim)
            assert second != first
            assert _user(sim, second) == f"system:serviceaccount:{NAMESPACE}:borrower-runner"
            assert _secret(sim)["metadata"]["annotations"][ANNOTATION_ISSUED] != issued

            # An operator that restarted knows nothing, and reads the Secret's age instead.
            assert await RunnerTokens(client, lifetime=600, clock=clock).keep(body) is False
            assert _token(sim) == second

            # A finished run gets no new token.
            finished = {**body, "status": {"phase": "Succeeded"}}
            clock.now += 600
            assert await tokens.keep(finished) is False
            assert _token(sim) == second
            clock.now -= 600
            assert await tokens.keep(body) is False  # read back from the Secret: fresh

            assert Raw(sim, first).get("/apis").status == 200  # the older one too, until it expires
            # Deleting the Secret revokes every token bound to it.
            assert Raw(sim).delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/borrower-runner-token").status == 200
            for token in (first, second):
                assert _user(sim, token) is None
                assert Raw(sim, token).get("/apis").status == 401
            # A resync pass that reads the run afresh looks at the Secret again and makes both anew.
            assert await tokens.keep(body) is False  # what it knows is fresh: no request
            assert await tokens.keep(body, recheck=True) is True
            third = _token(sim)
            assert _user(sim, third) == f"system:serviceaccount:{NAMESPACE}:borrower-runner"
            # A Secret replaced under the same name (another uid) is seen too.
            old = _secret(sim)
            Raw(sim).delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/borrower-runner-token")
            keep = {k: old["metadata"][k] for k in ("name", "labels", "annotations", "ownerReferences")}
            Raw(sim).post(f"/api/v1/namespaces/{NAMESPACE}/secrets", {"metadata": keep, "data": old["data"]})
            assert _user(sim, third) is None
            assert await tokens.keep(body, recheck=True) is True
            assert _user(sim, _token(sim)) == f"system:serviceaccount:{NAMESPACE}:borrower-runner"

    asyncio.run(scenario())


ROTATED = """
import os, time


def exec(_):
    path = os.environ["FLOWLIB_RUNNER_TOKEN_FILE"]
    first = open(path).read()
    deadline = time.monotonic() + 45
    while open(path).read() == first:
        if time.monotonic() > deadline:
            return "never rotated"
        time.sleep(0.05)
    return "rotated"
"""
"""A step that waits (bounded) until the runner token file of its pod holds another token."""


def test_a_replaced_token_reaches_the_running_runner(simulator_only: Cluster, namespace: str) -> None:
    """The runner-token Secret is replaced while the run goes on (a new Secret, so the old token is
    revoked, holding a new token bound to it, as a refresh writes it): the kubelet rewrites the pod's
    file and the runner reports the end of the run with the new token."""
    cluster = simulator_only
    cluster.sim.ensure_service_account(namespace, "shared")
    cluster.kubectl("label", "serviceaccount", "shared", "-n", namespace, "flowlib.dev/runner-access=true")
    run = flowrun("rotating", flow={"nodes": {"a": {"run": {"python": ROTATED}, "output": "seen"}}}, outputs=["seen"])
    run["spec"]["serviceAccountName"] = "shared"
    cluster.apply(namespace, run)
    cluster.wait_for("the step to run", lambda: cluster.run_status("rotating", namespace).get("phase") == "Running")
    raw, secrets = Raw(cluster.sim), f"/api/v1/namespaces/{namespace}/secrets"
    old = raw.get(f"{secrets}/rotating-runner-token").body
    old_token = base64.b64decode(old["data"]["token"]).decode()
    assert raw.delete(f"{secrets}/rotating-runner-token").status == 200
    assert Raw(cluster.sim, old_token).get("/apis").status == 401
    keep = {k: old["metadata"][k] for k in ("name", "labels", "annotations", "ownerReferences")}
    new = raw.post(secrets, {"metadata": keep}).body
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "rotating-runner-token", "uid": new["metadata"]["uid"]}
    request = {"spec": {"expirationSeconds": 600, "boundObjectRef": ref}}
    answer = raw.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/rotating-runner/token", request)
    assert answer.status == 201, answer.body
    token = base64.b64encode(answer.body["status"]["token"].encode()).decode()
    assert raw.patch(f"{secrets}/rotating-runner-token", {"data": {"token": token}}).status == 200
    status = cluster.wait_phase("rotating", namespace, "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"seen": "rotated"}
