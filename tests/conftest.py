"""Suite-wide pytest settings.

Skips are allowed only with a reason, and the reason is printed (``-ra`` in pyproject); a skip
without one fails the run, so nothing is silently left out.
"""

from __future__ import annotations

import pytest

# The simulator, and the operator scenarios' cluster (used by tests/operator and tests/flowctl).
pytest_plugins = ["tests.kubesim.pytest_plugin", "tests.operator.cluster"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers(name="skip"):
            if not (mark.kwargs.get("reason") or mark.args):
                raise pytest.UsageError(f"{item.nodeid}: a skip must say why (reason=...)")
