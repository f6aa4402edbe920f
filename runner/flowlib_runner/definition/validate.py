"""Validation of one flow spec: every problem at once, each with its path and a fix.

Safe to run in the operator: it parses YAML-level data, Jinja2 templates and inline Python (with
``ast``), and never imports user modules or runs user code. Plugin types and run kinds are known by
name from package metadata; their own checks run only if they are already loaded.

Nodes are validated one by one, so a broken node does not hide the problems of the others, and the
graph checks (targets, start node, reachability) read the ``next`` maps directly from the input.

The cost is linear in the definition whatever it holds: before anything else, a value nested deeper
than ``MAX_NESTING`` or a template or inline code over ``MAX_TEXT_BYTES`` is reported and left out
of the other checks (Jinja2 took 46 s over a 10 MB template, and JSON nested 1,000 deep overflowed
the recursive walks); messages list a few names (``problems.Names``), and a ``deadline`` stops a
validation that still runs too long with ``TooSlow``.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from flowlib_api.flowspec import DEFAULT_ACTION, NODE_NAME_PATTERN, FlowSpec, NodeSpec, RunSpec
from flowlib_api.params import parse_schema, schema_problems

from .factories import NodeTypeRegistry, ValidationContext
from .problems import (
    LISTED_NAMES,
    Names,
    Problem,
    TooSlow,
    chain,
    did_you_mean,
    first_paths,
    join_path,
    key_text,
    listing,
    short,
)
from .runkinds import KIND_KEYS, MODIFIER_KEYS, RunKindRegistry, run_block_keys
from .templates import is_template, template_problems

_NODE_NAME = re.compile(NODE_NAME_PATTERN)
_ITEMS_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


MAX_NESTING = 100
"""Levels of mappings and lists one field's value may have (``params``, ``run.http.json``...)."""
MAX_TEXT_BYTES = 64 * 1024
"""Bytes (UTF-8) of one template or inline code: a string in ``action`` or anywhere in ``run``."""
_CODE_FIELDS = ("action", "run")


def limit_problems(value: Any, *where: object, code: bool = False, name_levels: int = 1) -> list[Problem]:
    """Problems of one field's value (at the path ``where``) that keep it out of every other check:
    nested deeper than ``MAX_NESTING``, or (``code``: the field holds templates or inline code) a
    string over ``MAX_TEXT_BYTES``. Walks without recursion and stops at the first problem of each kind.

    A too deep value is named by the path of its first ``name_levels`` keys (``params.p``, and for
    ``run``, whose fields are one level down, ``run.http.json``), not by the hundred keys of its depth.
    """
    if (isinstance(value, str) and not code) or not isinstance(value, str | Mapping | list | tuple):
        return []  # the common case, a scalar: nothing to walk
    problems: list[Problem] = []
    deep = False
    # Each entry: the value, its nesting level, and how to name it if it is wrong (its key, whether
    # that is a list index, the parent's entry).
    stack: list[_Entry] = [(value, 0, None, False, None)]
    while stack:
        entry = stack.pop()
        item, level = entry[0], entry[1]
        if isinstance(item, str):
            if code and len(item) * 4 > MAX_TEXT_BYTES and len(item.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
                kib = -(-len(item.encode("utf-8", "replace")) // 1024)
                problems.append(
                    Problem(
                        _entry_path(join_path(*where), entry),
                        f"this template or inline code is {kib} KiB, over the {MAX_TEXT_BYTES // 1024} KiB limit "
                        "(checking it would hold validation up); move code into a module (run: {call: "
                        "module:function}), and big text into a file, a ConfigMap or a param the node reads",
                    )
                )
                code = False  # one is enough to say what to do
            continue
        if isinstance(item, Mapping):
            children: Any = item.items()
            in_list = False
        elif isinstance(item, list | tuple):
            children = enumerate(item)
            in_list = True
        else:
            continue
        if level + 1 > MAX_NESTING:
            if not deep:
                deep = True
                named = entry
                while named[1] > name_levels:
                    named = named[4]
                problems.append(
                    Problem(
                        _entry_path(join_path(*where), named),
                        f"nested more than {MAX_NESTING} levels deep (mappings and lists); flatten it, or pass such "
                        "data at run time (the FlowRun's input) instead of in the definition",
                    )
                )
            continue
        stack.extend((child, level + 1, key, in_list, entry) for key, child in children)
    return problems


_Entry = tuple[Any, int, object, bool, Any]


def _entry_path(path: str, entry: _Entry) -> str:
    """The path of a value ``limit_problems`` found (``run.command[2]``, ``run.http.json.body``)."""
    parts: list[tuple[object, bool]] = []
    at: _Entry | None = entry
    while at is not None and at[4] is not None:
        parts.append((at[2], at[3]))
        at = at[4]
    text = path
    for key, index in reversed(parts):
        text = f"{text}[{key}]" if index else join_path(text, key)
    return text


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that a pydantic error location points into (for 'known fields' lists)."""
    current: Any = model
    parts = list(loc)
    while parts:
        if isinstance(current, type) and issubclass(current, BaseModel):
            key = parts.pop(0)
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if key not in fields:
                return None
            current = fields[key].annotation
            continue
        origin = get_origin(current)
        args = [a for a in get_args(current) if a is not type(None)]
        if origin is dict and len(args) == 2:
            parts.pop(0)
            current = args[1]
        elif origin is list and args:
            parts.pop(0)
            current = args[0]
        elif len(args) == 1:
            current = args[0]
        else:
            return None
    while not (isinstance(current, type) and issubclass(current, BaseModel)):
        args = [a for a in get_args(current) if a is not type(None)]
        if len(args) != 1:
            return None
        current = args[0]
    return current


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def pydantic_problems(exc: ValidationError, model: type[BaseModel], prefix: str) -> list[Problem]:
    """Readable problems (with fixes) from a pydantic ValidationError."""
    problems = []
    errors = exc.errors(include_url=False)
    hinted = first_paths(join_path(prefix, *e["loc"]) for e in errors if e["type"] == "extra_forbidden")
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            where = join_path(prefix, *loc[:-1])
            key = key_text(loc[-1])
            owner = _model_at(model, loc[:-1])
            known = _field_names(owner) if owner else []
            camel = to_camel(key)
            if camel != key and camel in known:
                hint = f"; did you mean '{camel}'? (Flow manifests spell fields in camelCase)"
            else:
                hint = did_you_mean(key, known) if join_path(where, key) in hinted else ""
            message = f"unknown field '{key}'{hint}; known fields: {listing(known, limit=None)}"
            problems.append(Problem(join_path(where, key), message))
            continue
        if loc and loc[-1] == "[key]":
            problems.append(
                Problem(
                    join_path(prefix, *loc[:-2]),
                    f"key {short(value)} must be a string; quote it (YAML reads yes, no, on, off, true, "
                    "false "
                    "and numbers as other types)",
                )
            )
            continue
        path = join_path(prefix, *loc)
        if kind == "missing":
            message = f"required field '{loc[-1]}' is missing; add it"
        elif kind in ("value_error", "assertion_error"):
            message = str(ctx.get("error", err["msg"]))
        elif kind == "greater_than_equal":
            message = f"must be >= {ctx.get('ge')}, got {short(value)}"
        elif kind == "less_than_equal":
            message = f"must be <= {ctx.get('le')}, got {short(value)}"
        elif kind == "too_short":
            message = f"must not be empty (at least {ctx.get('min_length', 1)} entry); add one"
        elif kind == "literal_error":
            message = f"must be {ctx.get('expected')}, got {short(value)}"
        elif kind in _TYPE_WORDS:
            message = f"expected {_TYPE_WORDS[kind]}, got {type(value).__name__} {short(value)}"
        else:
            message = f"{err['msg']} (got {short(value)})"
        problems.append(Problem(path, message))
    return problems


class SpecValidator:
    """Validates flow specs against a node-type registry and run-kind registry."""

    def __init__(self, registry: NodeTypeRegistry, run_kinds: RunKindRegistry) -> None:
        self.registry = registry
        self.run_kinds = run_kinds

    def validate(
        self, raw: Any, *, flows: set[str] | None = None, prefix: str = "", deadline: float | None = None
    ) -> tuple[FlowSpec | None, list[Problem]]:
        """The canonical spec (None if there is any error) and every problem found.

        ``deadline`` (``time.monotonic()``): past it, between two nodes, raise ``TooSlow``.
        """
        if not isinstance(raw, Mapping):
            return None, [Problem(prefix, f"a flow spec must be a mapping with nodes, got {type(raw).__name__}")]
        problems: list[Problem] = []
        ctx = ValidationContext(self.run_kinds, set(flows or ()))
        raw_nodes = raw.get("nodes")
        header: dict[Any, Any] = {"nodes": {"placeholder": {}}}
        for key, value in raw.items():
            if key != "nodes":
                found = limit_problems(value, prefix, key)
                problems += found
                if not found:
                    header[key] = value
        try:
            FlowSpec.model_validate(header)
        except ValidationError as exc:
            problems += pydantic_problems(exc, FlowSpec, prefix)
        # The declared params' defaults and enums against their own types, spec.params against them:
        # every declaration that parses, whatever else is wrong.
        flow_params = header.get("params")
        problems += [
            Problem(join_path(prefix, path), message, severity)
            for path, message, severity in schema_problems(
                parse_schema(header.get("paramSchema")), flow_params if isinstance(flow_params, Mapping) else None
            )
        ]
        names: list[str] = []
        edges: dict[str, dict[str, str]] = {}
        checked: dict[str, NodeSpec] = {}
        actions: dict[str, list[str]] = {}  # action template -> its problems: flows repeat the same action
        if raw_nodes is None:
            problems.append(Problem(join_path(prefix, "nodes"), "a flow needs nodes: a mapping of node name to node"))
        elif not isinstance(raw_nodes, Mapping):
            problems.append(
                Problem(
                    join_path(prefix, "nodes"),
                    f"expected a mapping of node name to node, got {type(raw_nodes).__name__}",
                )
            )
        elif not raw_nodes:
            problems.append(Problem(join_path(prefix, "nodes"), "a flow needs at least one node; add one"))
        else:
            for name, raw_node in raw_nodes.items():
                if deadline is not None and time.monotonic() > deadline:
                    raise TooSlow
                node_problems, node = self._node(name, raw_node, join_path(prefix, "nodes", name), ctx, actions)
                problems += node_problems
                if isinstance(name, str):
                    if node is not None:
                        checked[name] = node
                    names.append(name)
                    nxt = raw_node.get("next") if isinstance(raw_node, Mapping) else None
                    edges[name] = (
                        {key_text(a): t for a, t in nxt.items() if isinstance(t, str)}
                        if isinstance(nxt, Mapping)
                        else {}
                    )
            problems += _undefined_flows(checked, ctx.flows, prefix)
            known = Names(names)
            final = raw.get("finally")
            final_problems = _finally_problems(final, known, edges, prefix)
            problems += final_problems
            outside = final if isinstance(final, str) and final in known else None
            problems += self._graph(raw.get("start"), names, edges, prefix, outside=outside, known=known)
            if raw.get("maxSteps") is None:
                graph_names = [n for n in names if n != outside]
                problems += _loops(raw.get("start"), graph_names, edges, prefix)
        if any(p.is_error for p in problems):
            return None, problems
        try:
            # The nodes as validated above: validating each raw node a second time doubled the cost.
            spec = FlowSpec.model_validate({**raw, "nodes": checked})
        except ValidationError as exc:  # pragma: no cover - every case is reported above
            return None, problems + pydantic_problems(exc, FlowSpec, prefix)
        return spec, problems

    def _node(
        self, name: Any, raw: Any, path: str, ctx: ValidationContext, actions: dict[str, list[str]]
    ) -> tuple[list[Problem], NodeSpec | None]:
        """The node's problems, and the node as validated (None when it could not be read at all).

        ``actions`` remembers the problems of each action template this validation has checked.
        """
        if not isinstance(name, str) or not _NODE_NAME.match(name):
            return [
                Problem(
                    path,
                    f"node name {short(name)} is not valid: start with a letter or _, then use letters, "
                    "digits, "
                    "_ and - only",
                )
            ], None
        raw = raw if raw is not None else {}
        problems: list[Problem] = []
        limited: set[str] = set()  # fields too deep or too big: left out of every check below
        if isinstance(raw, Mapping):
            for key, value in raw.items():
                found = limit_problems(value, path, key, code=key in _CODE_FIELDS, name_levels=2 if key == "run" else 1)
                if found:
                    problems += found
                    limited.add(key_text(key))
            if limited:
                raw = {k: v for k, v in raw.items() if key_text(k) not in limited}
        pruned = set(limited)
        try:
            node = NodeSpec.model_validate(raw)
        except ValidationError as exc:
            problems += pydantic_problems(exc, NodeSpec, path)
            # Check the rest of the node too: drop what failed and validate again, so that one
            # bad duration does not hide a syntax error in the same node's code.
            locs = [tuple(e["loc"]) for e in exc.errors()]
            pruned |= {key_text(loc[0]) for loc in locs if loc}
            retry = _prune(
                raw,
                [loc[:-1] if e["type"] == "missing" else loc for e, loc in zip(exc.errors(), locs, strict=True)],
            )
            try:
                node = NodeSpec.model_validate(retry)
            except ValidationError:
                return problems, None
        type_name = node.type
        types = self.registry.names()
        if type_name not in types:
            problems.append(
                Problem(
                    join_path(path, "type"),
                    f"unknown node type '{type_name}'{did_you_mean(type_name, types)}; "
                    f"known types: {listing(types, limit=None)} (plugins add types through the "
                    "flowlib.node_types entry point)",
                )
            )
            factory = None
        else:
            factory = self.registry.loaded(type_name)
        if factory is not None and not pruned & {"type", "batch", "flow", "run"}:
            problems += factory.validate(name, node, path, ctx)
        if node.run is not None and "run" not in pruned:
            problems += self._run(node.run, join_path(path, "run"), batch=bool(factory and factory.batch))
        if node.action is not None:
            if node.action not in actions:
                actions[node.action] = template_problems(node.action, action=True)
            for message in actions[node.action]:
                problems.append(Problem(join_path(path, "action"), message))
        if not limited & {"action", "run"}:
            problems += _constant_action_problems(node, path)
        if node.output is not None and not node.output.strip():
            problems.append(
                Problem(
                    join_path(path, "output"),
                    "output must name a shared key; remove it to use the node's name",
                )
            )
        if node.batch is not None and node.batch.items is not None and not _ITEMS_PATH.match(node.batch.items):
            problems.append(
                Problem(
                    join_path(path, "batch", "items"),
                    f"'{node.batch.items}' is not a dotted path; write keys separated by dots, e.g. docs "
                    "or result.pages",
                )
            )
        return problems, node

    def _run(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        keys = run_block_keys(run)
        known = set(KIND_KEYS) | self.run_kinds.names()
        kinds: dict[str, str] = {}
        problems: list[Problem] = []
        hinted = first_paths(join_path(path, key) for key in keys if key not in known and key not in MODIFIER_KEYS)
        for key in keys:
            if key in MODIFIER_KEYS:
                continue
            if key in known:
                kinds[key] = KIND_KEYS.get(key, key)
                continue
            hint = did_you_mean(key, known | set(MODIFIER_KEYS)) if join_path(path, key) in hinted else ""
            problems.append(
                Problem(
                    join_path(path, key),
                    f"unknown run kind '{key}'{hint}; known kinds: "
                    f"{listing(known, limit=None)} (plugins add kinds through the flowlib.run_kinds entry point)",
                )
            )
        if not kinds and not problems:
            problems.append(
                Problem(
                    path,
                    f"run names no kind; set one of {listing(known, limit=None)}, or remove run for a node that "
                    "does nothing",
                )
            )
        if len(kinds) > 1:
            problems.append(
                Problem(
                    path, f"run sets several kinds ({listing(kinds, limit=None)}); a node runs exactly one, keep one"
                )
            )
        for key in keys:
            owners = MODIFIER_KEYS.get(key)
            if owners and not any(k in kinds for k in owners):
                problems.append(
                    Problem(join_path(path, key), f"{key} applies to {' and '.join(owners)} only; remove it")
                )
        for kind_name in sorted(set(kinds.values())):
            kind = self.run_kinds.loaded(kind_name)
            if kind is not None:
                problems += kind.validate(run, path, batch=batch)
        return problems

    def _graph(
        self,
        start: Any,
        names: list[str],
        edges: dict[str, dict[str, str]],
        prefix: str,
        *,
        outside: str | None = None,
        known: Names | None = None,
    ) -> list[Problem]:
        """Targets exist, one start node, everything reachable from it; ``outside`` (the finally
        node) is a known target but neither a start candidate nor expected to be reached."""
        problems: list[Problem] = []
        known = known if known is not None else Names(names)
        dangling = [
            (join_path(prefix, "nodes", name, "next", action), target)
            for name, nxt in edges.items()
            for action, target in nxt.items()
            if target not in known
        ]
        hinted = first_paths(at for at, _ in dangling)
        for at, target in dangling:
            hint = did_you_mean(target, known) if at in hinted else ""
            problems.append(Problem(at, f"target '{target}' does not exist; known nodes: {listing(known)}{hint}"))
        if start is not None and not isinstance(start, str):
            return problems  # already reported as a type error
        if start is not None:
            if start not in known:
                problems.append(
                    Problem(
                        join_path(prefix, "start"),
                        f"start node '{start}' does not exist; known nodes: {listing(known)}"
                        + did_you_mean(start, known),
                    )
                )
                return problems
            first = start
        else:
            incoming = {t for n, nxt in edges.items() for t in nxt.values() if t != n}
            candidates = sorted(n for n in names if n not in incoming and n != outside)
            if not candidates:
                problems.append(
                    Problem(
                        join_path(prefix, "start"),
                        "no start node: every node has an incoming edge (the graph is a loop); set start: to "
                        f"the first node, one of {listing(known)}",
                    )
                )
                return problems
            if len(candidates) > 1:
                problems.append(
                    Problem(
                        join_path(prefix, "start"),
                        f"several start nodes (nodes without incoming edges): {listing(candidates)}; set "
                        "start: to the first one, or connect the others with next edges",
                    )
                )
                return problems
            first = candidates[0]
        seen = {first}
        todo = [first]
        while todo:
            for target in edges.get(todo.pop(), {}).values():
                if target in known and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name in names:
            if name not in seen and name != outside:
                problems.append(
                    Problem(
                        join_path(prefix, "nodes", name),
                        f"unreachable from the start node '{first}'; connect it with a next edge or remove it",
                        "warning",
                    )
                )
        return problems


def _undefined_flows(nodes: dict[str, NodeSpec], defined: set[str], prefix: str) -> list[Problem]:
    """``type: flow`` nodes naming a flow that is not defined (after the node loop, so that the
    did-you-mean goes to the first problems by path, the ones a report shows)."""
    undefined = [
        (join_path(prefix, "nodes", name, "flow"), node.flow)
        for name, node in nodes.items()
        if node.type == "flow" and node.flow is not None and node.flow not in defined
    ]
    if not undefined:
        return []  # the usual case: no need to index the flows (a library may hold thousands)
    flows = Names(defined)
    hinted = first_paths(at for at, _ in undefined)
    return [
        Problem(
            at,
            f"flow '{flow}' is not defined{did_you_mean(flow, flows) if at in hinted else ''}; known flows: "
            f"{listing(flows)}; define it (another document in the same file, or a Flow in the same namespace)",
        )
        for at, flow in undefined
    ]


def _finally_problems(final: Any, names: Names, edges: dict[str, dict[str, str]], prefix: str) -> list[Problem]:
    """``finally`` names a node outside the graph: it exists, no edge leads to it, it has none."""
    if final is None:
        return []
    where = join_path(prefix, "finally")
    if not isinstance(final, str):
        return [Problem(where, "finally names one node (a string): the node to run after the graph ends")]
    if final not in names:
        return [
            Problem(where, f"node '{final}' does not exist{did_you_mean(final, names)}; known nodes: {listing(names)}")
        ]
    problems: list[Problem] = []
    for name, nxt in edges.items():
        for action, target in nxt.items():
            if target == final:
                problems.append(
                    Problem(
                        join_path(prefix, "nodes", name, "next", action),
                        f"'{final}' is the finally node, which runs once after the graph ends; no edge may "
                        "lead to it: point this edge at another node",
                    )
                )
    if edges.get(final):
        problems.append(
            Problem(
                join_path(prefix, "nodes", final, "next"),
                "the finally node runs alone after the graph ends, so its edges would never be taken; remove next",
            )
        )
    return problems


def _post_returns(code: str) -> list[str]:
    """The string constants inline code's ``post`` returns (parsing only; other returns are unknown)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    posts = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "post"]
    if not posts:
        return []
    found: list[str] = []
    todo: list[ast.AST] = list(posts[-1].body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue  # returns of nested functions are not post's
        if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            found.append(stmt.value.value)
        todo.extend(ast.iter_child_nodes(stmt))
    return sorted(set(found))


def _constant_action_problems(node: NodeSpec, path: str) -> list[Problem]:
    """Warnings for actions the node is seen to return (a literal ``action``, or a string ``post``
    returns) that no edge follows, when the node has edges but no default one: the run stops there."""
    edges = node.next
    if not edges or DEFAULT_ACTION in edges:
        return []
    if node.action is not None:
        if is_template(node.action) or not node.action.strip():
            return []
        field, what, actions = "action", "the action is always", [node.action.strip()]
        change = "change the action"
    elif node.run is not None and node.run.python is not None:
        field, what, actions = "run.python", "post can return", _post_returns(node.run.python)
        change = "return an action that has an edge"
    else:
        return []
    problems = []
    known = Names(edges)
    unfollowed = [action for action in actions if action not in known]
    for action in unfollowed[:LISTED_NAMES]:
        match = known.closest(action)
        fix = (
            f"did you mean '{match}'? (or add a next.{action} edge)"
            if match
            else f"add a next.{action} edge, or {change}"
        )
        problems.append(
            Problem(
                join_path(path, field),
                f"{what} '{action}' but next has no '{action}' edge and no default edge (edges: "
                f"{known.listing()}), so the run stops after this node; {fix}",
                "warning",
            )
        )
    if len(unfollowed) > LISTED_NAMES:
        problems.append(
            Problem(
                join_path(path, field),
                f"post can also return {len(unfollowed) - LISTED_NAMES} more actions that no edge follows; add a "
                "default edge, or an edge for each",
                "warning",
            )
        )
    return problems


def _loops(start: Any, names: list[str], edges: dict[str, dict[str, str]], prefix: str) -> list[Problem]:
    """A warning on every edge that closes a loop (walking from the start node first), for a flow
    without ``maxSteps``."""
    known = set(names)
    problems: list[Problem] = []
    done: set[str] = set()
    for root in [start, *names] if isinstance(start, str) and start in known else names:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root: 0}  # node -> its index in path
        pending = [iter(edges.get(root, {}).items())]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                finished = path.pop()
                del on_path[finished]
                done.add(finished)
                pending.pop()
                continue
            action, target = step
            if target not in known:
                continue
            if target in on_path:
                loop = chain([*path[on_path[target] :], target])
                problems.append(
                    Problem(
                        join_path(prefix, "nodes", path[-1], "next", action),
                        f"this edge closes a loop ({loop}) and the flow has no maxSteps, so a loop that never "
                        "exits runs until the run is cancelled; set maxSteps (or give the FlowRun a timeout)",
                        "warning",
                    )
                )
            elif target not in done:
                on_path[target] = len(path)
                path.append(target)
                pending.append(iter(edges.get(target, {}).items()))
    return problems


def _prune(raw: Any, locs: list[tuple[Any, ...]]) -> Any:
    """A copy of ``raw`` without the values at ``locs`` (an empty loc drops everything)."""
    if any(not loc for loc in locs):
        return {}
    if isinstance(raw, Mapping):
        out: Any = dict(raw)
    elif isinstance(raw, list):
        out = list(raw)
    else:
        return raw
    heads: dict[Any, list[tuple[Any, ...]]] = {}
    for loc in locs:
        heads.setdefault(loc[0], []).append(loc[1:])
    drop = {head for head, rests in heads.items() if any(not rest for rest in rests)}
    for head, rests in heads.items():
        if head in drop:
            continue
        if (isinstance(out, dict) and head in out) or (
            isinstance(out, list) and isinstance(head, int) and 0 <= head < len(out)
        ):
            out[head] = _prune(out[head], rests)
    if isinstance(out, dict):
        for head in drop:
            out.pop(head, None)
    else:
        out = [v for i, v in enumerate(out) if i not in drop]
    return out


def find_start(spec: FlowSpec) -> str:
    """The start node of a valid spec: ``start`` or the only node without incoming edges."""
    if spec.start is not None:
        return spec.start
    incoming = {t for n, node in spec.nodes.items() for t in node.next.values() if t != n}
    candidates = sorted(n for n in spec.nodes if n not in incoming and n != spec.finally_)
    if len(candidates) != 1:
        raise ValueError(f"no single start node (candidates: {listing(candidates)}); validate the spec first")
    return candidates[0]
