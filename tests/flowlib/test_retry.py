"""Retries: PocketFlow's fixed wait by default, exponential backoff with a cap and jitter on request."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowlib
from flowlib.events import EventRecorder, RetryScheduled
from flowlib.retry import retry_delay


class Flaky(flowlib.Node):
    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.calls = 0

    def exec(self, prep_res: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"failure {self.calls}")
        return "ok"

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["result"] = exec_res
        shared["cur_retry"] = self.cur_retry


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


def test_fixed_wait_is_the_default(sleeps: list[float]) -> None:
    node = Flaky(2, max_retries=3, wait=0.5)
    shared: dict[str, Any] = {}
    node.run(shared)
    assert shared == {"result": "ok", "cur_retry": 2}
    assert sleeps == [0.5, 0.5]


def test_exponential_backoff_doubles_up_to_the_cap(sleeps: list[float]) -> None:
    node = Flaky(5, max_retries=6, wait=1, backoff="exponential", max_wait=5)
    node.run({})
    assert sleeps == [1, 2, 4, 5, 5]


def test_exhausted_retries_raise_the_last_error() -> None:
    node = Flaky(3, max_retries=3)
    with pytest.raises(ValueError, match="failure 3"):
        node.run({})
    assert node.calls == 3


@given(
    attempt=st.integers(1, 200),
    wait=st.floats(0, 100, allow_nan=False),
    max_wait=st.none() | st.floats(0, 100, allow_nan=False),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_exponential_delay_stays_within_cap_and_jitter(
    attempt: int, wait: float, max_wait: float | None, jitter: float, seed: int
) -> None:
    delay = retry_delay(attempt, wait, backoff="exponential", max_wait=max_wait, jitter=jitter, rng=random.Random(seed))
    base = min(wait * 2.0 ** min(attempt - 1, 64), max_wait if max_wait is not None else float("inf"))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


@given(failures=st.integers(0, 6), max_retries=st.integers(1, 6))
def test_attempt_count_matches_the_failures(failures: int, max_retries: int) -> None:
    node = Flaky(failures, max_retries=max_retries)
    recorder = EventRecorder()
    if failures >= max_retries:
        with pytest.raises(ValueError):
            node.run({}, observer=recorder)
        assert node.calls == max_retries
    else:
        node.run({}, observer=recorder)
        assert node.calls == failures + 1
    retries = [e for e in recorder.events if isinstance(e, RetryScheduled)]
    assert [e.attempt for e in retries] == list(range(1, min(failures, max_retries - 1) + 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backoff": "linear"}, "backoff must be one of fixed, exponential"),
        ({"jitter": 2}, "jitter is a fraction"),
        ({"max_wait": -1}, "max_wait must be >= 0"),
    ],
)
def test_bad_retry_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        flowlib.Node(**kwargs)


def test_cancelling_wakes_a_sync_retry_wait_at_once() -> None:
    token = flowlib.CancelToken()
    node = Flaky(10, max_retries=10, wait=30)
    timer = threading.Timer(0.05, token.cancel, args=("user asked",))
    timer.start()
    try:
        with pytest.raises(flowlib.Cancelled, match="user asked"):
            node.run({}, cancel=token)
    finally:
        timer.cancel()
    assert node.calls == 1
