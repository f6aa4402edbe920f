"""Text for `flowctl list` and `flowctl status`: a table like kubectl's, and the run's node tree.

Plain aligned text, not rich tables: the output is read by people in terminals but also grepped and
diffed in CI logs, where box-drawing and wrapping get in the way. Ages follow kubectl's spelling
(`45s`, `3m12s`, `5h`, `2d`) so the two tools read alike side by side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.times import parse_time
from flowlib_api.views import FlowRunView


def human_age(seconds: float) -> str:
    """kubectl's `HumanDuration`: precise when recent, coarser as it grows."""
    total = max(0, int(seconds))
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age(value: object, now: datetime) -> str:
    moment = parse_time(value)
    return "<unknown>" if moment is None else human_age((now - moment).total_seconds())


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, three spaces apart, as `kubectl get` prints them."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return [
        "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def run_rows(runs: Sequence[dict[str, Any]], now: datetime, *, all_namespaces: bool) -> list[str]:
    """The FlowRun CRD's printer columns (Flow, Phase, Progress, Node, Age) for `flowctl list`."""
    header = ["NAME", "FLOW", "PHASE", "PROGRESS", "NODE", "AGE"]
    rows = []
    for run in sorted(runs, key=lambda r: (r["metadata"].get("namespace") or "", r["metadata"]["name"])):
        status = run.get("status") or {}
        row = [
            run["metadata"]["name"],
            status.get("flow") or ((run.get("spec") or {}).get("flowRef") or {}).get("name") or "<inline>",
            status.get("phase") or "Pending",
            status.get("progress") or "",
            status.get("currentNode") or "",
            age(run["metadata"].get("creationTimestamp"), now),
        ]
        rows.append([run["metadata"].get("namespace") or "", *row] if all_namespaces else row)
    return table(["NAMESPACE", *header] if all_namespaces else header, rows)


# -- status -------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f}s"
    if value < 120:
        return f"{value:.1f}s"
    return human_age(value)


def _items(items: dict[str, Any] | None) -> str:
    if not items:
        return ""
    total = items.get("total")
    text = f"{items.get('done', 0)}/{'?' if total is None else total}"
    return text + (f" ({items['failed']} failed)" if items.get("failed") else "")


def node_tree(nodes: dict[str, dict[str, Any]], current: str | None = None) -> list[str]:
    """One row per node, sub-flow nodes indented under the node that runs them (`sub/double`).

    Rows keep the status's order (the order nodes were first visited) within each level; a parent
    missing from the status (collapsed to fit the size bound) still gets a row so the tree reads.
    """
    children: dict[str, list[str]] = {"": []}
    for path in nodes:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            here, parent = "/".join(parts[:depth]), "/".join(parts[: depth - 1])
            if here not in children:
                children[here] = []
                children[parent].append(here)
    rows: list[list[str]] = []

    def walk(path: str, depth: int) -> None:
        for child in children[path]:
            state = nodes.get(child) or {}
            duration = state.get("durationSeconds")
            name = "  " * depth + child.rsplit("/", 1)[-1] + (" *" if child == current else "")
            retries = state.get("itemRetries")
            rows.append(
                [
                    name,
                    state.get("phase") or "",
                    str(state["visits"]) if "visits" in state else "",
                    str(state["attempts"]) if "attempts" in state else "",
                    _items(state.get("items")) + (f" ({retries} item retries)" if retries else ""),
                    _seconds(duration) if isinstance(duration, int | float) else "",
                    state.get("action") or "",
                ]
            )
            walk(child, depth + 1)

    walk("", 0)
    return table(["NODE", "PHASE", "VISITS", "ATTEMPTS", "ITEMS", "DURATION", "ACTION"], rows)


def status_report(flowrun: dict[str, Any], now: datetime | None = None) -> list[str]:
    """`flowctl status RUN`: the run's summary, its timings, then the node tree and any message."""
    now = now or datetime.now(UTC)
    run = FlowRunView(flowrun)
    meta, status = flowrun["metadata"], run.status
    flow = run.flow or run.flow_ref or "<inline>"
    phase = run.phase or "Pending"
    lines = [
        f"Name:       {meta['name']}",
        f"Namespace:  {meta.get('namespace', '')}",
        f"Flow:       {flow}",
        f"Phase:      {phase}"
        + (" (cancel requested)" if run.cancel_requested and phase not in FINISHED_PHASES else ""),
        f"Progress:   {status.get('progress') or '0/0'} nodes"
        + (f", running {status['currentNode']}" if status.get("currentNode") and phase == "Running" else ""),
        f"Created:    {meta.get('creationTimestamp', '')} ({age(meta.get('creationTimestamp'), now)} ago)",
    ]
    started, completed = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    if started is not None:
        lines.append(f"Started:    {status['startTime']} ({age(status['startTime'], now)} ago)")
    if completed is not None:
        lines.append(f"Completed:  {status['completionTime']}")
    if status.get("duration"):
        lines.append(f"Duration:   {status['duration']}")
    elif started is not None:
        lines.append(f"Elapsed:    {human_age(((completed or now) - started).total_seconds())}")
    if run.job_name:
        pod = f", pod {run.pod_name}" if run.pod_name else ""
        attempt = f" (attempt {run.attempt})" if run.attempt else ""
        lines.append(f"Job:        {run.job_name}{pod}{attempt}")
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    if status.get("output"):
        lines.append("Output:     " + json.dumps(status["output"], ensure_ascii=False, default=str))
    nodes = status.get("nodes") or {}
    if nodes:
        lines.append("")
        lines.extend(node_tree(nodes, status.get("currentNode") if phase == "Running" else None))
    for note in status.get("notes") or []:
        lines.append(f"Note: {note}")
    return lines
