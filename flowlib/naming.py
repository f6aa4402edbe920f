"""How nodes are named in event paths."""

from __future__ import annotations

from typing import Any


def node_name(node: Any) -> str:
    """The node's ``name`` if it has one (the YAML loader sets it), else its class name."""
    name = getattr(node, "name", None)
    return name if isinstance(name, str) and name else type(node).__name__
