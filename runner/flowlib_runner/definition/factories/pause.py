"""How an approval node stops a run, and where it gets its decisions: the contract between the
approval node (``approval``) and the execution layer, which installs an ``ApprovalDesk`` in
``APPROVALS`` for a run's main line and catches ``SuspendRun`` (see ``approval``'s docstring).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

TIMEOUT_ACTION = "timeout"
"""The edge an approval node takes when its ``timeout`` passed without a decision."""


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approval node asks: its path, the rendered message, its actions and its timeout."""

    path: tuple[str, ...]
    message: str | None
    actions: tuple[str, ...]
    """The actions a person may choose (its edges but ``error`` and ``timeout``)."""
    timeout: float | None
    edges: tuple[str, ...] = ()
    """Every action it has an edge for but ``error`` (``timeout`` included)."""

    @property
    def node(self) -> str:
        return "/".join(self.path)


class SuspendRun(BaseException):
    """The run stops at an approval node until a decision is given (see the module docstring).

    ``since`` is when the run first stopped at this visit (seconds since the epoch) and ``deadline``
    when the node's timeout ends (None: it waits for ever).
    """

    def __init__(self, request: ApprovalRequest, *, since: float, deadline: float | None) -> None:
        super().__init__(f"waiting for approval at {request.node}")
        self.request, self.since, self.deadline = request, since, deadline


class ApprovalError(RuntimeError):
    """A decision that cannot be taken (an action the node has no edge for), or a timeout with no
    timeout edge: the node fails, as any node does."""


class ApprovalDesk(Protocol):
    """Where approval nodes get their decisions (implemented by the execution layer)."""

    def decide(self, request: ApprovalRequest) -> str:
        """The action for ``request``; raises ``SuspendRun`` to stop the run, ``ApprovalError`` to fail the node."""
        ...


APPROVALS: ContextVar[ApprovalDesk | None] = ContextVar("flowlib_runner_approvals", default=None)


@contextmanager
def no_approvals() -> Iterator[None]:
    """A block where the run cannot stop (a batch item, the ``finally`` node)."""
    token = APPROVALS.set(None)
    try:
        yield
    finally:
        APPROVALS.reset(token)
