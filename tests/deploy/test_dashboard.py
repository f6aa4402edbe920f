"""The Grafana dashboard in deploy/grafana: generated from hack/gen_dashboard.py, and every query
names metrics the operator exports, with label names those metrics have."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.deploy.manifests import ROOT

DASHBOARD = ROOT / "deploy/grafana/flowlib-operator.json"
SUFFIXES = ("_bucket", "_count", "_sum")


def _exported() -> dict[str, set[str]]:
    """Exported sample names, with the label names of each."""
    from flowlib_operator import metrics

    names: dict[str, set[str]] = {}
    for collector in list(metrics.REGISTRY._collector_to_names):
        for family in collector.describe():
            labels = set(getattr(collector, "_labelnames", ()) or ())
            if family.name == "flowlib_flowruns":
                labels = {"namespace", "flow", "phase"}
            base = family.name + "_total" if family.type == "counter" else family.name
            names[base] = labels
            if family.type == "histogram":
                for suffix in SUFFIXES:
                    names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def test_the_dashboard_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack/gen_dashboard.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_query_names_exported_metrics_and_their_labels() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = _exported()
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    queries += [v["query"]["query"] for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = set()
    for query in queries:
        for name, selector in re.findall(r"(flowlib_[a-z_]+)(\{[^}]*\})?", query):
            assert name in exported, f"{name} in {query!r} is not exported"
            used.add(name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum"))
            for label in re.findall(r"([a-z_]+)\s*[=!~]+", selector or ""):
                assert label in exported[name], f"{name} has no label {label} ({query!r})"
        for label in re.findall(r"by \(([^)]*)\)", query):
            for name in re.findall(r"flowlib_[a-z_]+", query):
                have = exported[name]
                assert {part.strip() for part in label.split(",")} <= have, f"{name}: by ({label})"
    per_flow = {"flowlib_flowruns", "flowlib_flowruns_finished_total", "flowlib_flowrun_duration_seconds"}
    assert per_flow <= used | {n.removesuffix("_total") + "_total" for n in used}


def test_panels_do_not_overlap_and_each_says_what_it_shows() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    cells = set()
    for panel in board["panels"]:
        assert panel["description"] and panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
