"""Fixtures for the compatibility suite: each test runs once per implementation."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

import pytest

from ._support import IMPLEMENTATIONS, SleepRecorder, load


@pytest.fixture(params=IMPLEMENTATIONS)
def pf(request: pytest.FixtureRequest) -> ModuleType:
    """The implementation under test: the module ``pocketflow`` or ``flowlib``."""
    return load(request.param)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    """Replaces ``time.sleep`` and ``asyncio.sleep`` with recorders (nothing really sleeps)."""
    recorder = SleepRecorder()
    monkeypatch.setattr(time, "sleep", recorder.sync)
    monkeypatch.setattr(asyncio, "sleep", recorder.async_)
    return recorder
