"""Chaos: two dozen runs under every fault at once still end right (issue 12, point 7).

One scenario, bounded in time, that applies the fault mix a review found runs ending wrong under:
API server restarts with seconds of downtime, cut watch streams, compaction (so watches resume
with 410 Gone and kopf lists again, which never reports what was deleted meanwhile), a fifth of
the FlowRun status patches answered 500 plus one burst long enough to exhaust a client's retries,
and runner pods killed mid-run (SIGKILL and SIGTERM; ``retries: 2`` lets the Job start them again).
Restarts leave each watch stream to reconnect on its own back-off ladder, so one resource's events
can lag the others' by tens of seconds (the review saw it); two outages make that lag certain: the
pod watch's reconnections are refused for about 40 s from the start, longer than the operator's
30 s "Job without a pod" wait, and the Job watch's for 20 s or more.

Every run must end in its expected phase with its expected output, with exactly one Job (a
cancelled run keeps its Job too: its runner stops by itself within the cancel grace), and none may
be left unfinished. The test prints one
summary line (runs, faults by type, ended right, ended wrong with reasons, stuck, duplicates) and
fails naming each run that ended wrong or got stuck.

The test thread drives the timeline (restarts block for their downtime); two helper threads fail
every fifth status patch and kill runner pods. Both read the simulator's store directly, so they
keep working while the API is down.

A second, targeted test pins the other wrong ending the review saw: the operator deletes the Job of a
run that cannot start, its status write then fails for good, and the next pass must not take the Job
it deleted itself for one deleted from under the run.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.operator.cluster import Cluster, flow, flowrun

pytestmark = [pytest.mark.slow, pytest.mark.kubesim]

FINAL = ("Succeeded", "Failed", "Cancelled")
DOWNTIME = 3.0
DEADLINE = 150.0  # seconds from the first apply until every run must have ended
STATUS_FAILURE_EVERY = 5  # every fifth status patch fails: 20%
RETRY_EXHAUSTING_BURST = 10  # more consecutive 500s than the clients' eight attempts
# kopf's six attempts to reconnect a watch wait 1, 2, 5, 10 and 20 s; each attempt may take two
# refusals (aiohttp repeats a GET once when a reused connection drops). Ten keep the pod watch dark
# for 38 s to 46 s from the start, past the operator's 30 s wait for a Job's pod; eight keep the Job
# watch dark for roughly 20 s to 40 s.
POD_WATCH_REFUSALS = 10
JOB_WATCH_REFUSALS = 8

DOUBLE = {"run": {"python": "params['n'] * 2"}, "output": "result"}
SLEEP_THEN_DOUBLE = (
    "import asyncio\nasync def exec(prep_res):\n    await asyncio.sleep({seconds})\n    return params['n'] * 2\n"
)
RAISE = "def exec(prep_res):\n    raise ValueError('bad input ' + str(params['n']))\n"


def chaos_flows() -> list[dict[str, Any]]:
    """Quick (one node), slow (a node that sleeps long enough to be killed in), failing, holding."""

    def slow(seconds: float) -> dict[str, Any]:
        return {
            "nodes": {
                "first": {"run": {"python": "'first'"}, "next": {"default": "slow"}},
                "slow": {"run": {"python": SLEEP_THEN_DOUBLE.format(seconds=seconds)}, "output": "result"},
            }
        }

    return [
        flow("chaos-quick", {"nodes": {"double": DOUBLE}}),
        flow("chaos-slow", slow(4)),
        flow("chaos-bad", {"nodes": {"bad": {"run": {"python": RAISE}}}}),
        flow("chaos-hold", slow(60)),
        flow("chaos-long", slow(35)),
    ]


@dataclass
class Expected:
    """A run of the scenario and how it must end."""

    name: str
    flow: str
    n: int
    phase: str
    reason: str

    @property
    def output(self) -> dict[str, Any] | None:
        return {"result": self.n * 2} if self.phase == "Succeeded" else None

    def manifest(self) -> dict[str, Any]:
        return flowrun(self.name, self.flow, params={"n": self.n}, retries=2, outputs=["result"])

    def problem(self, status: dict[str, Any], kills: int) -> str | None:
        """Why ``status`` is not the right end of this run (None when it is)."""
        phase = status.get("phase")
        reason = (status.get("conditions") or [{}])[0].get("reason")
        if (phase, reason) != (self.phase, self.reason):
            return f"{phase}/{reason}: {status.get('message')}"
        if self.output is not None and status.get("output") != self.output:
            return f"output {status.get('output')!r}, expected {self.output!r}"
        if self.flow == "chaos-bad" and f"bad input {self.n}" not in (status.get("message") or ""):
            return f"message {status.get('message')!r} does not name the error"
        attempt = status.get("attempt") or 0
        if self.phase == "Succeeded" and not 1 <= attempt <= kills + 1:
            return f"attempt {attempt} after {kills} kills"
        return None


def plan() -> list[list[Expected]]:
    """Three waves, so that the faults hit runs being created, running and finishing."""
    quick = [Expected(f"q{i:02}", "chaos-quick", i, "Succeeded", "Succeeded") for i in range(12)]
    slow = [Expected(f"s{i:02}", "chaos-slow", 20 + i, "Succeeded", "Succeeded") for i in range(7)]
    bad = [Expected(f"b{i:02}", "chaos-bad", 40 + i, "Failed", "FlowFailed") for i in range(3)]
    held = [Expected(f"c{i:02}", "chaos-hold", 50 + i, "Cancelled", "Cancelled") for i in range(2)]
    long = [Expected(f"l{i:02}", "chaos-long", 60 + i, "Succeeded", "Succeeded") for i in range(2)]
    return [
        [*quick[:4], *slow[:3], bad[0], held[0], *long],
        [*quick[4:8], *slow[3:5], bad[1], held[1]],
        [*quick[8:], *slow[5:], bad[2]],
    ]


KILLS = [("s00", signal.SIGKILL), ("s01", signal.SIGTERM), ("s03", signal.SIGKILL), ("s04", signal.SIGTERM)]
KILLS += [("s04", signal.SIGKILL)]  # the second attempt of s04 too: its third attempt must finish it
KILL_AFTER = 1.0


class Store:
    """The namespace's objects straight from the simulator's store (no request, works while the
    API is down); the objects are never mutated there, so reading them from this thread is safe."""

    def __init__(self, sim: Any, namespace: str) -> None:
        self.sim, self.namespace = sim, namespace

    def items(self, group: str, resource: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sim.call(self.sim.store.items, (group, resource), self.namespace)
        return found

    def runs(self) -> dict[str, dict[str, Any]]:
        return {r["metadata"]["name"]: r for r in self.items("flowlib.dev", "flowruns")}

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.items("", "pods")}


def describe_pods(store: Store, run: str) -> str:
    """Each pod of ``run`` as phase, exit code and the end of its termination message (for a run
    that ended wrong: the runner's own account, ``FallbackToLogsOnError`` puts its log tail there)."""
    lines = []
    for pod in store.pods().values():
        if (pod["metadata"].get("labels") or {}).get("flowlib.dev/flowrun") != run:
            continue
        for state in (pod.get("status") or {}).get("containerStatuses") or []:
            ended = (state.get("state") or {}).get("terminated") or {}
            tail = (ended.get("message") or "").strip().splitlines()[-3:]
            lines.append(f"{pod['metadata']['name']} {pod['status'].get('phase')} exit {ended.get('exitCode')} {tail}")
    return "; ".join(lines) or "no pods"


class Helper(threading.Thread):
    """Calls ``step`` every ``period`` seconds until it returns True (nothing left to do) or the
    helper is stopped; an exception is kept and raised in the test thread by ``stop``."""

    def __init__(self, step: Callable[[], bool], period: float) -> None:
        super().__init__(daemon=True)
        self.step, self.period = step, period
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopped.is_set() and not self.step():
                self.stopped.wait(self.period)
        except BaseException as error:  # handed to the test thread, which raises it
            self.error = error

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)
        if self.error is not None:
            raise self.error


class StatusFailures:
    """Arms a single 500 for every ``STATUS_FAILURE_EVERY``-th status patch of the namespace's
    FlowRuns (runner's and operator's alike), counting them from the simulator's request log."""

    def __init__(self, sim: Any, namespace: str, requests: list[tuple[str, str]]) -> None:
        self.sim, self.requests = sim, requests
        self.path = rf"^/apis/flowlib\.dev/v1alpha1/namespaces/{namespace}/flowruns/[^/]+/status$"
        self.pattern = re.compile(self.path)
        self.seen = 0
        self.patches = 0
        self.armed = 0

    def step(self) -> bool:
        new = self.requests[self.seen :]
        self.seen += len(new)
        for method, path in new:
            if method == "PATCH" and self.pattern.match(path.split("?", 1)[0]):
                self.patches += 1
                if self.patches % STATUS_FAILURE_EVERY == 0:
                    self.sim.faults.fail("PATCH", self.path, 500, times=1)
                    self.armed += 1
        return False

    def burst(self) -> None:
        self.sim.faults.fail("PATCH", self.path, 500, times=RETRY_EXHAUSTING_BURST)
        self.armed += RETRY_EXHAUSTING_BURST


class Killer:
    """Kills the runner of each planned run mid-run, one attempt per planned kill: a second kill of a
    run waits for the Job's next pod.

    A pod is killed ``KILL_AFTER`` seconds after the killer first sees its process running, which
    lands inside the slow node (the runner takes well under a second to reach it, and the node
    sleeps for seconds). The moment is read from the simulator's own pods, not from the run's
    status: the scenario's faults may hold the runner's status reports back past the whole node."""

    def __init__(self, store: Store, namespace: str) -> None:
        self.store, self.namespace = store, namespace
        self.pending = list(KILLS)
        self.killed: set[str] = set()
        self.first_seen: dict[str, float] = {}
        self.kills: Counter[str] = Counter()
        self.by_signal: Counter[str] = Counter()

    def step(self) -> bool:
        if not self.pending:
            return True
        runs, pods = self.store.runs(), self.store.pods()
        now = time.monotonic()
        for target in list(self.pending):
            name, sig = target
            if any(t[0] == name for t in self.pending[: self.pending.index(target)]):
                continue  # an earlier kill of this run comes first
            if ((runs.get(name) or {}).get("status") or {}).get("phase") in FINAL:
                continue
            for pod_name, pod in pods.items():
                if (pod["metadata"].get("labels") or {}).get("flowlib.dev/flowrun") != name:
                    continue
                if pod_name in self.killed or (pod.get("status") or {}).get("phase") != "Running":
                    continue
                if now - self.first_seen.setdefault(pod_name, now) < KILL_AFTER:
                    continue
                if self.store.sim.kill_pod_process(self.namespace, pod_name, sig=sig):
                    self.killed.add(pod_name)
                    self.kills[name] += 1
                    self.by_signal[sig.name] += 1
                    self.pending.remove(target)
                break
        return not self.pending


def test_runs_end_right_under_api_restarts_watch_cuts_compaction_500s_and_killed_pods(
    simulator_only: Cluster, namespace: str
) -> None:
    cluster = simulator_only
    sim = cluster.sim
    assert cluster.operator is not None
    log_start = len(cluster.operator.log())
    waves = plan()
    expected = {e.name: e for wave in waves for e in wave}
    store = Store(sim, namespace)
    faults: Counter[str] = Counter()
    started = 0.0
    injected_before = sim.faults.injected

    def at(seconds: float) -> None:
        """Wait until ``seconds`` after the start of the scenario (the timeline's next step)."""
        time.sleep(max(0.0, started + seconds - time.monotonic()))

    def restart_api() -> None:
        sim.restart_api(DOWNTIME)
        faults["api restarts"] += 1

    def cut_watches() -> None:
        faults["watch streams cut"] += sim.cut_watches()

    def compact() -> None:
        sim.compact()
        faults["compactions"] += 1

    def watch_outage(resource: str, path: str, refusals: int) -> None:
        """Cut the streams, and drop the next reconnections of the operator's (cluster-wide) watch
        of ``resource``: its events stop while every other stream goes on."""
        sim.faults.drop("GET", path, times=refusals)
        faults[f"{resource} watch reconnections dropped"] += refusals
        cut_watches()

    def cancel_when_running(name: str) -> None:
        cluster.wait_for(
            f"{name} to run", lambda: (store.runs()[name].get("status") or {}).get("phase") == "Running", 60
        )
        cluster.kubectl("patch", "flowrun", name, "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}')

    # The operator must be watching everything before the faults begin (it may have just started).
    cluster.apply(namespace, *chaos_flows(), flowrun("warm-up", "chaos-quick", params={"n": 1}))
    assert cluster.wait_phase("warm-up", namespace, "Succeeded", "Failed", timeout=60)["phase"] == "Succeeded"
    with sim.recording() as requests:
        failures = StatusFailures(sim, namespace, requests)
        killer = Killer(store, namespace)
        helpers = [Helper(failures.step, period=0.02), Helper(killer.step, period=0.2)]
        for helper in helpers:
            helper.start()
        started = time.monotonic()
        try:
            watch_outage("pods", r"^/api/v1/pods$", POD_WATCH_REFUSALS)  # before wave 1: its pods go unseen
            cluster.apply(namespace, *(e.manifest() for e in waves[0]))
            at(2)
            cut_watches()
            at(4)
            watch_outage("jobs", r"^/apis/batch/v1/jobs$", JOB_WATCH_REFUSALS)
            restart_api()
            cluster.apply(namespace, *(e.manifest() for e in waves[1]))
            at(11)
            compact()
            cut_watches()  # every watch resumes from a compacted resourceVersion: 410 Gone, relist
            at(14)
            failures.burst()
            at(16)
            restart_api()
            cluster.apply(namespace, *(e.manifest() for e in waves[2]))
            at(22)
            compact()
            restart_api()  # the restart drops the watches: they resume into a 410 too
            cancel_when_running("c00")
            cancel_when_running("c01")
            cut_watches()

            def unfinished() -> list[str]:
                runs = store.runs()
                return [n for n in expected if (runs.get(n, {}).get("status") or {}).get("phase") not in FINAL]

            while unfinished() and time.monotonic() - started < DEADLINE:
                time.sleep(0.5)
        finally:
            for helper in helpers:
                helper.stop()
            sim.faults.clear()
    elapsed = time.monotonic() - started

    runs = store.runs()
    jobs = Counter(
        (j["metadata"].get("labels") or {}).get("flowlib.dev/flowrun")
        for j in cluster.list("jobs", namespace, "flowlib.dev/flowrun")
    )
    right: list[str] = []
    wrong: dict[str, str] = {}
    stuck: dict[str, str] = {}
    for name, want in expected.items():
        status = runs.get(name, {}).get("status") or {}
        if status.get("phase") not in FINAL:
            stuck[name] = f"{status.get('phase')} ({status.get('message')}), {jobs[name]} Job(s)"
        elif (problem := want.problem(status, killer.kills[name])) is not None:
            wrong[name] = problem
        else:
            right.append(name)
    duplicates = {n: c for n, c in jobs.items() if c > 1}
    # Every run keeps its one Job, a cancelled one too (its runner stopped by itself).
    jobless = [n for n, e in expected.items() if jobs[n] == 0]
    # The operator's fresh reads of a run's pods (its confirmation before settling a run).
    fresh_reads = sum(
        1 for method, path in requests if method == "GET" and path.startswith(f"/api/v1/namespaces/{namespace}/pods?")
    )
    operator_log = cluster.operator.log()[log_start:]
    relists = operator_log.count("Restarting the watch-stream")
    faults["status 500s armed"] = failures.armed
    injected = sim.faults.injected - injected_before
    faults["runner kills"] = sum(killer.kills.values())
    summary = (
        f"chaos: {len(expected)} runs in {elapsed:.0f}s; faults: "
        + ", ".join(f"{count} {kind}" for kind, count in faults.items())
        + f" ({injected} refusals served, of {failures.patches} status patches and the watches' reconnections; "
        + f"{relists} watch restarts after 410, "
        + f"{fresh_reads} fresh reads of a run's pods by the operator, "
        + f"kills by signal {dict(killer.by_signal)}); ended right {len(right)}/{len(expected)}, "
        + f"ended wrong {len(wrong)} {wrong}, stuck {len(stuck)} {stuck}, "
        + f"duplicate Jobs {len(duplicates)} {duplicates}, finished runs without their Job {jobless}"
    )
    print("\n" + summary)
    for name in [*wrong, *stuck]:
        print(f"{name}: {describe_pods(store, name)}")
    assert not killer.pending, f"not every planned kill happened: {killer.pending}\n{summary}"
    assert injected > RETRY_EXHAUSTING_BURST and relists >= 1, f"the faults did not all happen\n{summary}"
    assert not wrong and not stuck and not duplicates and not jobless, summary


def test_a_final_status_that_fails_after_its_job_was_deleted_is_written_as_decided(
    simulator_only: Cluster, namespace: str
) -> None:
    """The operator deletes the Job of a run whose pod cannot start, then writes why; when that write
    fails for good (every retry answered 500), the next pass must write the same reason, not take the
    Job it deleted itself for one deleted from under the run (JobDeleted)."""
    cluster = simulator_only
    sim = cluster.sim
    path = rf"^/apis/flowlib\.dev/v1alpha1/namespaces/{namespace}/flowruns/stuck-1/status$"
    cluster.apply(
        namespace, *chaos_flows(), flowrun("stuck-1", "chaos-quick", params={"n": 1}, image="registry.invalid/no:1")
    )
    cluster.wait_for(
        "the pod's start failure to be noted",
        lambda: (
            "waiting for the runner pod to start" in (cluster.run_status("stuck-1", namespace).get("message") or "")
        ),
    )
    with sim.recording() as requests:
        sim.faults.fail("PATCH", path, 500, times=10_000)
        try:
            cluster.wait_for(
                "the Job to be deleted", lambda: not cluster.list("jobs", namespace, "flowlib.dev/flowrun")
            )
            deleted_at = len(requests)

            def final_write_given_up() -> bool:
                after = [r for r in requests[deleted_at:] if r[0] == "PATCH" and re.match(path, r[1].split("?")[0])]
                return len(after) >= 8  # the client's eight attempts, all refused

            cluster.wait_for("the final status write to fail", final_write_given_up, timeout=60)
        finally:
            sim.faults.clear()
    status = cluster.wait_phase("stuck-1", namespace, "Failed", "Succeeded", timeout=30)
    reason = status["conditions"][0]["reason"]
    assert reason in ("ErrImagePull", "ImagePullBackOff"), status
    assert "could not start within" in status["message"]
