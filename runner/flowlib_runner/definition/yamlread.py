"""Reading YAML safely: every document, with duplicate keys and alias bombs reported as problems.

PyYAML silently keeps the last of two equal keys (a second node named ``fetch`` would replace the
first) and expands aliases without limit (a few lines can describe billions of entries). Both are
caught on the composed node graph before anything is constructed.

The same file is also read by kubectl (``kubectl apply -f``), whose YAML is go-yaml's YAML 1.1
followed by a conversion to JSON, where every key becomes a string. Plain scalars that the two
readers, or the two sides of that conversion, see differently are reported with their path
(``nodes.a.params.n``) and the quoting that fixes them:

- a mapping key that YAML 1.1 reads as something other than a string: ``y``, ``n``, ``yes``, ``no``,
  ``on``, ``off``, ``true``, ``false`` (in their YAML 1.1 spellings ``n``/``N``, ``no``/``No``/``NO``...),
  numbers (``012`` is octal 10, ``1:30`` base-60 90, ``1e3``, ``200``), null, dates. A param ``n``
  reaches the cluster as ``"false"``;
- a value that flowctl and kubectl read as different types: ``y``/``Y``/``n``/``N`` (a string here,
  a boolean for kubectl), base-60 numbers (``1:30``: 90 here, the string ``"1:30"`` for kubectl) and
  go-only numbers (``1e3``, ``0o12``: strings here). Values both read alike (``on``, ``off``, ``yes``,
  ``no``, ``012``) are left alone: YAML 1.1 users write them as booleans and numbers on purpose.

Quoted or explicitly tagged scalars (``'n'``, ``!!str n``) are never reported.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .problems import Problem, join_path

MAX_EXPANDED_NODES = 1_000_000


# libyaml's parser when PyYAML was built with it (several times faster), else the pure-Python one.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ValueError(yaml.constructor.ConstructorError):
    """A scalar its tag's constructor cannot read (``!!bool abc``, ``!!timestamp notatime``, ``!!int x``)."""


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader (plain data only, no Python objects), whose constructor errors all carry their position.

    PyYAML's constructors fail with whatever their parsing raises: ``!!bool abc`` a KeyError,
    ``!!timestamp notatime`` an AttributeError, a 2024-13-45 date a ValueError. Each becomes one
    error naming the value, its tag and its line, so no tag makes ``flowctl lint`` print a traceback.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # any constructor's failure on its value: reported below with the position
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = str(node.value) if isinstance(node, yaml.ScalarNode) else tag
            shown = value if len(value) <= 40 else value[:37] + "..."
            # A ValueError says what is wrong (month must be in 1..12); the others (KeyError 'abc') do not.
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            raise _ValueError(None, None, f"'{shown}' is not a valid {tag} value{why}", node.start_mark) from exc


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
                if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE:
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


_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NOT_STRINGS = {
    "tag:yaml.org,2002:bool": "the boolean",
    "tag:yaml.org,2002:int": "the number",
    "tag:yaml.org,2002:float": "the number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}
# YAML 1.1 booleans that PyYAML reads as strings but go-yaml (kubectl) as booleans.
_KUBECTL_BOOLS = {"y": "true", "Y": "true", "n": "false", "N": "false"}
# Numbers for go-yaml (kubectl) that PyYAML keeps as strings: exponents without a dot, 0o octals.
_GO_NUMBER = re.compile(r"^[-+]?(?:(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+|0o[0-7_]+)$")


def _plain(node: yaml.ScalarNode, text: str) -> bool:
    """Whether the scalar was written plain and without a tag (``n``, not ``'n'`` or ``!!str n``)."""
    if node.style:  # '' (libyaml) or None (PyYAML) for plain scalars
        return False
    i = node.start_mark.index
    while 0 <= i < len(text) and text[i] in "&!":
        if text[i] == "!":
            return False
        while i < len(text) and not text[i].isspace():  # an anchor: &name
            i += 1
        while i < len(text) and text[i].isspace():
            i += 1
    return True


def _number(text: str) -> str:
    """A plain number as YAML 1.1 (or go-yaml) reads it, for messages (``012`` -> ``10``)."""
    try:
        value = yaml.load(text, Loader=_Loader)  # a single plain scalar: plain data only
    except (yaml.YAMLError, ValueError):
        value = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    digits = text.replace("_", "")
    try:
        return str(int(digits, 0))
    except ValueError:
        pass
    try:
        return format(float(digits), "g")
    except ValueError:
        return text


def _key_trap(node: yaml.ScalarNode) -> tuple[str, str] | None:
    """What YAML 1.1 reads a plain key as, when that is not the string the user wrote, and a note."""
    value = node.value
    if value in _KUBECTL_BOOLS:
        read = _KUBECTL_BOOLS[value]
        return f"the boolean {read}", f"kubectl sends it as '{read}'; "
    kind = _NOT_STRINGS.get(node.tag)
    if kind == "the boolean":
        read = str(yaml.load(value, Loader=_Loader)).lower()
        return f"the boolean {read}", f"kubectl sends it as '{read}'; " if read != value else ""
    if kind == "the number":
        read = _number(value)
        if ":" in value:
            return f"the number {read} (base 60)", ""
        if re.match(r"^[-+]?0[0-7_]+$", value):
            return f"the number {read} (octal)", f"kubectl sends it as '{read}'; "
        return f"the number {read}", ""
    if kind is not None:
        return kind, ""
    if node.tag == _STR and _GO_NUMBER.match(value):
        read = _number(value)
        return f"the number {read}", f"in kubectl's YAML; kubectl sends it as '{read}'; "
    return None


def _value_trap(node: yaml.ScalarNode, where: str) -> str | None:
    """A message when flowctl and kubectl read a plain value as different types."""
    value = node.value
    if value in _KUBECTL_BOOLS:
        read = _KUBECTL_BOOLS[value]
        return (
            f"kubectl (YAML 1.1) reads {value} as the boolean {read}, flowctl as the string '{value}', so the "
            f"flow behaves differently in the cluster ({where}); quote it ('{value}') for the string, or write "
            f"{read} for the boolean"
        )
    if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and ":" in value:
        read = _number(value)
        return (
            f"flowctl reads {value} as the number {read} (YAML 1.1 base 60), kubectl as the string '{value}' "
            f"({where}); quote it ('{value}') for the string, or write {read} for the number"
        )
    if node.tag == _STR and _GO_NUMBER.match(value):
        read = _number(value)
        return (
            f"kubectl reads {value} as the number {read}, flowctl as the string '{value}' ({where}); quote it "
            f"('{value}') for the string, or write {read} for the number"
        )
    return None


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _lookup(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if _scalar(k) == key:
                found: yaml.Node = v
                return found
    return None


def _document_path(root: yaml.Node, index: int) -> tuple[str, bool]:
    """How problems of the ``index``-th document are prefixed, and whether it is a Flow manifest.

    Paths follow the loader's: a manifest's spec fields without ``spec.``, the first document's
    without prefix, a later Flow's under ``flows.<name>``, any other later document's under
    ``document <n>``.
    """
    keys = {_scalar(k) for k, _ in root.value} if isinstance(root, yaml.MappingNode) else set()
    manifest = "apiVersion" in keys or "kind" in keys
    kind = _scalar(_lookup(root, "kind"))
    flow_manifest = manifest and kind in ("Flow", None)
    if index == 0:
        return "", flow_manifest
    name = _scalar(_lookup(_lookup(root, "metadata"), "name"))
    if name and (flow_manifest or (not manifest and "nodes" in keys)):
        return f"flows.{name}", flow_manifest
    return f"document {index + 1}", flow_manifest


def _traps(root: yaml.Node, text: str, index: int) -> list[Problem]:
    """Plain keys and values that YAML 1.1 (kubectl) and this reader see differently (see the module doc)."""
    prefix, manifest = _document_path(root, index)
    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]

    def user_path(parts: tuple[str, ...]) -> str:
        if manifest and parts[:1] == ("spec",):
            parts = parts[1:]
        return join_path(prefix, *parts)

    def value(node: yaml.Node, parts: tuple[str, ...]) -> None:
        if isinstance(node, yaml.ScalarNode):
            message = _value_trap(node, _where(node))
            if message and _plain(node, text):
                problems.append(Problem(user_path(parts), message))
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, parts))

    while stack:
        node, parts = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if not isinstance(k, yaml.ScalarNode):
                    value(k, (*parts, "?"))
                    value(v, (*parts, "?"))
                    continue
                here = (*parts, k.value)
                read = _key_trap(k) if k.value and k.tag != _MERGE and _plain(k, text) else None
                if read is not None:
                    problems.append(
                        Problem(
                            user_path(here),
                            f"YAML 1.1 reads the key {k.value} as {read[0]}, not as the string '{k.value}' "
                            f"({read[1]}{_where(k)}); quote it: '{k.value}'",
                        )
                    )
                value(v, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):  # command[2], as the template checks name list items
                value(item, (*parts[:-1], f"{parts[-1]}[{i}]") if parts else (f"[{i}]",))
    return problems


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def read_documents(text: str) -> tuple[list[Any], list[Problem]]:
    """Every document in ``text`` (empty ones dropped) and the problems that stopped reading."""
    docs: list[Any] = []
    traps: list[Problem] = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            problem = _check(node)
            if problem is not None:
                return docs, [*traps, problem]
            traps += _traps(node, text, len(docs))
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append(doc)
    except _ValueError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        fix = "fix it, or write it as a quoted string without a tag if it is meant as a string"
        return docs, [*traps, Problem("", f"invalid YAML value{where}: {exc.problem}; {fix}")]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        return docs, [*traps, Problem("", f"YAML syntax error{where}: {what}; fix the YAML")]
    except yaml.YAMLError as exc:
        return docs, [*traps, Problem("", f"invalid YAML: {exc}")]
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. a date-looking scalar that is not a date (2024-13-45), an unhashable key
        return docs, [*traps, Problem("", f"invalid YAML value: {exc}; quote it if it is meant as a string")]
    except RecursionError:
        return docs, [*traps, Problem("", "the YAML is nested too deeply to read; flatten it")]
    finally:
        if loader is not None:
            loader.dispose()
    return docs, traps
