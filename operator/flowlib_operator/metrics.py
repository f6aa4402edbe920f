"""Prometheus metrics of the operator, served on ``--metrics-port`` (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS_FINISHED = Counter(
    "flowlib_flowruns_finished_total", "FlowRuns that reached a final phase.", ["phase"], registry=REGISTRY
)
RUNS_STARTED = Counter(
    "flowlib_flowruns_started_total", "FlowRuns for which a runner Job was created.", registry=REGISTRY
)
RUN_DURATION = Histogram(
    "flowlib_flowrun_duration_seconds",
    "From FlowRun creation to its final phase.",
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
    registry=REGISTRY,
)
JOB_CREATION_LATENCY = Histogram(
    "flowlib_job_creation_latency_seconds",
    "From FlowRun creation (as the operator first saw it) to its runner Job being created.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "flowlib_reconcile_errors_total",
    "Handler and reconciler failures (they are retried).",
    ["kind"],
    registry=REGISTRY,
)
API_RETRIES = Counter(
    "flowlib_api_retries_total",
    "Kubernetes API requests retried after 409/429/5xx or a dropped connection.",
    ["method", "status"],
    registry=REGISTRY,
)
INVALID_DEFINITIONS = Counter(
    "flowlib_invalid_definitions_total",
    "Flows and FlowRuns rejected as invalid.",
    ["kind"],
    registry=REGISTRY,
)

FORBIDDEN_RUNS = Counter(
    "flowlib_flowruns_forbidden_total",
    "FlowRuns refused because they borrow a service account, Secret or ConfigMap their author may not use.",
    registry=REGISTRY,
)

FRESH_READS = Counter(
    "flowlib_fresh_reads_total",
    "Runs whose FlowRun, Job and pods were read afresh from the API before a settling decision "
    "(or by the periodic check), instead of trusting the watch cache.",
    registry=REGISTRY,
)


def count_retry(method: str, status: int | None) -> None:
    API_RETRIES.labels(method=method, status=str(status) if status is not None else "connection").inc()


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address, registry=REGISTRY)
