"""Jinja2 templates in ``action``, ``shell``, ``command`` and ``http`` strings.

Templates are rendered in a sandboxed environment (no attribute access to internals, no calls to
unsafe methods) with ``StrictUndefined`` so a typo such as ``{{ shared.cout }}`` fails the node with
a message instead of silently rendering an empty string. The variables are:

- ``shared``: the shared store (a dict),
- ``params``: the node's params (flow params, run params, batch-item params),
- ``item``: the current batch item (``None`` outside batch nodes),
- ``node``: ``{"name": <YAML key>, "type": <node type>}``,
- ``result``: in ``action`` only, exec's result for this node.

Validation only parses templates (``check_template``); nothing is rendered before a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_VARIABLES = ("shared", "params", "item", "node", "result")


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


def check_template(text: str) -> str | None:
    """None when ``text`` is a valid template, else a message naming the line and the error."""
    if not is_template(text):
        return None
    try:
        environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return (
            f"invalid template (line {exc.lineno}): {exc.message}; fix the Jinja2 syntax "
            "({{ expression }}, {% statement %})"
        )
    except RecursionError:
        return "invalid template: it is nested too deeply to parse"
    return None


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
