"""Reading YAML safely: every document, with duplicate keys and alias bombs reported as problems.

PyYAML silently keeps the last of two equal keys (a second node named ``fetch`` would replace the
first) and expands aliases without limit (a few lines can describe billions of entries). Both are
caught on the composed node graph before anything is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

from .problems import Problem

MAX_EXPANDED_NODES = 1_000_000


# libyaml's parser when PyYAML was built with it (several times faster), else the pure-Python one.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader (plain data only, no Python objects)."""


def _where(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _check(root: yaml.Node) -> Problem | None:
    """Duplicate keys, recursive aliases and oversized expansions in a composed document."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_EXPANDED_NODES:
                return Problem(
                    "",
                    f"the document expands to more than {MAX_EXPANDED_NODES} values (YAML aliases?); make it smaller",
                )
            continue
        if key in sizes:
            continue
        if key in active:
            return Problem("", f"recursive YAML alias at {_where(node)}; a flow must be a tree")
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        return Problem(
                            "",
                            f"duplicate key '{k.value}' at {_where(k)} (first at {_where(seen[k.value])}); "
                            "keys must be unique, rename or merge them",
                        )
                    seen[k.value] = k
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def read_documents(text: str) -> tuple[list[Any], list[Problem]]:
    """Every document in ``text`` (empty ones dropped) and the problems that stopped reading."""
    docs: list[Any] = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            problem = _check(node)
            if problem is not None:
                return docs, [problem]
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        return docs, [Problem("", f"YAML syntax error{where}: {what}; fix the YAML")]
    except yaml.YAMLError as exc:
        return docs, [Problem("", f"invalid YAML: {exc}")]
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. a date-looking scalar that is not a date (2024-13-45), an unhashable key
        return docs, [Problem("", f"invalid YAML value: {exc}; quote it if it is meant as a string")]
    except RecursionError:
        return docs, [Problem("", "the YAML is nested too deeply to read; flatten it")]
    finally:
        if loader is not None:
            loader.dispose()
    return docs, []
