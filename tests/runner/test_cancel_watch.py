"""The runner's look at its own FlowRun for ``spec.cancel`` (``incluster.cancelwatch``), on a fake client."""

from __future__ import annotations

import asyncio
from typing import Any

from flowlib_runner.incluster.cancelwatch import CANCEL_REASON, watch_cancel
from flowlib_runner.kube.client import ApiError

from flowlib import CancelToken
from flowlib_api.meta import FLOWRUNS, ResourceRef


def body(*, cancel: bool = False, uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "ns", "uid": uid}, "spec": {"cancel": cancel}}


class FakeClient:
    """Answers each read with the next of ``answers`` (an exception is raised), then the last again."""

    def __init__(self, *answers: dict[str, Any] | BaseException | None) -> None:
        self.answers = list(answers)
        self.reads: list[tuple[str, str, str | None]] = []

    async def get_or_none(self, ref: ResourceRef, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.reads.append((ref.plural, name, namespace))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def watch(client: FakeClient, token: CancelToken, uid: str | None = "u1") -> None:
    async def go() -> None:
        await asyncio.wait_for(watch_cancel(client, "r", "ns", uid, token, interval=0), timeout=10)  # type: ignore[arg-type]

    asyncio.run(go())


def test_a_cancel_is_noticed_through_read_errors_and_cancels_the_token() -> None:
    client = FakeClient(
        body(),
        ApiError(503, "ServiceUnavailable", "the API is restarting"),
        TimeoutError(),
        OSError("connection refused"),
        None,  # deleted (the SIGTERM path handles that)
        body(cancel=True, uid="u2"),  # another FlowRun of the same name
        body(cancel=True),
    )
    token = CancelToken()
    watch(client, token)
    assert token.cancelled and token.reason == CANCEL_REASON
    assert len(client.reads) == 7 and client.reads[0] == (FLOWRUNS.plural, "r", "ns")


def test_the_watch_ends_when_the_token_is_cancelled_otherwise() -> None:
    token = CancelToken()
    token.cancel("runner pod stopped (SIGTERM)")
    client = FakeClient(body())
    watch(client, token)
    assert client.reads == [] and token.reason == "runner pod stopped (SIGTERM)"
