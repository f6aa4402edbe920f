"""``flowlib_runner``'s facade: every public name resolves, lazily, to the layer that defines it."""

from __future__ import annotations

import subprocess
import sys

import flowlib_runner
import pytest


def test_every_public_name_resolves() -> None:
    for name in flowlib_runner.__all__:
        assert getattr(flowlib_runner, name) is not None, name
    from flowlib_runner.definition.build import build_flow

    assert flowlib_runner.build_flow is build_flow


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = flowlib_runner.nope  # type: ignore[attr-defined]


def test_importing_the_facade_imports_no_layer() -> None:
    code = "import sys, flowlib_runner; print(sorted(m for m in sys.modules if m.startswith('flowlib')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['flowlib_runner']"
