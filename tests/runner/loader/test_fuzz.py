"""Bad input yields Problems, never an exception or a hang (random and mutated documents)."""

from __future__ import annotations

from typing import Any

import yaml
from flowlib_runner.definition.loader import LoadResult, load_object, load_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VALID: dict[str, Any] = {
    "apiVersion": "flowlib.dev/v1alpha1",
    "kind": "Flow",
    "metadata": {"name": "f"},
    "spec": {
        "start": "a",
        "params": {"k": 1},
        "maxSteps": 10,
        "nodes": {
            "a": {
                "run": {"python": "def exec(p):\n    return 1"},
                "retry": {"maxRetries": 2, "wait": "1s", "backoff": "exponential"},
                "timeout": "5s",
                "action": "{{ 'x' }}",
                "next": {"x": "b", "error": "c"},
            },
            "b": {
                "type": "worker_pool",
                "batch": {"items": "a", "maxParallel": 2},
                "run": {"shell": "echo {{ item }}"},
                "next": {"default": "c"},
            },
            "c": {"type": "flow", "flow": "f2", "batch": {"items": "xs"}},
        },
    },
}
KEYS = [
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "nodes",
    "start",
    "type",
    "run",
    "python",
    "shell",
    "command",
    "http",
    "url",
    "next",
    "batch",
    "items",
    "maxParallel",
    "retry",
    "maxRetries",
    "wait",
    "timeout",
    "flow",
    "output",
    "action",
    "params",
    "max_retries",
    "hooks",
    "parse",
    "json",
    "default",
    "error",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["base", "flow", "worker_pool", "1m30s", "{{ x", "{% if %}", "def exec(:", "a.b", "END", "a", "b"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), inner, max_size=5),
    ),
    max_leaves=25,
)
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _check(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    assert result.ok == (result.definition is not None)
    if result.definition is None:
        assert any(p.severity == "error" for p in result.problems)
    for p in result.problems:
        assert isinstance(p.path, str) and p.message


@FUZZ
@given(values)
def test_random_objects(obj: Any) -> None:
    _check(load_object(obj) if isinstance(obj, dict) else load_object({"spec": obj}))


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _check(load_text(text))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    return out


@FUZZ
@given(st.data())
def test_mutated_valid_documents(data: st.DataObject) -> None:
    import copy

    doc = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = data.draw(values)
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][data.draw(st.sampled_from(KEYS))] = data.draw(values)
    _check(load_object(doc, library={"f2": {"nodes": {"z": {}}}}))
    _check(load_text(yaml.safe_dump(doc) if _dumpable(doc) else "{"))


def _dumpable(doc: Any) -> bool:
    try:
        yaml.safe_dump(doc)
    except yaml.YAMLError:
        return False
    return True


def test_the_fuzz_seed_document_is_valid() -> None:
    result = load_object(VALID, library={"f2": {"nodes": {"z": {}}}})
    assert result.ok, [str(p) for p in result.problems]
