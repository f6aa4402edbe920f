"""Write deploy/grafana/flowlib-operator.json, the operator's Grafana dashboard (``make docs``).

Generated rather than hand-edited so that every panel's query names a metric the operator exports
(a test checks each against ``flowlib_operator.metrics``) and the layout stays a grid. Import it in
Grafana (Dashboards > New > Import) or load it with the Grafana sidecar (see docs/operations.md).
``--check`` fails when the file is out of date (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "deploy" / "grafana" / "flowlib-operator.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCOPE = 'namespace=~"$namespace", flow=~"$flow"'
WIDTH, HEIGHT = 12, 8

JOB_LATENCY = "sum by (le) (rate(flowlib_job_creation_latency_seconds_bucket[$__rate_interval]))"
Panel = tuple[str, str, str, list[tuple[str, str]], bool]
"""(title, description, unit, [(query, legend)], stacked)"""
PANELS: list[Panel] = [
    (
        "FlowRuns by phase",
        "FlowRuns that exist now. New: not started by the operator yet (its backlog); Queued: waiting "
        "for a concurrency limit, once runs can be queued.",
        "short",
        [(f"sum by (phase) (flowlib_flowruns{{{SCOPE}}})", "{{phase}}")],
        True,
    ),
    (
        "Runs finished per minute",
        "Runs reaching a final phase, by phase.",
        "short",
        [(f"sum by (phase) (rate(flowlib_flowruns_finished_total{{{SCOPE}}}[$__rate_interval])) * 60", "{{phase}}")],
        True,
    ),
    (
        "Run duration p50 and p95, by flow",
        "From FlowRun creation to its final phase.",
        "s",
        [
            (
                "histogram_quantile(0.5, sum by (le, namespace, flow) "
                f"(rate(flowlib_flowrun_duration_seconds_bucket{{{SCOPE}}}[$__rate_interval])))",
                "p50 {{namespace}}/{{flow}}",
            ),
            (
                "histogram_quantile(0.95, sum by (le, namespace, flow) "
                f"(rate(flowlib_flowrun_duration_seconds_bucket{{{SCOPE}}}[$__rate_interval])))",
                "p95 {{namespace}}/{{flow}}",
            ),
        ],
        False,
    ),
    (
        "Share of runs not succeeding, by flow",
        "Failed and Cancelled runs over all finished runs in the last hour.",
        "percentunit",
        [
            (
                "sum by (namespace, flow) "
                f'(increase(flowlib_flowruns_finished_total{{{SCOPE}, phase!="Succeeded"}}[1h])) '
                "/ sum by (namespace, flow) "
                f"(increase(flowlib_flowruns_finished_total{{{SCOPE}}}[1h]))",
                "{{namespace}}/{{flow}}",
            )
        ],
        False,
    ),
    (
        "Waiting runs",
        "Runs not yet running: New (the operator's backlog), Queued (held by a limit), Pending (Job "
        "created, pod not running yet).",
        "short",
        [(f'sum by (phase) (flowlib_flowruns{{{SCOPE}, phase=~"New|Queued|Pending"}})', "{{phase}}")],
        True,
    ),
    (
        "Job creation latency",
        "From the operator first seeing a FlowRun to its runner Job being created.",
        "s",
        [
            (f"histogram_quantile(0.5, {JOB_LATENCY})", "p50"),
            (f"histogram_quantile(0.95, {JOB_LATENCY})", "p95"),
        ],
        False,
    ),
    (
        "Runs started per minute",
        "Runner Jobs created.",
        "short",
        [("sum(rate(flowlib_flowruns_started_total[$__rate_interval])) * 60", "started")],
        False,
    ),
    (
        "Refused runs and definitions per minute",
        "FlowRuns refused for borrowing what their author may not use, and invalid Flows and FlowRuns.",
        "short",
        [
            ("sum(rate(flowlib_flowruns_forbidden_total[$__rate_interval])) * 60", "forbidden"),
            ("sum by (kind) (rate(flowlib_invalid_definitions_total[$__rate_interval])) * 60", "invalid {{kind}}"),
        ],
        False,
    ),
    (
        "Reconcile errors per minute",
        "Handler and reconciler failures, by kind (each is retried).",
        "short",
        [("sum by (kind) (rate(flowlib_reconcile_errors_total[$__rate_interval])) * 60", "{{kind}}")],
        True,
    ),
    (
        "API retries per minute",
        "Kubernetes API requests retried after 409/429/5xx or a dropped connection.",
        "short",
        [("sum by (method, status) (rate(flowlib_api_retries_total[$__rate_interval])) * 60", "{{method}} {{status}}")],
        True,
    ),
    (
        "Fresh reads per minute",
        "Runs read afresh from the API before a settling decision, or by the periodic check.",
        "short",
        [("sum(rate(flowlib_fresh_reads_total[$__rate_interval])) * 60", "fresh reads")],
        False,
    ),
]


def _panel(index: int, panel: Panel) -> dict[str, Any]:
    title, description, unit, queries, stacked = panel
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": (index % 2) * WIDTH, "y": (index // 2) * HEIGHT, "w": WIDTH, "h": HEIGHT},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stacked else "none"}, "fillOpacity": 20 if stacked else 0},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "flowlib-operator",
        "title": "flowlib-operator",
        "description": "FlowRuns by namespace, flow and phase, run durations, and the operator's health.",
        "tags": ["flowlib", "kubernetes"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                _variable("namespace", "label_values(flowlib_flowruns, namespace)"),
                _variable("flow", 'label_values(flowlib_flowruns{namespace=~"$namespace"}, flow)'),
            ]
        },
        "panels": [_panel(i, panel) for i, panel in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
