"""Prints throughput figures for 1,000 objects (``-s`` to see them). Asserts counts, never time."""

from __future__ import annotations

import pytest

from tests.kubesim import bench

pytestmark = [pytest.mark.kubesim, pytest.mark.slow]


def test_throughput_figures(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench.run(1000)
    assert figures.objects == 1000 and figures.watch_events == 1000
    with capsys.disabled():
        print(f"\nkubesim throughput: {figures}")
