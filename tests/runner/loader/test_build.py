"""Definitions built into flowlib graphs and run: every node type, edges, retries, errors, sub-flows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.runkinds import BuildError
from flowlib_runner.definition.templates import TemplateError

import flowlib

from .helpers import definition, run

CALLABLES = "tests.runner.loader.callables"


def test_the_issue_example_runs_end_to_end() -> None:
    text = """
    start: fetch
    params: {lang: en}
    maxSteps: 100
    nodes:
      fetch:
        run:
          python: |
            def exec(prep_res):
                return ["a b", "c d e"]
        output: docs
        retry: {maxRetries: 3, wait: 10ms, backoff: exponential, maxWait: 1s}
        timeout: 30s
        next: {default: count, error: report}
      count:
        type: worker_pool
        batch: {items: docs, maxParallel: 8}
        run: {python: "len(item.split())"}
        output: counts
        next: {default: decide}
      decide:
        action: "{{ 'big' if shared.counts | sum > 3 else 'small' }}"
        next: {big: report, small: report}
      report:
        run: {shell: "echo total={{ shared.counts | sum }} lang={{ params.lang }}"}
    """
    action, shared = run(text)
    assert shared == {"docs": ["a b", "c d e"], "counts": [2, 3], "report": "total=5 lang=en"}
    assert action is None
    _, shared = run(text, lang="fr")
    assert shared["report"] == "total=5 lang=fr"


def test_nodes_are_named_after_their_yaml_keys_and_retry_settings_are_mapped() -> None:
    flow = build_flow(
        definition(
            """
            nodes:
              first:
                retry: {maxRetries: 4, wait: 1s, backoff: exponential, maxWait: 5s, jitter: 0.5}
                timeout: 2s
                next: {default: pool}
              pool: {type: worker_pool, batch: {items: x, maxParallel: 3}}
            """
        )
    )
    first = flow.start_node
    assert isinstance(first, flowlib.AsyncNode)
    assert first.name == "first"
    assert (first.max_retries, first.wait, first.backoff, first.max_wait, first.jitter) == (
        4,
        1.0,
        "exponential",
        5.0,
        0.5,
    )
    assert first.timeout == 2.0
    pool = first.successors["default"]
    assert isinstance(pool, flowlib.WorkerPoolBatchNode)
    assert (pool.name, pool.max_parallel) == ("pool", 3)


def test_events_carry_the_yaml_names() -> None:
    flow = build_flow(definition("nodes: {a: {next: {default: b}}, b: {}}"))
    recorder = flowlib.EventRecorder()
    asyncio.run(flow.run_async({}, observer=recorder))
    paths = {e.path for e in recorder.events if e.path}
    assert paths == {("a",), ("b",)}


@pytest.mark.parametrize(
    ("node_type", "cls"),
    [
        ("batch", flowlib.AsyncBatchNode),
        ("async_batch", flowlib.AsyncBatchNode),
        ("parallel_batch", flowlib.AsyncParallelBatchNode),
        ("worker_pool", flowlib.WorkerPoolBatchNode),
        ("worker_pool_batch", flowlib.WorkerPoolBatchNode),
    ],
)
def test_every_batch_type_maps_items_in_order(node_type: str, cls: type) -> None:
    text = f"""
    nodes:
      squares:
        type: {node_type}
        batch: {{items: data.numbers}}
        run: {{python: "item * item + params['offset']"}}
    params: {{offset: 1}}
    """
    flow = build_flow(definition(text))
    assert isinstance(flow.start_node, cls)
    shared: dict[str, Any] = {"data": {"numbers": [1, 2, 3, 4]}}
    asyncio.run(flow.run_async(shared))
    assert shared["squares"] == [2, 5, 10, 17]


def test_parallel_batch_respects_max_parallel() -> None:
    code = """
    import asyncio
    running = 0
    peak = 0
    async def exec(item):
        global running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return peak
    """
    text = f"""
    nodes:
      p:
        type: parallel_batch
        batch: {{items: xs, maxParallel: 2}}
        run:
          python: |
{_indent(code, 12)}
    """
    _, shared = run(text, {"xs": list(range(6))})
    assert max(shared["p"]) == 2


def _indent(code: str, n: int) -> str:
    import textwrap

    return textwrap.indent(textwrap.dedent(code), " " * n)


def test_module_form_hooks_sync_and_async_with_params_and_node() -> None:
    code = """
    def prep(shared):
        return shared["n"]
    async def exec(n):
        return n + params["step"]
    def post(shared, prep_res, exec_res):
        shared["seen_by"] = node.name
        return "done"
    """
    text = f"""
    params: {{step: 10}}
    nodes:
      add:
        output: total
        run:
          python: |
{_indent(code, 12)}
        next: {{done: after}}
      after: {{run: {{python: "shared['total'] * 2"}}}}
    """
    _, shared = run(text, {"n": 1})
    assert shared == {"n": 1, "total": 11, "seen_by": "add", "after": 22}


def test_expression_scope() -> None:
    text = """
    nodes:
      a:
        run: {python: "(prep_res, item, sorted(shared), params['p'], node.name, node.type)"}
        params: {p: 1}
    """
    _, shared = run(text, {"k": 0})
    assert shared["a"] == (None, None, ["k"], 1, "a", "base")


def test_node_params_are_defaults_under_flow_and_run_params() -> None:
    text = """
    params: {b: flow}
    nodes:
      a: {run: {python: "dict(params)"}, params: {a: node, b: node, c: node}}
    """
    _, shared = run(text, c="run")
    assert shared["a"] == {"a": "node", "b": "flow", "c": "run"}


def test_a_node_without_run_stores_nothing_and_follows_default() -> None:
    _, shared = run("nodes: {a: {next: {default: b}}, b: {run: {python: '1'}}}")
    assert shared == {"b": 1}


def test_branching_and_a_loop_until_done() -> None:
    text = """
    start: step
    maxSteps: 50
    nodes:
      step:
        run: {python: "shared.get('i', 0) + 1"}
        output: i
        action: "{{ 'done' if shared.i >= 5 else 'again' }}"
        next: {again: step, done: finish}
      finish: {run: {python: "'finished at %d' % shared['i']"}}
    """
    _, shared = run(text)
    assert shared == {"i": 5, "finish": "finished at 5"}


def test_max_steps_stops_an_endless_loop() -> None:
    with pytest.raises(flowlib.MaxStepsExceeded):
        run("start: a\nmaxSteps: 5\nnodes: {a: {next: {default: a}}}")


def test_action_template_sees_the_result() -> None:
    text = """
    nodes:
      a: {run: {python: "7"}, action: "{{ 'odd' if result % 2 else 'even' }}", next: {odd: o, even: e}}
      o: {run: {python: "'odd'"}}
      e: {run: {python: "'even'"}}
    """
    _, shared = run(text)
    assert shared == {"a": 7, "o": "odd"}


def test_retries_then_success() -> None:
    code = """
    calls = []
    def exec(prep_res):
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("not yet")
        return len(calls)
    """
    text = f"""
    nodes:
      flaky:
        retry: {{maxRetries: 3, wait: 1ms}}
        run:
          python: |
{_indent(code, 12)}
    """
    _, shared = run(text)
    assert shared["flaky"] == 3


def test_exec_fallback_after_retries() -> None:
    code = """
    def exec(prep_res):
        raise ValueError("always")
    def exec_fallback(prep_res, exc):
        return "fallback: " + str(exc)
    """
    text = f"""
    nodes:
      a:
        retry: {{maxRetries: 2}}
        run:
          python: |
{_indent(code, 12)}
    """
    assert run(text)[1]["a"] == "fallback: always"


def test_error_edge_puts_the_error_in_shared() -> None:
    text = """
    nodes:
      a:
        retry: {maxRetries: 2}
        run: {python: "1 / 0"}
        next: {default: ok, error: handle}
      ok: {run: {python: "'ok'"}}
      handle: {run: {python: "'handled ' + shared['error']['type']"}}
    """
    _, shared = run(text)
    assert shared["error"] == {"node": "a", "type": "ZeroDivisionError", "message": "division by zero"}
    assert shared["handle"] == "handled ZeroDivisionError"
    assert "ok" not in shared


def test_without_an_error_edge_the_flow_fails() -> None:
    with pytest.raises(ZeroDivisionError):
        run("nodes: {a: {run: {python: '1 / 0'}}}")


def test_timeouts_fail_the_attempt() -> None:
    text = """
    nodes:
      slow:
        timeout: 20ms
        run: {python: "__import__('asyncio').sleep(5)"}
        next: {error: caught}
      caught: {}
    """
    _, shared = run(text)
    assert shared["error"]["type"] == "NodeTimeout"


def test_template_errors_name_the_node_and_the_variables() -> None:
    with pytest.raises(TemplateError, match=r"nodes\.a\.action: 'dict object' has no attribute 'missing'"):
        run("nodes: {a: {action: '{{ shared.missing }}'}}")


def test_batch_items_path_errors_are_clear() -> None:
    with pytest.raises(RuntimeError, match=r"nodes\.b\.batch\.items: the shared store has no 'docs'; it has: other"):
        run("nodes: {b: {type: batch, batch: {items: docs}}}", {"other": 1})
    with pytest.raises(RuntimeError, match="'x' is a int, not a list of items"):
        run("nodes: {b: {type: batch, batch: {items: x}}}", {"x": 1})
    _, shared = run("nodes: {b: {type: batch, batch: {items: x.1}, run: {python: item}}}", {"x": [[0], [5, 6]]})
    assert shared["b"] == [5, 6]


def test_call_a_function_and_an_async_function() -> None:
    text = f"""
    nodes:
      d: {{type: batch, batch: {{items: words}}, run: {{call: "{CALLABLES}:double"}}, next: {{default: up}}}}
      up: {{type: parallel_batch, batch: {{items: words}}, run: {{call: "{CALLABLES}:slow_upper"}}}}
    """
    _, shared = run(text, {"words": ["a", "b"]})
    assert shared["d"] == ["aa", "bb"]
    assert shared["up"] == ["A", "B"]


def test_call_on_a_plain_node_gets_the_shared_store() -> None:
    text = f"""
    nodes:
      d: {{run: {{call: "{CALLABLES}:keys"}}}}
    """
    assert run(text, {"x": 21, "a": 1})[1]["d"] == ["a", "x"]


def test_call_a_node_class() -> None:
    text = f"""
    nodes:
      greet:
        run: {{call: "{CALLABLES}:Greeter"}}
        params: {{greeting: hi}}
        next: {{greeted: done}}
      done: {{run: {{python: "shared['greeting'] + '!'"}}}}
    """
    _, shared = run(text, {"who": "you"})
    assert shared == {"who": "you", "greeting": "hi you", "done": "hi you!"}
    flow = build_flow(definition(text))
    assert flow.start_node.name == "greet"


def test_a_sync_node_class_gets_the_error_edge() -> None:
    text = f"""
    nodes:
      boom: {{run: {{call: "{CALLABLES}:Exploding"}}, retry: {{maxRetries: 2}}, next: {{error: after}}}}
      after: {{}}
    """
    _, shared = run(text)
    assert shared["error"] == {"node": "boom", "type": "RuntimeError", "message": "boom from a sync node"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_pkg_xyz.mod:f", r"nodes\.a\.run\.call: cannot import module 'no_such_pkg_xyz\.mod'"),
        (f"{CALLABLES}:missing", r"has no attribute 'missing'"),
        (f"{CALLABLES}:NOT_CALLABLE", r"is a int, not a callable or a Node class"),
        (f"{CALLABLES}:NeedsArgs", r"cannot create NeedsArgs\(\) without arguments"),
    ],
)
def test_call_targets_that_cannot_be_used_fail_the_build_clearly(target: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        build_flow(definition(f'nodes: {{a: {{run: {{call: "{target}"}}}}}}'))


def test_output_and_action_do_not_apply_to_node_classes() -> None:
    with pytest.raises(BuildError, match="output and action do not apply"):
        build_flow(definition(f'nodes: {{a: {{output: x, run: {{call: "{CALLABLES}:Greeter"}}}}}}'))


SUB = """
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: main}
spec:
  params: {suffix: "!"}
  nodes:
    prepare: {run: {python: "['x', 'y', 'z']"}, output: letters, next: {default: each}}
    each: {type: flow, flow: shout, batch: {items: letters}, next: {default: once}}
    once: {type: flow, flow: shout, params: {item: solo}, next: {default: par}}
    par: {type: flow, flow: shout, batch: {items: letters, maxParallel: 2}, next: {default: branch}}
    branch: {type: flow, flow: decider, next: {"yes": finish}}
    finish: {run: {python: "sorted(shared['shouted'])"}}
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: shout}
spec:
  params: {suffix: "?"}
  nodes:
    up:
      run:
        python: |
          def prep(shared):
              return shared
          def exec(shared):
              shared.setdefault("shouted", []).append(params["item"].upper() + params["suffix"])
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: decider}
spec:
  nodes:
    pick: {action: "yes"}
"""


def test_sub_flows_plain_batch_and_parallel_and_their_last_action() -> None:
    flow = build_flow(definition(SUB))
    each = flow.start_node.successors["default"]
    assert type(each).__name__ == "YamlBatchFlow" and isinstance(each, flowlib.AsyncFlow)
    par = each.successors["default"].successors["default"]
    assert type(par).__name__ == "YamlParallelBatchFlow" and par.max_parallel == 2
    shared: dict[str, Any] = {}
    asyncio.run(flow.run_async(shared))
    # A plain sub-flow writes to the parent's store; batch items each write to their own scope,
    # and the batch node's output lists what each item wrote.
    assert shared["shouted"] == ["SOLO!"]
    # (each item's `up` node has an exec returning None, stored under its output: the item wrote it)
    assert shared["each"] == [{"shouted": [s], "up": None} for s in ("X!", "Y!", "Z!")]
    assert shared["par"] == [{"shouted": ["SOLO!", s], "up": None} for s in ("X!", "Y!", "Z!")]
    assert shared["finish"] == ["SOLO!"]


def test_sub_flow_failure_follows_its_error_edge() -> None:
    text = """
    nodes:
      sub: {type: flow, flow: bad, next: {error: after}}
      after: {}
    ---
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: bad}
    spec: {nodes: {x: {run: {python: "int('x')"}}}}
    """
    _, shared = run(text)
    assert shared["error"]["node"] == "sub" and shared["error"]["type"] == "ValueError"


def test_inline_code_errors_point_at_the_node_in_tracebacks() -> None:
    code = """
    def exec(p):
        raise KeyError("where")
    """
    text = f"""
    nodes:
      a:
        run:
          python: |
{_indent(code, 12)}
    """
    import traceback

    with pytest.raises(KeyError) as info:
        run(text)
    rendered = "".join(traceback.format_exception(info.value))
    assert '<inline python of node a>", line 3' in rendered
    assert 'raise KeyError("where")' in rendered


def test_inline_code_with_only_post_chooses_the_action() -> None:
    code = """
    def post(shared, prep_res, exec_res):
        shared["posted"] = exec_res
        return "go"
    """
    text = f"""
    nodes:
      a:
        run:
          python: |
{_indent(code, 12)}
        next: {{go: b}}
      b: {{run: {{python: "'reached'"}}}}
    """
    _, shared = run(text)
    assert shared == {"posted": None, "b": "reached"}


def test_expressions_are_functions_so_comprehensions_see_item_and_the_node_is_per_visit() -> None:
    # With eval and a locals dict, a comprehension could not see `item` (NameError in 3.11).
    text = """
    nodes:
      a:
        type: worker_pool
        batch: {items: xs}
        run: {python: "[item * k for k in range(3)] + [node.name, node.type, node.params['p'], prep_res]"}
        params: {p: 7}
    """
    _, shared = run(text, {"xs": [1, 2]})
    assert shared["a"] == [[0, 1, 2, "a", "worker_pool", 7, None], [0, 2, 4, "a", "worker_pool", 7, None]]


def test_an_expression_error_points_at_the_users_line() -> None:
    text = """
    nodes:
      a:
        run:
          python: |
            (
              1 +
              1 / 0
            )
    """
    with pytest.raises(ZeroDivisionError) as caught:
        run(text)
    last = caught.traceback[-1]
    assert str(last.path) == "<inline python of node a>" and last.lineno + 1 == 3


def test_awaitable_results_of_sync_code_are_awaited_and_async_hooks_too() -> None:
    async def double(x: int) -> int:
        return 2 * x

    text = """
    nodes:
      expr:
        type: batch
        batch: {items: xs}
        run: {python: "shared['double'](item)"}
        next: {default: mod}
      mod:
        run:
          python: |
            async def prep(shared):
                return shared["xs"]

            def exec(prep_res):
                return shared_double(prep_res)

            def post(shared, prep_res, exec_res):
                return node.name + ":" + str(params["p"])

            shared_double = None
        params: {p: 3}
        action: "{{ result }}"
    """
    shared: dict[str, Any] = {"xs": [1, 2], "double": double}
    flow = build_flow(definition(text))
    mod: Any = flow.start_node.successors["default"]  # type: ignore[union-attr]
    mod.code.direct_hooks["exec"].__globals__["shared_double"] = lambda xs: asyncio.sleep(0, [x * 10 for x in xs])
    action = asyncio.run(flow.run_async(shared))
    assert shared["expr"] == [2, 4] and shared["mod"] == [10, 20]
    assert action == "[10, 20]"  # the action template wins over post's "mod:3"


def test_module_code_sees_the_running_node_in_sync_hooks_of_concurrent_sub_flows() -> None:
    text = """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: outer}
spec:
  nodes:
    fan:
      type: flow
      flow: inner
      batch: {items: xs, maxParallel: 4}
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: inner}
spec:
  nodes:
    who:
      run:
        python: |
          import asyncio

          async def exec(prep_res):
              await asyncio.sleep(0)
              return params["item"]

          def post(shared, prep_res, exec_res):
              shared["seen"] = (node.name, params["item"], exec_res)
"""
    shared: dict[str, Any] = {"xs": [1, 2, 3, 4]}
    asyncio.run(build_flow(definition(text)).run_async(shared))
    assert [item["seen"] for item in shared["fan"]] == [("who", i, i) for i in (1, 2, 3, 4)]
