"""The operator's per-flow metrics: counts by namespace, flow and phase, durations by flow, the
runs that exist now, and the bound on label values (``flowlib_operator.metrics``).

The end-to-end test scrapes a real operator's ``/metrics`` (on a free port) after real runs on a
simulator of its own, and parses it with prometheus-client's own parser."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowlib_operator.metrics import NEW_PHASE, OTHER, FlowLabels, RunsByPhase
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.cluster import Cluster, flow, flowrun, own_operator

QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}
BROKEN = {"nodes": {"a": {"run": {"python": "1 // 0"}}}}


def test_label_pairs_past_the_bound_are_counted_under_other() -> None:
    labels = FlowLabels(limit=3)
    seen = {labels.of(f"ns-{i % 2}", f"flow-{i}") for i in range(300)}
    own = {pair for pair in seen if OTHER not in pair}
    assert own == {("ns-0", "flow-0"), ("ns-1", "flow-1"), ("ns-0", "flow-2")}
    assert seen - own == {("ns-0", OTHER), ("ns-1", OTHER)}
    assert labels.of("ns-new", "x") == (OTHER, OTHER)  # a namespace none of the first pairs had
    assert labels.of("ns-0", "flow-0") == ("ns-0", "flow-0")  # the first ones keep their own
    assert len(seen) <= 2 * labels.limit + 1


def test_the_gauge_counts_what_exists_now_by_namespace_flow_and_phase() -> None:
    gauge = RunsByPhase()
    gauge.source = lambda: [("team", "etl", "Running"), ("team", "etl", "Running"), ("team", "etl", "")]
    (family,) = gauge.collect()
    values = {tuple(s.labels[k] for k in ("namespace", "flow", "phase")): s.value for s in family.samples}
    assert values == {("team", "etl", "Running"): 2, ("team", "etl", NEW_PHASE): 1}
    gauge.source = list
    assert [s for f in gauge.collect() for s in f.samples] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _by(samples: list[Any], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The samples of ``name`` summed by the label values ``keys``."""
    sums: dict[tuple[str, ...], float] = {}
    for sample in samples:
        if sample.name == name:
            key = tuple(sample.labels[k] for k in keys)
            sums[key] = sums.get(key, 0) + sample.value
    return sums


@pytest.fixture
def metered(kubesim: Any, tmp_path: Path) -> Iterator[tuple[Cluster, int]]:
    port = _free_port()
    args = ["--metrics-port", str(port), "--metrics-max-flows", "3"]
    with own_operator(kubesim, tmp_path, args) as cluster:
        yield cluster, port


def test_runs_are_counted_by_namespace_flow_and_phase_within_the_bound(metered: tuple[Cluster, int]) -> None:
    cluster, port = metered
    cluster.kubectl("create", "namespace", "team")
    cluster.apply("team", flow("etl", QUICK), flow("broken", BROKEN), flow("late", QUICK))
    # One run at a time, so the bound's first three pairs are etl, broken, late (in that order).
    for name, flow_name, phase in (("etl-1", "etl", "Succeeded"), ("broken-1", "broken", "Failed")):
        cluster.apply("team", flowrun(name, flow_name))
        cluster.wait_phase(name, "team", phase)
    cluster.apply("team", flowrun("etl-2", "etl"), flowrun("late-1", "late"), flowrun("inline-1", flow=QUICK))
    for name in ("etl-2", "late-1", "inline-1"):
        cluster.wait_phase(name, "team", "Succeeded")

    def scraped_all() -> dict[str, list[Any]] | None:
        families = _scrape(port)
        finished = _by(families["flowlib_flowruns_finished"], "flowlib_flowruns_finished_total", "flow")
        return families if sum(finished.values()) == 5 else None

    families = cluster.wait_for("the five finished runs in /metrics", scraped_all, timeout=30)
    finished = _by(
        families["flowlib_flowruns_finished"], "flowlib_flowruns_finished_total", "namespace", "flow", "phase"
    )
    assert finished[("team", "etl", "Succeeded")] == 2
    assert finished[("team", "broken", "Failed")] == 1
    # late-1 and inline-1 finish in either order: the first takes the third pair, the other is
    # counted under _other; every run is counted either way.
    own = {(ns, fl) for ns, fl, _ in finished if fl != OTHER}
    assert own > {("team", "etl"), ("team", "broken")} and len(own) == 3
    assert own - {("team", "etl"), ("team", "broken")} <= {("team", "late"), ("team", "_inline")}
    assert finished[("team", OTHER, "Succeeded")] == 1

    durations = _by(families["flowlib_flowrun_duration_seconds"], "flowlib_flowrun_duration_seconds_count", "flow")
    assert durations[("etl",)] == 2 and sum(durations.values()) == 5

    now = _by(families["flowlib_flowruns"], "flowlib_flowruns", "phase")
    assert now == {("Succeeded",): 4, ("Failed",): 1}
    cluster.kubectl("delete", "flowrun", "etl-1", "-n", "team")

    def gone() -> dict[tuple[str, ...], float] | None:
        counts = _by(_scrape(port)["flowlib_flowruns"], "flowlib_flowruns", "flow", "phase")
        return counts if counts.get(("etl", "Succeeded")) == 1 else None

    cluster.wait_for("the deleted run to leave flowlib_flowruns", gone, timeout=30)
