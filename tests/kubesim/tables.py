"""``meta.k8s.io/v1`` Table responses for ``kubectl get``
(https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables).

Custom resources use their ``additionalPrinterColumns`` (or Name and Age); the built-ins we run get
the columns kubectl users expect (pods: READY, STATUS, RESTARTS; jobs: STATUS, COMPLETIONS ...).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from .meta import dig, now, parse_time
from .resources import ResourceType

JSON = dict[str, Any]
Column = tuple[str, str, int, Callable[[JSON], Any]]  # name, type, priority, value


def human_duration(delta: dt.timedelta) -> str:
    """The format of k8s.io/apimachinery's HumanDuration, used in AGE columns."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if years < 8 and days % 365 else f"{years}y"


def age(value: Any) -> str:
    if not value:
        return "<unknown>"
    return human_duration(now() - parse_time(value))


_STEP = re.compile(r"\.([A-Za-z0-9_\-$]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The JSONPath subset printer columns use: fields, [n], [*] and [?(@.field=="value")]."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if not m:
            return []
        pos = m.end()
        field, index, filter_field, filter_value = m.groups()
        nxt: list[Any] = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                nxt.append(value[field])
            elif index == "*" and isinstance(value, list):
                nxt.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
            elif filter_field is not None and isinstance(value, list):
                nxt.extend(v for v in value if str(dig(v, *filter_field.split("."))) == filter_value)
        current = nxt
    return current


def _pod_status(pod: JSON) -> str:
    if dig(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    reason = dig(pod, "status", "reason") or dig(pod, "status", "phase") or "Pending"
    for status in dig(pod, "status", "containerStatuses") or []:
        state = status.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            term = state["terminated"]
            reason = term.get("reason") or f"ExitCode:{term.get('exitCode')}"
    return str(reason)


def _ready(pod: JSON) -> str:
    statuses = dig(pod, "status", "containerStatuses") or []
    total = len(dig(pod, "spec", "containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _job_status(job: JSON) -> str:
    true = {c.get("type") for c in dig(job, "status", "conditions") or [] if c.get("status") == "True"}
    for kind in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Running"


def _duration(job: JSON) -> str:
    start = dig(job, "status", "startTime")
    if not start:
        return ""
    end = dig(job, "status", "completionTime")
    return human_duration((parse_time(end) if end else now()) - parse_time(start))


_NAME: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
_AGE: Column = ("Age", "string", 0, lambda o: age(o["metadata"].get("creationTimestamp")))
_BUILTIN: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        _NAME,
        ("Ready", "string", 0, _ready),
        ("Status", "string", 0, _pod_status),
        (
            "Restarts",
            "string",
            0,
            lambda o: str(sum(s.get("restartCount", 0) for s in dig(o, "status", "containerStatuses") or [])),
        ),
        _AGE,
        ("IP", "string", 1, lambda o: dig(o, "status", "podIP") or "<none>"),
        ("Node", "string", 1, lambda o: dig(o, "spec", "nodeName") or "<none>"),
        ("Nominated Node", "string", 1, lambda o: "<none>"),
        ("Readiness Gates", "string", 1, lambda o: "<none>"),
    ],
    ("batch", "jobs"): [
        _NAME,
        ("Status", "string", 0, _job_status),
        (
            "Completions",
            "string",
            0,
            lambda o: f"{dig(o, 'status', 'succeeded') or 0}/{dig(o, 'spec', 'completions') or 1}",
        ),
        ("Duration", "string", 0, _duration),
        _AGE,
        (
            "Containers",
            "string",
            1,
            lambda o: ",".join(c["name"] for c in dig(o, "spec", "template", "spec", "containers") or []),
        ),
        (
            "Images",
            "string",
            1,
            lambda o: ",".join(c["image"] for c in dig(o, "spec", "template", "spec", "containers") or []),
        ),
        (
            "Selector",
            "string",
            1,
            lambda o: ",".join(f"{k}={v}" for k, v in (dig(o, "spec", "selector", "matchLabels") or {}).items()),
        ),
    ],
    ("apps", "deployments"): [
        _NAME,
        ("Ready", "string", 0, lambda o: f"{dig(o, 'status', 'readyReplicas') or 0}/{dig(o, 'spec', 'replicas')}"),
        ("Up-to-date", "integer", 0, lambda o: dig(o, "status", "updatedReplicas") or 0),
        ("Available", "integer", 0, lambda o: dig(o, "status", "availableReplicas") or 0),
        _AGE,
        (
            "Containers",
            "string",
            1,
            lambda o: ",".join(c["name"] for c in dig(o, "spec", "template", "spec", "containers") or []),
        ),
        (
            "Images",
            "string",
            1,
            lambda o: ",".join(c["image"] for c in dig(o, "spec", "template", "spec", "containers") or []),
        ),
    ],
    ("apps", "replicasets"): [
        _NAME,
        ("Desired", "integer", 0, lambda o: dig(o, "spec", "replicas") or 0),
        ("Current", "integer", 0, lambda o: dig(o, "status", "replicas") or 0),
        ("Ready", "integer", 0, lambda o: dig(o, "status", "readyReplicas") or 0),
        _AGE,
    ],
    ("", "namespaces"): [_NAME, ("Status", "string", 0, lambda o: dig(o, "status", "phase") or ""), _AGE],
    ("", "configmaps"): [
        _NAME,
        ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        _AGE,
    ],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    ("", "events"): [
        ("Last Seen", "string", 0, lambda o: age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp"))),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        (
            "Object",
            "string",
            0,
            lambda o: f"{str(dig(o, 'involvedObject', 'kind') or '').lower()}/{dig(o, 'involvedObject', 'name')}",
        ),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _NAME,
        ("Created At", "date", 0, lambda o: o["metadata"].get("creationTimestamp")),
    ],
}


def columns(rt: ResourceType) -> list[Column]:
    if rt.crd_version is not None:
        specified = rt.crd_version.get("additionalPrinterColumns") or []
        if not specified:
            return [_NAME, _AGE]
        out = [_NAME]
        for col in specified:
            out.append((col["name"], col["type"], int(col.get("priority", 0)), _column_getter(col)))
        return out
    return _BUILTIN.get(rt.key, [_NAME, _AGE])


def _column_getter(col: JSON) -> Callable[[JSON], Any]:
    def get(obj: JSON) -> Any:
        values = jsonpath(obj, col["jsonPath"])
        if not values:
            return None
        value = values[0] if len(values) == 1 else ",".join(str(v) for v in values)
        if col["type"] == "date" and isinstance(value, str):
            return age(value)
        return value

    return get


def _partial(obj: JSON) -> JSON:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(
    rt: ResourceType,
    objects: list[JSON],
    rv: str,
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> JSON:
    cols = columns(rt)
    result: JSON = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}}
    if with_columns:
        result["columnDefinitions"] = [
            {
                "name": name,
                "type": "date" if kind == "date" else kind,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, kind, priority, _ in cols
        ]
    rows = []
    for obj in objects:
        row: JSON = {"cells": [getter(obj) for _, _, _, getter in cols]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    result["rows"] = rows
    return result
