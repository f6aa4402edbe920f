"""FlowSchedules on the simulator with the real operator, its clock moved by the tests
(``Cluster.set_clock``, the operator's test-only ``--clock-file``): no test waits a real minute."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.operator.cluster import Cluster, flow

QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}
SLOW = {"nodes": {"a": {"run": {"python": "import asyncio\nasync def exec(p):\n    await asyncio.sleep(30)\n"}}}}


def schedule(name: str, flow_name: str, **spec: Any) -> dict[str, Any]:
    body = {"schedule": "* * * * *", "template": {"spec": {"flowRef": {"name": flow_name}}}, **spec}
    return {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowSchedule", "metadata": {"name": name}, "spec": body}


def start_clock(cluster: Cluster) -> datetime:
    """The clock at the real time (the schedule's creation), rounded up to the next whole minute."""
    now = datetime.now(UTC)
    cluster.set_clock(now)
    return datetime.fromtimestamp(math.ceil(now.timestamp() / 60) * 60 + 60, UTC)


def runs_of(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return sorted(r["metadata"]["name"] for r in cluster.list("flowrun", namespace, f"flowlib.dev/schedule={name}"))


def minute_name(name: str, moment: datetime) -> str:
    return f"{name}-{int(moment.timestamp() // 60)}"


def test_one_run_per_minute_also_across_a_restart(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    assert cluster.operator is not None
    first = start_clock(cluster)
    cluster.apply(namespace, flow("quick", QUICK), schedule("every", "quick"))
    for minute in range(3):
        moment = first + timedelta(minutes=minute)
        cluster.set_clock(moment + timedelta(seconds=1))
        expected = [minute_name("every", first + timedelta(minutes=m)) for m in range(minute + 1)]
        cluster.wait_for(f"runs {expected}", lambda e=expected: runs_of(cluster, namespace, "every") == e)  # type: ignore[misc]
        cluster.set_clock(moment + timedelta(seconds=30))  # more checks within the minute start nothing
    cluster.wait_phase(minute_name("every", first + timedelta(minutes=2)), namespace, "Succeeded")
    status = (cluster.get("flowschedule", "every", namespace) or {}).get("status", {})
    assert status.get("lastScheduleTime") == (first + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A restart across a scheduled time: that run is created once, and none is skipped.
    cluster.operator.stop()
    cluster.set_clock(first + timedelta(minutes=3, seconds=5))
    cluster.operator.start()
    expected = [minute_name("every", first + timedelta(minutes=m)) for m in range(4)]
    cluster.wait_for(
        "the run of the minute missed while down", lambda: runs_of(cluster, namespace, "every") == expected
    )
    cluster.operator.restart()
    cluster.wait_for(
        "the schedule checked after the restart",
        lambda: (
            (cluster.get("flowschedule", "every", namespace) or {}).get("status", {}).get("lastScheduleTime")
            == (first + timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    assert runs_of(cluster, namespace, "every") == expected


def test_forbid_skips_and_replace_cancels(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    first = start_clock(cluster)
    cluster.apply(
        namespace,
        flow("slow", SLOW),
        schedule("forbid", "slow", concurrencyPolicy="Forbid", startingDeadlineSeconds=20),
        schedule("replace", "slow", concurrencyPolicy="Replace"),
    )
    cluster.set_clock(first + timedelta(seconds=1))
    cluster.wait_for(
        "first runs", lambda: runs_of(cluster, namespace, "forbid") and runs_of(cluster, namespace, "replace")
    )
    cluster.wait_phase(minute_name("forbid", first), namespace, "Running", timeout=60)
    cluster.set_clock(first + timedelta(minutes=1, seconds=1))
    second = minute_name("replace", first + timedelta(minutes=1))
    cluster.wait_for("the replacing run", lambda: second in runs_of(cluster, namespace, "replace"))
    old = cluster.get("flowrun", minute_name("replace", first), namespace) or {}
    assert old["spec"].get("cancel") is True
    cluster.wait_phase(minute_name("replace", first), namespace, "Cancelled", timeout=60)
    # Forbid: nothing new while its run goes; once past the deadline that time is skipped for good.
    cluster.wait_for(
        "the Forbid schedule checked",
        lambda: any(
            e.get("reason") == "Skipped"
            for e in cluster.list("event", namespace)
            if e["involvedObject"]["name"] == "forbid"
        ),
    )
    assert runs_of(cluster, namespace, "forbid") == [minute_name("forbid", first)]
    # Past the deadline before the run ends: that time is not started late (within it, it would be).
    cluster.set_clock(first + timedelta(minutes=1, seconds=40))
    cluster.kubectl(
        "patch",
        "flowrun",
        minute_name("forbid", first),
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"cancel":true}}',
    )
    cluster.wait_phase(minute_name("forbid", first), namespace, "Cancelled", timeout=60)
    cluster.set_clock(first + timedelta(minutes=2, seconds=1))
    cluster.wait_for(
        "the next time's run",
        lambda: (
            runs_of(cluster, namespace, "forbid")
            == sorted([minute_name("forbid", first), minute_name("forbid", first + timedelta(minutes=2))])
        ),
    )


def test_suspend_history_and_invalid(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    first = start_clock(cluster)
    cluster.apply(
        namespace,
        flow("quick", QUICK),
        schedule("kept", "quick", successfulRunsHistoryLimit=1),
        schedule("paused", "quick", suspend=True),
        schedule("bad", "quick", timeZone="Mars/Olympus"),
    )
    for minute in range(3):
        moment = first + timedelta(minutes=minute)
        cluster.set_clock(moment + timedelta(seconds=1))
        name = minute_name("kept", moment)
        cluster.wait_for(f"run {name}", lambda n=name: n in runs_of(cluster, namespace, "kept"))  # type: ignore[misc]
        cluster.wait_phase(name, namespace, "Succeeded")
    last = minute_name("kept", first + timedelta(minutes=2))
    cluster.wait_for("history trimmed to 1", lambda: runs_of(cluster, namespace, "kept") == [last])
    assert runs_of(cluster, namespace, "paused") == []
    ready = cluster.wait_for(
        "the invalid schedule reported",
        lambda: [
            c for c in (cluster.get("flowschedule", "bad", namespace) or {}).get("status", {}).get("conditions", [])
        ],
    )
    assert ready[0]["status"] == "False" and ready[0]["reason"] == "InvalidTimeZone"
    assert "spec.timeZone" in ready[0]["message"]
    assert runs_of(cluster, namespace, "bad") == []
