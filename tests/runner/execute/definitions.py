"""Flow definitions for the execute tests: YAML text loaded as ``flowctl run`` loads a file."""

from __future__ import annotations

import textwrap

from flowlib_runner.definition.loader import FlowDefinition, load_text


def load(text: str) -> FlowDefinition:
    """The definition ``text`` holds (dedented, so tests may indent it); fails the test, naming
    the problems, when it does not load."""
    result = load_text(textwrap.dedent(text))
    assert result.ok and result.definition is not None, [str(p) for p in result.problems]
    return result.definition
