"""Status reporting: the `StatusTracker` observer and the reporters that publish its snapshots."""

from flowlib_runner.execution.reporting.base import ErrorCallback, PeriodicReporter, Reporter
from flowlib_runner.execution.reporting.console import ConsoleReporter
from flowlib_runner.execution.reporting.jsonfile import JsonFileReporter
from flowlib_runner.execution.reporting.tracker import StatusTracker, describe_error, select_output

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
