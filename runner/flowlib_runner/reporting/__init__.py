"""Status reporting: the `StatusTracker` observer and the reporters that publish its snapshots."""

from flowlib_runner.reporting.base import ErrorCallback, PeriodicReporter, Reporter
from flowlib_runner.reporting.console import ConsoleReporter
from flowlib_runner.reporting.jsonfile import JsonFileReporter
from flowlib_runner.reporting.tracker import StatusTracker, describe_error, select_output

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
