"""No definition makes validation raise or report without bounds (issue 12, point 5).

Random and perverse inputs, the kinds the review found crashes with: YAML text with tags no
constructor reads, anchors and deep brackets; JSON-ish values (huge numbers, NaN, nesting past the
limit) in every field of every node; random graphs of nodes; random templates. Each goes through
the loader (``load_text``, ``load_object``), the operator's shared entry (``resolve.lint``) and the
admission webhook (``flow_problems``, ``flowrun_problems``), which must return problems, and few.

Derandomized (the same examples on every run, no example database), ``deadline=None`` (a shared CI
machine is slow at times; the bound that matters is the total, about 20 s). The module's last line
of output counts the inputs tried, the crashes and the slowest input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from flowlib_operator.admission import flow_problems, flowrun_problems
from flowlib_operator.resolve import lint
from flowlib_runner.definition.loader import LoadResult, load_object, load_text
from flowlib_runner.definition.problems import REPORTED_PROBLEMS, short
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib_api.text import PROBLEM_MESSAGE_BYTES, STATUS_PROBLEMS_BYTES


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- what was tried -----------------------------------------------------------------------------

STATS: dict[str, Any] = {"inputs": 0, "crashes": 0, "slowest": 0.0, "slowest input": ""}


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module: one line with the inputs tried, the crashes and the slowest input."""
    load_text("nodes: {a: {action: '{{ x }}'}}")  # not counted: the first load builds the loader and Jinja2
    yield
    line = (
        f"validation fuzz: {STATS['inputs']} inputs, {STATS['crashes']} crashes, slowest "
        f"{STATS['slowest']:.3f} s: {STATS['slowest input']}"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


def tried(what: str, call: Callable[[], Any], shown: object) -> Any:
    """Run one validation, counting it, its crash if any, and how long it took."""
    STATS["inputs"] += 1
    started = time.perf_counter()
    try:
        return call()
    except BaseException:
        STATS["crashes"] += 1
        raise
    finally:
        seconds = time.perf_counter() - started
        if seconds > STATS["slowest"]:
            STATS["slowest"], STATS["slowest input"] = seconds, f"{what} {short(shown)}"


def check_result(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    assert result.ok == (result.definition is not None)
    if result.definition is None:
        assert result.errors, "an invalid definition comes with an error"
    assert len(result.problems) <= 2 * REPORTED_PROBLEMS + 1
    for p in result.problems:
        assert isinstance(p.path, str) and p.message
        assert len(str(p).encode()) <= PROBLEM_MESSAGE_BYTES


def check_messages(messages: list[str]) -> None:
    assert isinstance(messages, list) and all(isinstance(m, str) and m for m in messages)
    assert len("".join(messages).encode()) <= STATUS_PROBLEMS_BYTES


# -- strategies ---------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "start", "end", "n-1", "_x", "1bad", "has space", "", "END"]
TEMPLATE_PARTS = [
    "{{ ", " }}", "{% ", " %}", "{# ", " #}", "shared.x", "params.p", "item", "node.name", "node.nope", "result",
    "sharde.x", " | upper", " | no_such_filter", " is defined", " is nosuchtest", "(", ")", "[", "]", "'s'",
    "{% if shared.x %}", "{% endif %}", "{% for i in range(3) %}", "{% endfor %}", "{% include 'x' %}",
    "{% set y = 1 %}", "{{ y }}", "text ", "\n", "é", "default", "x",
]  # fmt: skip
templates = st.one_of(
    st.lists(st.sampled_from(TEMPLATE_PARTS), max_size=12).map("".join),
    st.integers(0, 400).map(lambda n: "{{ " + "(" * n + "x" + ")" * n + " }}"),
    st.sampled_from(["{{ " * 300, "{% if x %}" * 200, "{{ shared.x }}" * 5_000]),
)


def power_of_ten(digits: int) -> int:
    """A number of ``digits`` digits (negative: a negative one): over float's range from 309, and
    beyond what ``int`` turns into text (4,300 digits) at 5,000."""
    return -(10**-digits) if digits < 0 else 10**digits


durations = st.one_of(
    st.sampled_from(["1s", "500ms", "1m30s", "2h", "-1s", "1x", "", " ", "1e999", "nan", "inf", "1" * 401 + "s"]),
    st.integers(-(10**500), 10**500),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from([20, 401, -5_000]).map(power_of_ten),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(NAMES),
    templates,
    durations,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=20,
)


def nest(value: Any, levels: int, as_list: bool) -> Any:
    """``value`` wrapped ``levels`` deep in lists or mappings (iteratively: no recursion here either)."""
    for _ in range(levels):
        value = [value] if as_list else {"k": value}
    return value


deep_values = st.builds(nest, json_values, st.sampled_from([0, 1, 99, 100, 101, 300, 1_200]), st.booleans())
values = st.one_of(json_values, json_values, json_values, deep_values)
runs = st.one_of(
    st.fixed_dictionaries(
        {
            "python": st.one_of(
                st.sampled_from(["1", "def exec(p):\n    return 1", "(((", "x" * 70_000]),
                st.text(max_size=30),
                st.integers(1, 300).map(lambda n: "(" * n + "1" + ")" * n),
            )
        }
    ),
    st.fixed_dictionaries({"shell": templates}),
    st.fixed_dictionaries({"command": st.lists(st.one_of(templates, values), max_size=4)}),
    st.fixed_dictionaries(
        {
            "http": st.fixed_dictionaries(
                {"url": templates},
                optional={"json": values, "headers": values, "method": st.sampled_from(["GET", "FETCH"])},
            )
        }
    ),
    st.fixed_dictionaries({"call": st.sampled_from(["os:getcwd", "no.such:thing", ":"])}),
    st.dictionaries(
        st.sampled_from(["python", "shell", "pyhton", "env", "parse", "workingDir", "nope"]), values, max_size=3
    ),
    values,
)


@st.composite
def nodes(draw: st.DrawFn, names: list[str]) -> Any:
    """One node: plausible fields mixed with random values and unknown keys."""
    fields = {
        "type": st.one_of(
            st.sampled_from(["base", "batch", "async_batch", "parallel_batch", "worker_pool", "flow", "nope"]), values
        ),
        "run": runs,
        "action": st.one_of(templates, values),
        "next": st.one_of(
            st.dictionaries(st.sampled_from(["default", "error", "x", "again"]), st.sampled_from(names)), values
        ),
        "retry": st.one_of(st.fixed_dictionaries({"maxRetries": st.integers(-1, 5), "wait": durations}), values),
        "timeout": durations,
        "batch": st.one_of(
            st.fixed_dictionaries({"items": st.sampled_from(["xs", "a.b", "", ".."]), "maxParallel": values}), values
        ),
        "flow": st.sampled_from(["sub", "main", "missing", "sbu"]),
        "params": values,
        "output": st.one_of(st.sampled_from(["", " ", "out"]), values),
        "nope": values,
    }
    keys = draw(st.lists(st.sampled_from(list(fields)), unique=True, max_size=5))
    node = {key: draw(fields[key]) for key in keys}
    return draw(st.one_of(st.just(node), st.just(node), values))


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A random graph: a few named nodes whose edges point at each other, at nothing, or anywhere."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    spec: dict[str, Any] = {"nodes": {name: draw(nodes(names)) for name in names}}
    for key, strategy in {
        "start": st.sampled_from([*names, "missing"]),
        "finally": st.sampled_from(names),
        "maxSteps": st.one_of(st.integers(-1, 10), values),
        "params": values,
        "description": values,
    }.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    return spec


def manifest(spec: Any, name: str = "main") -> dict[str, Any]:
    return {"apiVersion": "flowlib.dev/v1alpha1", "kind": "Flow", "metadata": {"name": name}, "spec": spec}


YAML_PARTS = [
    "nodes:\n", "  a: {}\n", "  b:\n    run: {python: '1'}\n    next: {default: a}\n",
    "apiVersion: flowlib.dev/v1alpha1\n", "kind: Flow\n", "metadata: {name: f}\n", "spec:\n", "---\n",
    "x: !!bool abc\n", "x: !!timestamp notatime\n", "x: !!int twelve\n", "x: !!float 1.2.3\n",
    "x: !!binary '%%%'\n", "x: !!set [1]\n", "x: !!omap {a: 1}\n", "x: !!python/object:os.system ls\n",
    "x: !!str [1]\n", "x: 2024-13-45\n", "x: &a [*a]\n", "<<: 1\n", "? [a]\n: 1\n", "y: n\n", "012: 1\n",
    "a: 1\na: 2\n", "  {{ x }}\n", "\t", ": :\n", "- - -\n", "'unterminated\n", "x: *nope\n", "%YAML 9.9\n",
    "timeout: " + "1" * 401 + "\n", "n: " + "9" * 5_000 + "\n", "x: " + "[" * 1_100 + "\n",
]  # fmt: skip
yaml_texts = st.one_of(
    st.lists(st.sampled_from(YAML_PARTS), max_size=8).map("".join),
    st.text(max_size=200),
    specs().map(lambda spec: yaml.safe_dump(spec) if _dumpable(spec) else "{"),
)


def _dumpable(doc: Any) -> bool:
    try:
        yaml.safe_dump(doc)
    except (yaml.YAMLError, RecursionError, ValueError):
        return False
    return True


# -- the properties -----------------------------------------------------------------------------


@fuzz(250)
@given(yaml_texts)
def test_yaml_text_yields_problems(text: str) -> None:
    check_result(tried("load_text", lambda: load_text(text), text))


@fuzz(250)
@given(specs())
def test_random_graphs_and_values_yield_problems(spec: dict[str, Any]) -> None:
    library = {"sub": {"nodes": {"z": {}}}}
    check_result(tried("load_object", lambda: load_object(manifest(spec), library=library), spec))
    check_result(tried("bare spec", lambda: load_object(spec), spec))
    loaded, errors = tried("resolve.lint", lambda: lint("main", spec, library), spec)
    assert isinstance(loaded, bool)
    check_messages(errors)


@fuzz(150)
@given(st.one_of(values, st.dictionaries(st.sampled_from(["metadata", "spec", "kind", "nodes"]), values)))
def test_any_object_yields_problems(obj: Any) -> None:
    document = obj if isinstance(obj, dict) else {"spec": obj}
    check_result(tried("load_object", lambda: load_object(document), obj))
    check_messages(tried("flow_problems", lambda: flow_problems(document), obj))


@fuzz(150)
@given(specs(), st.one_of(st.just({"name": "f"}), values))
def test_the_webhook_yields_problems(spec: dict[str, Any], metadata: Any) -> None:
    check_messages(tried("flow_problems", lambda: flow_problems({"metadata": metadata, "spec": spec}), spec))
    run = {"metadata": {"name": "r", "namespace": "ns"}, "spec": {"flow": spec}}
    check_messages(tried("flowrun_problems", lambda: flowrun_problems(run), spec))
