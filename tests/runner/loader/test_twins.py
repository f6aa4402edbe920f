"""Coroutine twins of plain `def` hooks behave exactly like the hooks (runkinds/twins.py)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from flowlib_runner.definition.build import build_flow

from .helpers import definition, run


def node_of(text: str) -> Any:
    return build_flow(definition(text)).start_node


def test_plain_hooks_get_twins_and_keep_name_defaults_and_module_names() -> None:
    text = """
    nodes:
      a:
        run:
          python: |
            factor = 2
            def exec(prep_res, scale=factor):
                return 21 * scale
            def post(shared, prep_res, exec_res):
                shared["twice"] = exec(None)  # the module's own name: still the plain function
                return None
            factor = 100  # a default is the value at definition time, as in Python
    """
    code = node_of(text).code
    twin = code.direct_hooks["exec"]
    assert inspect.iscoroutinefunction(twin) and twin.__name__ == "exec" and twin.__defaults__ == (2,)
    _, shared = run(text)
    assert shared == {"a": 42, "twice": 42}


def test_returns_are_awaited_only_when_awaitable_wherever_they_are() -> None:
    text = """
    nodes:
      a:
        run:
          python: |
            import asyncio
            def exec(prep_res):
                for n in range(3):
                    if n == 1:
                        return asyncio.sleep(0, [n, (lambda: "nested lambda")()])
                return "never"
            def post(shared, prep_res, exec_res):
                def inner():
                    return asyncio.sleep(0)  # a nested function's return is its own business
                shared["inner"] = inspect_awaitable(inner())
                return
            def inspect_awaitable(value):
                value.close()
                return type(value).__name__
    """
    _, shared = run(text)
    assert shared == {"a": [1, "nested lambda"], "inner": "coroutine"}


@pytest.mark.parametrize(
    "hook",
    [
        "import functools\n@functools.lru_cache\ndef exec(prep_res):\n    return 'decorated'\n",
        "def exec(prep_res):\n    yield 'generated'\n",
        "def exec(prep_res):\n    return 'first'\ndef other(prep_res):\n    return 'replaced'\nexec = other\n",
    ],
    ids=["decorated", "generator", "reassigned"],
)
def test_hooks_that_are_not_plain_keep_their_wrapper(hook: str) -> None:
    text = "nodes:\n  a:\n    run:\n      python: |\n" + "".join(f"        {line}\n" for line in hook.splitlines())
    code = node_of(text).code
    assert not inspect.iscoroutinefunction(code.direct_hooks["exec"])
    _, shared = run(text)
    value = shared["a"]
    assert value in ("decorated", "replaced") or inspect.isgenerator(value)


def test_an_error_in_a_twin_points_at_the_users_line() -> None:
    text = """
    nodes:
      a:
        run:
          python: |
            def exec(prep_res):
                x = 1
                return x / 0
    """
    with pytest.raises(ZeroDivisionError) as caught:
        run(text)
    last = caught.traceback[-1]
    assert str(last.path) == "<inline python of node a>" and last.lineno + 1 == 3
    assert last.name == "exec"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{'v': item}", {"v": 1}),  # a display: taken as it is, never checked
        ("item + 1", 2),  # an operator: likewise
        ("shared['later'](item)", 10),  # a call returning a coroutine: awaited
        ("0 if item < 0 else shared['later'](item)", 10),  # a branch that may be a call: checked
        ("await shared['later'](item)", 10),  # an explicit await
    ],
)
def test_expression_results_are_awaited_exactly_when_they_may_be_awaitable(expression: str, expected: Any) -> None:
    text = f"""
    nodes:
      pool:
        type: worker_pool
        batch: {{items: xs}}
        run: {{python: "{expression}"}}
    """

    async def later(item: int) -> int:
        return item * 10

    _, shared = run(text, {"xs": [1], "later": later})
    assert shared["pool"] == [expected]
