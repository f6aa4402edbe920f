"""Status reporting: the `StatusTracker` observer and the reporters that publish its snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlib_runner.execution.reporting.base import ErrorCallback, PeriodicReporter, Reporter
from flowlib_runner.execution.reporting.jsonfile import JsonFileReporter
from flowlib_runner.execution.reporting.tracker import StatusTracker, describe_error, select_output

if TYPE_CHECKING:
    from flowlib_runner.execution.reporting.console import ConsoleReporter


def __getattr__(name: str) -> Any:
    # ConsoleReporter is imported on first use: it needs rich (about 15 ms to import), which only
    # `flowctl run` draws with; the in-cluster runner imports this package before its first node.
    if name == "ConsoleReporter":
        from flowlib_runner.execution.reporting.console import ConsoleReporter

        return ConsoleReporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConsoleReporter",
    "ErrorCallback",
    "JsonFileReporter",
    "PeriodicReporter",
    "Reporter",
    "StatusTracker",
    "describe_error",
    "select_output",
]
