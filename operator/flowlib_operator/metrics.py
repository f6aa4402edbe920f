"""Prometheus metrics of the operator, served on ``--metrics-port`` (``/metrics``).

Per-flow series are labelled ``namespace`` and ``flow``, whose values users choose: to keep a
cluster of many teams from making unbounded series, at most ``--metrics-max-flows`` (namespace,
flow) pairs get their own labels, the first ones seen; later pairs are counted under
``flow="_other"`` (and ``namespace="_other"`` for a namespace none of the first pairs had), so
each family has at most twice that many label pairs plus one (``FlowLabels``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

OTHER = "_other"
"""The label value of namespaces and flows past the bound (``_`` is in no Kubernetes name)."""
INLINE = "_inline"
"""The ``flow`` label of runs with an inline definition (``spec.flow``)."""
NEW_PHASE = "New"
"""The ``phase`` label of a FlowRun the operator has not started yet (no ``status.phase``)."""
DEFAULT_MAX_FLOWS = 200


class FlowLabels:
    """``namespace`` and ``flow`` label values, with at most ``limit`` pairs of their own."""

    def __init__(self, limit: int = DEFAULT_MAX_FLOWS) -> None:
        self.limit = limit
        self.pairs: set[tuple[str, str]] = set()
        self.namespaces: set[str] = set()
        self._lock = threading.Lock()  # the event loop counts, the metrics server's thread scrapes

    def of(self, namespace: str, flow: str) -> tuple[str, str]:
        pair = (namespace, flow)
        if pair in self.pairs:
            return pair
        with self._lock:
            if pair in self.pairs or len(self.pairs) < self.limit:
                self.pairs.add(pair)
                self.namespaces.add(namespace)
                return pair
        return (namespace if namespace in self.namespaces else OTHER, OTHER)


FLOW_LABELS = FlowLabels()
"""The operator's bound (``--metrics-max-flows`` sets its limit at start)."""

RUNS_FINISHED = Counter(
    "flowlib_flowruns_finished_total",
    "FlowRuns that reached a final phase, by namespace, flow and phase.",
    ["namespace", "flow", "phase"],
    registry=REGISTRY,
)
RUNS_STARTED = Counter(
    "flowlib_flowruns_started_total", "FlowRuns for which a runner Job was created.", registry=REGISTRY
)
RUN_DURATION = Histogram(
    "flowlib_flowrun_duration_seconds",
    "From FlowRun creation to its final phase, by namespace and flow.",
    ["namespace", "flow"],
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


class RunsByPhase(Collector):
    """``flowlib_flowruns``: the FlowRuns the operator knows of now, by namespace, flow and phase,
    counted from its watch cache at each scrape (so it costs nothing between scrapes, and a deleted
    run leaves it at once). ``phase="Queued"`` is the queue's depth once runs can be queued."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, str, str]]] = lambda: ()
        """(namespace, flow, phase) of each known run; set by the operator at start."""

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        counts: dict[tuple[str, str, str], int] = {}
        for namespace, flow, phase in self.source():
            labels = (*FLOW_LABELS.of(namespace, flow), phase or NEW_PHASE)
            counts[labels] = counts.get(labels, 0) + 1
        family = self._family()
        for labels, count in sorted(counts.items()):
            family.add_metric(list(labels), count)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "flowlib_flowruns",
            "FlowRuns that exist now, by namespace, flow and phase (New: not started by the operator yet).",
            labels=["namespace", "flow", "phase"],
        )


RUNS_BY_PHASE = RunsByPhase()
REGISTRY.register(RUNS_BY_PHASE)


def run_finished(namespace: str, flow: str, phase: str, seconds: float | None) -> None:
    """Count a run that reached ``phase`` (and how long it took, when known)."""
    namespace, flow = FLOW_LABELS.of(namespace, flow)
    RUNS_FINISHED.labels(namespace=namespace, flow=flow, phase=phase).inc()
    if seconds is not None:
        RUN_DURATION.labels(namespace=namespace, flow=flow).observe(max(0.0, seconds))


def count_retry(method: str, status: int | None) -> None:
    API_RETRIES.labels(method=method, status=str(status) if status is not None else "connection").inc()


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address, registry=REGISTRY)
