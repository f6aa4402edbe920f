"""Helpers of `flowctl`'s cluster commands (submit, logs, status, cancel, list).

Why a package apart from `cluster_cli.py`: the click commands only parse options and print; the
parts worth testing on their own -- talking to the API with errors people can act on, following a
run's logs across pod retries, rendering a status as a node tree -- live here, free of click's
context.
"""

from flowlib_runner.cluster.api import EXIT_CLUSTER, ClusterApi, ClusterError, connect

__all__ = ["EXIT_CLUSTER", "ClusterApi", "ClusterError", "connect"]
