"""Jinja2 templates in ``action``, ``shell``, ``command`` and ``http`` strings.

Templates are rendered in a sandboxed environment (no attribute access to internals, no calls to
unsafe methods) with ``StrictUndefined`` so a typo such as ``{{ shared.cout }}`` fails the node with
a message instead of silently rendering an empty string. The variables are:

- ``shared``: the shared store (a dict),
- ``params``: the node's params (flow params, run params, batch-item params),
- ``item``: the current batch item (``None`` outside batch nodes),
- ``node``: ``{"name": <YAML key>, "type": <node type>}``,
- ``env``: the run's declared environment variables (``RunEnvironment``): in a cluster only the
  names the FlowRun's ``spec.env`` or the node's ``run.env`` declare, so a flow can read a
  credential from a Secret (``{{ env.API_TOKEN }}``) but not whatever else the pod holds,
- ``result``: in ``action`` only, exec's result for this node.

Three ways of rendering, by what the string becomes (``TemplateKind``):

- ``shell`` (``run.shell``): a command line for ``/bin/sh``. Every ``{{ expression }}``'s value is
  quoted with ``shlex.quote`` (a Jinja2 ``finalize``), so a param ``bob; rm -rf ~`` is one word, not
  a second command. ``| unquoted`` opts out (for trusted shell syntax; lint warns about it), and
  ``| shquote`` quotes explicitly anywhere. Literal text and ``{% %}`` statements are not touched.
- ``native`` (strings inside ``http.json``): a string that is exactly one ``{{ expression }}``
  becomes the expression's value (number, bool, list, dict, null), not its string form.
- ``text``: everything else (``command`` elements stay argv: nothing to quote).

Validation only parses templates (``check_template``, ``template_problems``); nothing is rendered
before a run. Besides the syntax it reports what would fail at the first render: a top-level name
that is none of these variables (``{{ sharde.x }}``; a name guarded by ``is defined`` or ``| default``
is allowed, as are names the template sets itself and Jinja2's globals such as ``range``), ``result``
outside ``action``, a ``node`` attribute other than ``name`` and ``type``, an unknown filter or test
(``{{ x | no_such_filter }}``), and ``include``/``extends``/``import`` (there are no other templates
to load). At lint time no FlowRun is known, so any ``env.NAME`` passes; an undeclared one fails the
node when it renders, naming the field and the declared names. ``shell_quoting_warnings`` adds the
warnings of shell strings (``| unquoted``, an expression written inside quotes).

Errors about a rendered string (a command that failed, a status an HTTP server answered) must show
its source, never its rendering, which may hold a secret: ``describe_source``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .problems import closest, listing

if TYPE_CHECKING:
    import jinja2
    from jinja2 import nodes
    from jinja2.sandbox import SandboxedEnvironment

# jinja2 (about 15 ms to import) is imported where a template is parsed, compiled or rendered, not
# here: a flow without templates (and the runner's start, up to its first node) never needs it.

RUN_VARIABLES = ("shared", "params", "item", "node", "env")
"""What every template sees; ``action`` templates also see ``result``."""
TEMPLATE_VARIABLES = (*RUN_VARIABLES, "result")
NODE_FIELDS = ("name", "type")
_FILTERS_DOC = "https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-filters"
_TESTS_DOC = "https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-tests"
_GUARD_TESTS = ("defined", "undefined")
_GUARD_FILTERS = ("default", "d")
SOURCE_CHARS = 200
"""How much of a template's source an error message shows."""

TemplateKind = Literal["text", "shell", "native"]
"""How a template renders (see the module docstring)."""


class TemplateError(RuntimeError):
    """A template could not be rendered at run time (undefined variable, sandbox violation...)."""


class UndeclaredVariable(TemplateError):
    """A template read ``env.NAME`` for a name the run did not declare."""


class Unquoted(str):
    """A value the shell rendering leaves as it is: the output of ``| unquoted`` and ``| shquote``."""

    __slots__ = ()


def unquoted(value: Any) -> Unquoted:
    """The ``unquoted`` filter: render into a shell string without quoting (a no-op elsewhere)."""
    return Unquoted(value)


def shquote(value: Any) -> Unquoted:
    """The ``shquote`` filter: ``shlex.quote`` of the value's text, in any template."""
    return Unquoted(shlex.quote(str(value)))


def _shell_word(value: Any) -> Any:
    """``finalize`` of shell strings: every expression's value becomes one quoted shell word."""
    if isinstance(value, Unquoted):
        return value
    return shlex.quote(str(value))  # str() of an undefined value raises, as rendering it would


def _sandbox(**options: Any) -> SandboxedEnvironment:
    import jinja2  # lazy: see the imports
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        **options,
    )
    env.filters.update(unquoted=unquoted, shquote=shquote)
    return env


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The environment of every template but shell strings (cached: building it is not free)."""
    return _sandbox()


@lru_cache(maxsize=1)
def shell_environment() -> SandboxedEnvironment:
    """The environment of ``run.shell`` strings: the same, with every expression's value shell-quoted."""
    return _sandbox(finalize=_shell_word)


class RunEnvironment(Mapping[str, str]):
    """``env`` in templates: the environment variables the run declared, and only those.

    Why only declared ones: a runner pod's environment also holds the operator's variables and the
    cluster's service addresses; a flow should read only what its FlowRun (``spec.env``) or its node
    (``run.env``, whose rendered values are ``extra``) says it uses. ``declared`` None means every
    variable of ``source``: under ``flowctl run`` the user's own shell is the run's environment. A
    declared name that is not set reads as undefined (``| default`` applies); an undeclared one
    raises ``UndeclaredVariable`` naming the declared names.
    """

    def __init__(
        self,
        declared: Iterable[str] | None = None,
        *,
        source: Mapping[str, str] = os.environ,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._declared = None if declared is None else frozenset(declared)
        self._source = source
        self._extra = dict(extra or {})

    def including(self, extra: Mapping[str, str]) -> RunEnvironment:
        """This environment plus a node's own variables (``run.env``, rendered)."""
        return RunEnvironment(self._declared, source=self._source, extra={**self._extra, **extra})

    def _visible(self, name: str) -> bool:
        return self._declared is None or name in self._declared

    def __getitem__(self, name: str) -> str:
        if name in self._extra:
            return self._extra[name]
        if not self._visible(name):
            known = listing({*(self._declared or ()), *self._extra})
            raise UndeclaredVariable(
                f"env.{name} is not declared; templates see only the variables the FlowRun's spec.env or the "
                f"node's run.env declare ({known}): add {name} to the FlowRun's spec.env"
            )
        return self._source[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._extra or (self._visible(name) and name in self._source))

    def __iter__(self) -> Iterator[str]:
        names = set(self._source) if self._declared is None else {n for n in self._declared if n in self._source}
        return iter(sorted(names | set(self._extra)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<env {', '.join(self)}>"


_PROCESS_ENVIRONMENT = RunEnvironment()
_run_environment: ContextVar[RunEnvironment | None] = ContextVar("flowlib_run_environment", default=None)


def run_environment() -> RunEnvironment:
    """The ``env`` of templates rendered now: the declared one of the run, else the whole process's."""
    declared = _run_environment.get()
    return _PROCESS_ENVIRONMENT if declared is None else declared


@contextmanager
def declared_environment(names: Iterable[str]) -> Iterator[None]:
    """Let templates rendered inside (tasks and threads started there included) see only ``names``."""
    token = _run_environment.set(RunEnvironment(names))
    try:
        yield
    finally:
        _run_environment.reset(token)


def is_template(text: str) -> bool:
    """Whether the string uses Jinja2 syntax at all (plain strings skip the template machinery)."""
    return "{{" in text or "{%" in text or "{#" in text


def check_template(text: str, *, action: bool = False) -> str | None:
    """None when ``text`` is a valid template, else a message (several joined) naming what is wrong.

    ``action``: the template is a node's ``action`` (it also sees ``result``).
    """
    found = template_problems(text, action=action)
    return " Also: ".join(found) if found else None


_PLAIN_EXPRESSION = re.compile(r"\{\{-?[ \t]*([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)[ \t]*-?\}\}")
_JINJA_KEYWORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if"})


def _plainly_valid(text: str, *, action: bool) -> bool:
    """Whether ``text`` is only literal text and ``{{ name.attr... }}`` expressions of known names.

    Most templates are (``echo {{ params.x }}``), and for them Jinja2's parse and analysis, about a
    millisecond each, would only confirm it: a 5,000-node flow spends most of its validation there.
    Anything else (filters, statements, an unknown name) takes the full analysis and its messages.
    """
    if "{{{" in text or "}}}" in text:  # Jinja2 reads these otherwise (a dict literal, a brace)
        return False
    visible = TEMPLATE_VARIABLES if action else RUN_VARIABLES
    for match in _PLAIN_EXPRESSION.finditer(text):
        name, attributes = match.group(1), match.group(2)
        if name not in visible or name in _JINJA_KEYWORDS:
            return False
        if name == "node" and attributes and attributes[1:].split(".", 1)[0] not in NODE_FIELDS:
            return False
    return not is_template(_PLAIN_EXPRESSION.sub("", text))


def template_problems(text: str, *, action: bool = False) -> list[str]:
    """Every problem of a template, each a message ending with the fix (parsing only, never rendering)."""
    if not is_template(text) or _plainly_valid(text, action=action):
        return []
    import jinja2  # lazy: see the imports

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
    except RecursionError:  # the parser refuses most deeper templates first
        return ["the template is nested too deeply to check; write it with fewer nested expressions"]


def _semantic_problems(env: SandboxedEnvironment, tree: nodes.Template, text: str, *, action: bool) -> list[str]:
    import jinja2  # lazy: see the imports
    from jinja2 import meta, nodes

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
    """A string compiled once at build time and rendered for every call (``kind``: see the module docstring)."""

    def __init__(self, text: str, where: str, *, kind: TemplateKind = "text") -> None:
        self.text = text
        self.where = where
        self.kind = kind
        self._compiled: jinja2.Template | None = None
        self._expression: Any = None  # a compiled single expression (native templates)
        if not is_template(text):
            return
        env = shell_environment() if kind == "shell" else environment()
        expression = single_expression(text) if kind == "native" else None
        if expression is not None:
            self._expression = env.compile_expression(expression, undefined_to_none=False)
        else:
            self._compiled = env.from_string(text)

    def render(self, context: Mapping[str, Any]) -> str:
        """The rendered string (a native template's value in its string form)."""
        value = self.evaluate(context)
        return value if isinstance(value, str) else str(value)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The rendered string, or for a native single-expression template its value."""
        if self._expression is None and self._compiled is None:
            return self.text
        import jinja2  # lazy (see the imports); loaded already, by the compile in __init__

        try:
            if self._expression is not None:
                value = self._expression(**context)
                if isinstance(value, jinja2.Undefined):
                    value._fail_with_undefined_error()
                return value
            if self._compiled is None:
                return self.text
            return self._compiled.render(**context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"{self.where}: {exc.message}; available variables: {', '.join(sorted(context))}"
            ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.where}: {exc}") from exc
        except TemplateError as exc:  # UndeclaredVariable: the message lacks the field
            raise TemplateError(f"{self.where}: {exc}") from exc


_ONE_EXPRESSION = re.compile(r"\A\{\{-?(?P<expression>.*?)-?\}\}\Z", re.DOTALL)


def single_expression(text: str) -> str | None:
    """The expression when ``text`` is exactly one ``{{ expression }}`` (nothing around it), else None."""
    match = _ONE_EXPRESSION.match(text)
    if match is None:
        return None
    from jinja2 import nodes  # lazy: see the imports

    body = environment().parse(text).body
    output = body[0] if len(body) == 1 else None
    if (
        isinstance(output, nodes.Output)
        and len(output.nodes) == 1
        and not isinstance(output.nodes[0], nodes.TemplateData)
    ):
        return match.group("expression")
    return None  # `{{ a }}{{ b }}`: the pattern matched across two expressions


def describe_source(text: str, *, backticks: bool = True) -> str:
    """A template's source for an error message: the first line, at most ``SOURCE_CHARS``, in
    backticks unless ``backticks`` is False (a URL needs none).

    Why the source: the rendering may hold a secret (a token in a URL, a password in a command
    line), and error messages go to status, Events and logs. When the source is cut, the names of
    the values it reads follow (``(uses params.token, shared.url)``), so the message still says what
    went into the string.
    """
    quote = "`" if backticks else ""
    stripped = text.strip()
    first = stripped.split("\n", 1)[0]
    if first == stripped and len(first) <= SOURCE_CHARS:
        return f"{quote}{first}{quote}"
    shown = f"{quote}{first[:SOURCE_CHARS].rstrip()} …{quote}"
    names = value_names(text) if is_template(text) else []
    return f"{shown} (uses {', '.join(names)})" if names else shown


def value_names(text: str) -> list[str]:
    """The values a template reads, as ``variable.attribute`` (``params.token``) or ``variable``."""
    from jinja2 import nodes  # lazy: see the imports

    tree = environment().parse(text)
    found: set[str] = set()
    attributes: set[int] = set()
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.ctx == "load":
            found.add(f"{attr.node.name}.{attr.attr}")
            attributes.add(id(attr.node))
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and id(name) not in attributes:
            found.add(name.name)
    return sorted(found)


def shell_quoting_warnings(text: str) -> list[str]:
    """Lint warnings of a ``shell`` string: ``| unquoted``, and expressions written inside quotes.

    Why the second: every value is quoted already, so quotes around an expression become part of
    the value (``echo "{{ x }}"`` prints ``'a b'`` with its quotes) or split it
    (``echo '{{ x }}'``). Parsing errors are ``template_problems``' to report; this returns none then.
    """
    if not is_template(text):
        return []
    import jinja2  # lazy: see the imports

    try:
        tokens = list(environment().lex(text))
    except jinja2.TemplateSyntaxError:
        return []
    multiline = "\n" in text.strip()
    warnings: list[str] = []
    for lineno, names, quoted in _shell_expressions(tokens):
        at = f" (line {lineno})" if multiline else ""
        if "unquoted" in names:
            warnings.append(
                f"'| unquoted'{at} renders a value into the command line without quoting; a value holding spaces, "
                "quotes, ; or $(...) is split or runs as shell code: drop '| unquoted' unless the value is "
                "trusted shell syntax (without it every {{ value }} is quoted with shlex.quote)"
            )
        elif quoted:
            warnings.append(
                f"an expression{at} is written inside quotes, but values are shell-quoted already, so the quotes "
                "become part of the value or split it: remove the quotes around {{ ... }}"
            )
    return warnings


def _shell_expressions(tokens: Iterable[tuple[int, str, str]]) -> Iterator[tuple[int, set[str], bool]]:
    """``(line, names used, inside shell quotes)`` for each ``{{ }}`` of a lexed shell template."""
    quotes = _ShellQuotes()
    names: set[str] = set()
    start = 0
    quoted = False
    for lineno, kind, value in tokens:
        if kind == "data":
            quotes.feed(value)
        elif kind == "variable_begin":
            start, quoted, names = lineno, quotes.inside, set()
        elif kind == "name":
            names.add(value)
        elif kind == "variable_end":
            yield start, names, quoted


class _ShellQuotes:
    """Whether literal shell text seen so far leaves us inside single or double quotes."""

    def __init__(self) -> None:
        self.quote: str | None = None
        self._escaped = False
        self._comment = False
        self._previous = " "

    @property
    def inside(self) -> bool:
        return self.quote is not None

    def feed(self, text: str) -> None:
        for char in text:
            self._step(char)
            self._previous = char

    def _step(self, char: str) -> None:
        if self._comment:
            self._comment = char != "\n"
        elif self._escaped:
            self._escaped = False
        elif self.quote == "'":
            self.quote = None if char == "'" else self.quote
        elif char == "\\":
            self._escaped = True
        elif self.quote == '"':
            self.quote = None if char == '"' else self.quote
        elif char in "'\"":
            self.quote = char
        elif char == "#" and self._previous.isspace():
            self._comment = True


def compile_value(value: Any, where: str, *, kind: TemplateKind = "text") -> Any:
    """Strings anywhere inside ``value`` (dicts, lists) become Templates; other values stay."""
    if isinstance(value, str):
        return Template(value, where, kind=kind)
    if isinstance(value, Mapping):
        return {k: compile_value(v, f"{where}.{k}", kind=kind) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v, f"{where}[{i}]", kind=kind) for i, v in enumerate(value)]
    return value


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render the Templates inside a value built by ``compile_value`` (native ones to their values)."""
    if isinstance(value, Template):
        return value.evaluate(context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def template_strings(value: Any, where: str) -> list[tuple[str, str]]:
    """Every string inside ``value`` with its path, in document order, for validation.

    Walks with a stack instead of recursing: an ``http.json`` nested 1,000 deep raised
    RecursionError here (validation reports nesting deeper than it allows before this runs).
    """
    out: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            out.append((at, item))
        elif isinstance(item, Mapping):
            stack.extend(reversed([(v, f"{at}.{k}") for k, v in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{at}[{i}]") for i, v in enumerate(item)]))
    return out
