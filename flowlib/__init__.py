"""flowlib: flow graphs with PocketFlow's programming model, plus the seed plan's node types.

A program written for PocketFlow runs unchanged with ``from flowlib import ...``. On top of that:
``WorkerPoolBatchNode`` (a bounded, lazy worker pool), retry backoff with a cap and jitter,
per-attempt timeouts for async nodes, cancellation (``CancelToken`` for sync runs, task
cancellation for async ones), a ``max_steps`` loop guard, and an observer that receives
:mod:`flowlib.events`. See ``flowlib/README.md`` for the whole contract.

This package depends on the standard library only.
"""

from .async_nodes import AsyncBatchNode, AsyncNode, AsyncParallelBatchNode, WorkerPoolBatchNode
from .cancel import CancelToken
from .context import current_path
from .errors import Cancelled, MaxStepsExceeded, NodeTimeout
from .events import EventRecorder, Observer
from .flows import AsyncBatchFlow, AsyncFlow, AsyncParallelBatchFlow, BatchFlow, Flow
from .nodes import BaseNode, BatchNode, Node, NodeWithRetry

__all__ = [
    "AsyncBatchFlow",
    "AsyncBatchNode",
    "AsyncFlow",
    "AsyncNode",
    "AsyncParallelBatchFlow",
    "AsyncParallelBatchNode",
    "BaseNode",
    "BatchFlow",
    "BatchNode",
    "CancelToken",
    "Cancelled",
    "EventRecorder",
    "Flow",
    "MaxStepsExceeded",
    "Node",
    "NodeTimeout",
    "NodeWithRetry",
    "Observer",
    "WorkerPoolBatchNode",
    "current_path",
]

__version__ = "0.1.0"
