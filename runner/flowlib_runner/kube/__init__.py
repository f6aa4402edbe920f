"""A small asyncio client for the Kubernetes API, shared by the in-cluster runner, the operator and
``flowctl``'s cluster commands.

Why our own and not the generated ``kubernetes`` client: that client is synchronous (every call
would block the event loop that runs the flow), and we need one place that retries 409/429/5xx with
backoff, honours ``Retry-After``, and counts retries for the operator's metrics. Authentication and
TLS come from the ``kubernetes`` package's own kubeconfig and in-cluster loaders, so every auth
method they support works here too. Resource refs (``FLOWRUNS``, ``JOBS``...) come from the contract,
``flowlib_api.meta``; this package imports nothing else of the project.
"""

from flowlib_runner.kube.client import ApiError, KubeClient, RetryPolicy
from flowlib_runner.kube.config import ClusterConfig, load_config

__all__ = ["ApiError", "ClusterConfig", "KubeClient", "RetryPolicy", "load_config"]
