"""Jinja2 templates in ``action``, ``shell``, ``command`` and ``http`` strings.

Templates are rendered in a sandboxed environment (no attribute access to internals, no calls to
unsafe methods) with ``StrictUndefined`` so a typo such as ``{{ shared.cout }}`` fails the node with
a message instead of silently rendering an empty string. The variables are:

- ``shared``: the shared store (a dict),
- ``params``: the node's params (flow params, run params, batch-item params),
- ``item``: the current batch item (``None`` outside batch nodes),
- ``node``: ``{"name": <YAML key>, "type": <node type>}``,
- ``result``: in ``action`` only, exec's result for this node.

Validation only parses templates (``check_template``, ``template_problems``); nothing is rendered
before a run. Besides the syntax it reports what would fail at the first render: a top-level name
that is none of these variables (``{{ sharde.x }}``; a name guarded by ``is defined`` or ``| default``
is allowed, as are names the template sets itself and Jinja2's globals such as ``range``), ``result``
outside ``action``, a ``node`` attribute other than ``name`` and ``type``, an unknown filter or test
(``{{ x | no_such_filter }}``), and ``include``/``extends``/``import`` (there are no other templates
to load).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from .problems import closest, listing

RUN_VARIABLES = ("shared", "params", "item", "node")
"""What every template sees; ``action`` templates also see ``result``."""
TEMPLATE_VARIABLES = (*RUN_VARIABLES, "result")
NODE_FIELDS = ("name", "type")
_FILTERS_DOC = "https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-filters"
_TESTS_DOC = "https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-tests"
_GUARD_TESTS = ("defined", "undefined")
_GUARD_FILTERS = ("default", "d")


class TemplateError(RuntimeError):
    """A template could not be rendered at run time (undefined variable, sandbox violation...)."""


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one environment used for every template (cached: building it is not free)."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def is_template(text: str) -> bool:
    """Whether the string uses Jinja2 syntax at all (plain strings skip the template machinery)."""
    return "{{" in text or "{%" in text or "{#" in text


def check_template(text: str, *, action: bool = False) -> str | None:
    """None when ``text`` is a valid template, else a message (several joined) naming what is wrong.

    ``action``: the template is a node's ``action`` (it also sees ``result``).
    """
    found = template_problems(text, action=action)
    return " Also: ".join(found) if found else None


def template_problems(text: str, *, action: bool = False) -> list[str]:
    """Every problem of a template, each a message ending with the fix (parsing only, never rendering)."""
    if not is_template(text):
        return []
    env = environment()
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [
            f"invalid template (line {exc.lineno}): {exc.message}; fix the Jinja2 syntax "
            "({{ expression }}, {% statement %})"
        ]
    except RecursionError:
        return ["invalid template: it is nested too deeply to parse"]
    try:
        return _semantic_problems(env, tree, text, action=action)
    except RecursionError:  # pragma: no cover - the parser refuses deeper templates first
        return []


def _semantic_problems(env: SandboxedEnvironment, tree: nodes.Template, text: str, *, action: bool) -> list[str]:
    multiline = "\n" in text.strip()

    def at(node: nodes.Node) -> str:
        return f" (line {node.lineno})" if multiline else ""

    problems: list[str] = []
    for kind in (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport):
        for stmt in tree.find_all(kind):
            problems.append(
                f"templates cannot load other templates{at(stmt)}: there is nothing to include, extend or import; "
                "write the text inline"
            )
            break
    guarded = {
        t.node.name for t in tree.find_all(nodes.Test) if t.name in _GUARD_TESTS and isinstance(t.node, nodes.Name)
    } | {
        f.node.name for f in tree.find_all(nodes.Filter) if f.name in _GUARD_FILTERS and isinstance(f.node, nodes.Name)
    }
    reported: set[tuple[str, str]] = set()
    for f in tree.find_all(nodes.Filter):
        if f.name not in env.filters:
            if ("filter", f.name) not in reported:
                reported.add(("filter", f.name))
                match = closest(f.name, env.filters)
                fix = f"did you mean '{match}'?" if match else f"use one of Jinja2's built-in filters ({_FILTERS_DOC})"
                problems.append(f"unknown filter '{f.name}'{at(f)}; {fix}")
            f.name = "string"  # only for the analysis below, which compiles (never runs) the tree
    for t in tree.find_all(nodes.Test):
        if t.name not in env.tests:
            if ("test", t.name) not in reported:
                reported.add(("test", t.name))
                match = closest(t.name, env.tests)
                fix = f"did you mean '{match}'?" if match else f"use one of Jinja2's built-in tests ({_TESTS_DOC})"
                problems.append(f"unknown test '{t.name}'{at(t)}; {fix}")
            t.name = "defined"
    visible = TEMPLATE_VARIABLES if action else RUN_VARIABLES
    try:
        undeclared = meta.find_undeclared_variables(tree)
    except jinja2.TemplateError:  # pragma: no cover - unknown filters and tests are renamed above
        undeclared = set()
    names: dict[str, nodes.Name] = {}
    for n in tree.find_all(nodes.Name):
        if n.ctx == "load":
            names.setdefault(n.name, n)
    for name in sorted(undeclared - set(visible) - set(env.globals) - guarded):
        where = at(names[name]) if name in names else ""
        if name == "result":
            problems.append(
                f"'result' (exec's result) exists only in action templates{where}; read an earlier node's "
                "result from shared (shared.<its output>)"
            )
            continue
        match = closest(name, visible)
        fix = (
            f"did you mean '{match}'?"
            if match
            else f"write shared.{name} for a value in the shared store or params.{name} for a param"
        )
        problems.append(f"undefined variable '{name}'{where}; templates see {listing(visible)}; {fix}")
    if "node" in undeclared and "node" not in guarded:  # the context's node, not one the template sets
        for attr in tree.find_all(nodes.Getattr):
            if isinstance(attr.node, nodes.Name) and attr.node.name == "node" and attr.attr not in NODE_FIELDS:
                problems.append(
                    f"node has no field '{attr.attr}'{at(attr)} (node is {{name, type}}); use node.name or node.type"
                )
                break
    return problems


class Template:
    """A string compiled once at build time and rendered for every call."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self._compiled = environment().from_string(text) if is_template(text) else None

    def render(self, context: Mapping[str, Any]) -> str:
        if self._compiled is None:
            return self.text
        try:
            return self._compiled.render(**context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"{self.where}: {exc.message}; available variables: {', '.join(sorted(context))}"
            ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.where}: {exc}") from exc


def compile_value(value: Any, where: str) -> Any:
    """Strings anywhere inside ``value`` (dicts, lists) become Templates; other values stay."""
    if isinstance(value, str):
        return Template(value, where)
    if isinstance(value, Mapping):
        return {k: compile_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render the Templates inside a value built by ``compile_value``."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def template_strings(value: Any, where: str) -> list[tuple[str, str]]:
    """Every string inside ``value`` with its path, for validation."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out.extend(template_strings(v, f"{where}.{k}"))
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            out.extend(template_strings(v, f"{where}[{i}]"))
        return out
    return []
