"""Exceptions flowlib raises on its own account (user exceptions always propagate unchanged)."""

from __future__ import annotations

import asyncio


class Cancelled(asyncio.CancelledError):
    """A run was cancelled through its :class:`~flowlib.CancelToken`.

    It derives from :class:`asyncio.CancelledError` (and so from ``BaseException``) for two
    reasons: a node's ``except Exception`` cannot swallow it, and a runner can treat a cancelled
    sync run and a cancelled async task the same way.
    """


class MaxStepsExceeded(RuntimeError):
    """A flow started more nodes than its ``max_steps`` allows: almost always a loop that never ends."""

    def __init__(self, flow: str, node: str, max_steps: int) -> None:
        super().__init__(
            f"flow {flow!r} exceeded max_steps={max_steps}: it was about to start node {node!r} "
            f"for step {max_steps + 1}. If the loop through {node!r} is meant to run that long, raise "
            f"max_steps; otherwise fix the branch that keeps returning to it."
        )
        self.flow = flow
        self.node = node
        self.max_steps = max_steps


class NodeTimeout(TimeoutError):
    """One exec attempt of an async node ran longer than the node's ``timeout``.

    It is an ordinary ``Exception``, so it counts as a failed attempt: it is retried like any
    other failure and finally handed to ``exec_fallback_async``.
    """

    def __init__(self, node: str, seconds: float) -> None:
        super().__init__(f"node {node!r}: exec attempt timed out after {seconds:g}s")
        self.node = node
        self.seconds = seconds
