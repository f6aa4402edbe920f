"""Every validation problem, with its exact path and message (they are the user interface)."""

from __future__ import annotations

from typing import Any

import pytest
from flowlib_runner.definition.loader import load_object
from flowlib_runner.definition.problems import Problem

from .helpers import load, messages

UNREACHABLE = "unreachable from the start node '{}'; connect it with a next edge or remove it"
TEMPLATE_FIX = "; fix the Jinja2 syntax ({{ expression }}, {% statement %})"


def test_the_issue_example_for_a_missing_target() -> None:
    text = """
    start: fetch
    nodes:
      fetch: {next: {default: count}}
      count: {next: {default: cnt}}
      decide: {}
      report: {}
    """
    assert messages(text) == [
        "nodes.count.next.default: target 'cnt' does not exist; known nodes: count, decide, fetch, report; "
        "did you mean 'count'?",
        "nodes.decide: warning: " + UNREACHABLE.format("fetch"),
        "nodes.report: warning: " + UNREACHABLE.format("fetch"),
    ]
    result = load(text)
    assert result.definition is None and not result.ok
    assert [p.severity for p in result.problems] == ["error", "warning", "warning"]


def test_warnings_alone_still_give_a_definition() -> None:
    result = load("start: a\nnodes: {a: {}, b: {}}")
    assert result.ok and result.definition is not None
    assert result.warnings == [Problem("nodes.b", UNREACHABLE.format("a"), "warning")]


def test_no_start_node() -> None:
    assert messages("nodes: {a: {next: {default: b}}, b: {next: {default: a}}}") == [
        "nodes.b.next.default: warning: this edge closes a loop (a -> b -> a) and the flow has no maxSteps, so "
        "a loop that never exits runs until the run is cancelled; set maxSteps (or give the FlowRun a timeout)",
        "start: no start node: every node has an incoming edge (the graph is a loop); set start: to the "
        "first "
        "node, one of a, b",
    ]


def test_several_start_nodes_are_named_sorted() -> None:
    assert messages("nodes: {b: {}, a: {}, c: {next: {default: a}}}") == [
        "start: several start nodes (nodes without incoming edges): b, c; set start: to the first one, or "
        "connect the others with next edges"
    ]


def test_a_self_loop_does_not_hide_the_start_node() -> None:
    assert load("nodes: {a: {next: {again: a, default: b}}, b: {}}").ok


def test_unknown_start() -> None:
    assert messages("start: fech\nnodes: {fetch: {}}") == [
        "start: start node 'fech' does not exist; known nodes: fetch; did you mean 'fetch'?"
    ]


def test_unknown_type_and_run_kind_list_the_known_ones() -> None:
    assert messages(
        "nodes: {a: {type: worker_pol, batch: {items: x}}, b: {run: {pyhton: '1'}, next: {default: a}}}"
    ) == [
        "nodes.a.type: unknown node type 'worker_pol'; did you mean 'worker_pool'?; known types: "
        "approval, async_batch, "
        "base, batch, flow, parallel_batch, worker_pool, worker_pool_batch (plugins add types through the "
        "flowlib.node_types entry point)",
        "nodes.b.run.pyhton: unknown run kind 'pyhton'; did you mean 'python'?; known kinds: call, command, "
        "http, python, shell (plugins add kinds through the flowlib.run_kinds entry point)",
    ]


def test_unknown_fields_suggest_the_closest_and_camel_case() -> None:
    text = """
    nodes:
      a:
        tmeout: 5s
        retry: {max_retries: 3, wiat: 1s}
        batch: {max_parallel: 2}
    """
    assert messages(text) == [
        "nodes.a.batch.max_parallel: unknown field 'max_parallel'; did you mean 'maxParallel'? (Flow "
        "manifests "
        "spell fields in camelCase); known fields: errorsOutput, itemOutput, items, maxFailures, maxParallel, "
        "onItemError",
        "nodes.a.retry.max_retries: unknown field 'max_retries'; did you mean 'maxRetries'? (Flow manifests "
        "spell fields in camelCase); known fields: backoff, jitter, maxRetries, maxWait, wait",
        "nodes.a.retry.wiat: unknown field 'wiat'; did you mean 'wait'?; known fields: backoff, jitter, "
        "maxRetries, maxWait, wait",
        "nodes.a.tmeout: unknown field 'tmeout'; did you mean 'timeout'?; known fields: action, approval, batch, "
        "description, flow, next, output, params, retry, run, timeout, type",
    ]
    assert messages("nodes: {a: {}}\nstrat: a") == [
        "strat: unknown field 'strat'; did you mean 'start'?; known fields: concurrency, description, finally, "
        "history, maxSteps, nodes, paramSchema, params, pod, start"
    ]


def test_every_bad_value_in_one_node_is_reported_together() -> None:
    text = r"""
    maxSteps: 0
    nodes:
      a:
        type: worker_pool
        timeout: 10 sec
        retry: {maxRetries: 0, wait: -1s, backoff: linear, jitter: 2}
        batch: {items: "docs..x", maxParallel: 0}
        run: {python: "def exec(x):\n  return (", shell: "echo"}
        action: "{{ shared.x "
        next: {default: b}
      b:
        run: {shell: "echo {% if %}", http: {url: "{{ x"}}
        output: ""
    """
    duration = "is not a duration; write a duration like 500ms, 10s, 1m30s or 2h, or a number of seconds"
    assert messages(text) == [
        "maxSteps: must be >= 1, got 0",
        "nodes.a.action: invalid template (line 1): unexpected end of template, expected 'end of print "
        "statement'." + TEMPLATE_FIX,
        "nodes.a.batch.items: 'docs..x' is not a dotted path; write keys separated by dots, e.g. docs or result.pages",
        "nodes.a.batch.maxParallel: must be >= 1, got 0",
        "nodes.a.retry.backoff: must be 'fixed' or 'exponential', got 'linear'",
        "nodes.a.retry.jitter: must be <= 1.0, got 2",
        "nodes.a.retry.maxRetries: must be >= 1, got 0",
        f"nodes.a.retry.wait: '-1s' {duration}",
        "nodes.a.run: run sets several kinds (python, shell); a node runs exactly one, keep one",
        "nodes.a.run.python: Python syntax error (line 2, column 10): '(' was never closed; fix the code "
        "(it is "
        "parsed, not run, here)",
        f"nodes.a.timeout: '10 sec' {duration}",
        "nodes.b.output: output must name a shared key; remove it to use the node's name",
        "nodes.b.run: run sets several kinds (http, shell); a node runs exactly one, keep one",
        "nodes.b.run.http.url: invalid template (line 1): unexpected end of template, expected 'end of print "
        "statement'." + TEMPLATE_FIX,
        "nodes.b.run.shell: invalid template (line 1): Expected an expression, got 'end of statement block'"
        + TEMPLATE_FIX,
    ]


def test_inline_python_must_be_an_expression_or_define_hooks() -> None:
    assert messages("nodes: {a: {run: {python: 'x = 1'}}}") == [
        "nodes.a.run.python: inline Python must be a single expression or define at least one of prep, exec, "
        "post, exec_fallback (def or async def)"
    ]


def test_inline_python_is_parsed_never_run(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')"
    assert load(f"nodes: {{a: {{run: {{python: {code!r}}}}}}}").ok
    module = f"import os\\nos.mkdir({str(marker)!r})\\ndef exec(p):\\n  return 1"
    assert load(f'nodes: {{a: {{run: {{python: "{module}"}}}}}}').ok
    assert not marker.exists()


def test_batch_nodes_need_items() -> None:
    assert messages("nodes: {b: {type: batch, run: {python: 'len(item)'}}}") == [
        "nodes.b.batch.items: a batch node needs items: set batch.items to a dotted path into shared (e.g. "
        "batch: {items: docs}) or define prep in the node's python code to return them"
    ]
    prep = "def prep(shared):\\n  return [1]\\ndef exec(item):\\n  return item"
    assert load(f'nodes: {{b: {{type: parallel_batch, run: {{python: "{prep}"}}}}}}').ok
    assert load("nodes: {b: {type: worker_pool, run: {call: 'pkg.mod:fn'}}}").ok


def test_sequential_batch_types_warn_about_max_parallel() -> None:
    assert messages("nodes: {d: {type: async_batch, batch: {items: x, maxParallel: 3}}}") == [
        "nodes.d.batch.maxParallel: warning: type async_batch runs items one after another, so maxParallel "
        "has "
        "no effect; use type worker_pool or parallel_batch to run items in parallel"
    ]


def test_misplaced_fields_and_bad_run_blocks() -> None:
    text = """
    nodes:
      "bad name": {}
      a: {type: base, batch: {items: x}, flow: "y", run: {}}
      b: {run: {call: "not a target"}, next: {default: a}}
      c: {run: {command: [], parse: json, env: {A: "{{"}}, next: {default: b}}
      e:
        run: {http: {url: " ", method: FETCH, json: {a: 1}, body: x, expectedStatus: [99]}}
        next: {default: c}
      f: {run: {python: "1", call: "a:b"}, next: {default: e}}
      g: {run: {python: "1", parse: json, workingDir: /}, next: {default: f}}
      h: {run: {http: {}}, next: {default: g}}
    start: h
    """
    assert messages(text) == [
        "nodes.a.batch: type base does not take batch; use type worker_pool (or batch, async_batch, "
        "parallel_batch) to run exec per item, or remove batch",
        "nodes.a.flow: only type flow runs a sub-flow; set type: flow or remove flow",
        "nodes.a.run: run names no kind; set one of call, command, http, python, shell, or remove run for a "
        "node that does nothing",
        "nodes.b.run.call: 'not a target' is not a call target; write package.module:attr (e.g. mypkg.nodes:summarize)",
        "nodes.bad name: node name 'bad name' is not valid: start with a letter or _, then use letters, "
        "digits, _ and - only",
        "nodes.bad name: warning: " + UNREACHABLE.format("h"),
        "nodes.c.run.command: the command is empty; write [program, arg...]",
        "nodes.c.run.env.A: invalid template (line 1): unexpected 'end of template'" + TEMPLATE_FIX,
        "nodes.e.run.http.body: set either json or body, not both",
        "nodes.e.run.http.expectedStatus: 99 is not an HTTP status (100-599)",
        "nodes.e.run.http.method: unknown method 'FETCH'; use one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
        "nodes.e.run.http.url: the url is empty; write http(s)://host/path",
        "nodes.f.run: run sets several kinds (call, python); a node runs exactly one, keep one",
        "nodes.g.run.parse: parse applies to shell and command only; remove it",
        "nodes.g.run.workingDir: workingDir applies to shell and command only; remove it",
        "nodes.h.run.http.url: required field 'url' is missing; add it",
    ]


def test_type_errors_name_what_was_expected() -> None:
    assert messages("nodes: {a: {next: [b], retry: 3, output: 5, params: [1]}}") == [
        "nodes.a.next: expected a mapping, got list ['b']",
        "nodes.a.output: expected a string, got int 5",
        "nodes.a.params: expected a mapping, got list [1]",
        "nodes.a.retry: expected a mapping, got int 3",
    ]
    assert messages("nodes: [a]") == ["nodes: expected a mapping of node name to node, got list"]
    assert messages("nodes: {}") == ["nodes: a flow needs at least one node; add one"]
    assert messages("start: a") == [
        "<document>: not a flow: expected a Flow manifest (apiVersion, kind, metadata, spec), a bare spec "
        "with nodes, or a flowrunner document (metadata and nodes)"
    ]


def test_sub_flow_rules_unknown_flows_and_cycles() -> None:
    text = """
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: main}
    spec:
      nodes:
        a: {type: flow, flow: sub, next: {default: b}}
        b: {type: flow, flow: mian}
    ---
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: sub}
    spec:
      nodes:
        x:
          type: flow
          flow: main
          run: {python: "1"}
          retry: {maxRetries: 2}
          timeout: 1s
          output: "y"
          batch: {maxParallel: 2}
    """
    assert messages(text) == [
        "flows.sub.nodes.x.batch.items: a batch sub-flow needs batch.items: a dotted path into shared whose "
        "items become the sub-flow's params (dict items as they are, others as {item: value})",
        "flows.sub.nodes.x.flow: flows form a cycle (main -> sub -> main); a flow cannot run itself, "
        "directly "
        "or through sub-flows",
        "flows.sub.nodes.x.retry: not supported on type flow: a sub-flow is not retried; put retry on its nodes",
        "flows.sub.nodes.x.run: not supported on type flow: the sub-flow is what runs; remove run or change type",
        "flows.sub.nodes.x.timeout: not supported on type flow: a sub-flow has no timeout; put timeout on its nodes",
        "nodes.b.flow: flow 'mian' is not defined; did you mean 'main'?; known flows: main, sub; define it "
        "(another document in the same file, or a Flow in the same namespace)",
    ]
    assert messages("nodes: {a: {type: flow}}") == [
        "nodes.a.flow: type flow needs flow: <name of the Flow to run as a sub-flow>"
    ]


def test_a_flow_that_runs_itself() -> None:
    result = load_object(
        {
            "apiVersion": "flowlib.dev/v1alpha1",
            "kind": "Flow",
            "metadata": {"name": "me"},
            "spec": {"nodes": {"a": {"type": "flow", "flow": "me"}}},
        }
    )
    assert [str(p) for p in result.problems] == [
        "nodes.a.flow: flows form a cycle (me -> me); a flow cannot run itself, directly or through sub-flows"
    ]


def test_manifest_envelope() -> None:
    text = """
    apiVersion: flowlib.dev/v1
    kind: Flw
    metadata: {}
    spec: {nodes: {a: {}}}
    extra: 1
    """
    assert messages(text) == [
        "apiVersion: expected flowlib.dev/v1alpha1, got 'flowlib.dev/v1'",
        "extra: unknown top-level field 'extra'; a manifest has apiVersion, kind, metadata and spec (put "
        "flow "
        "fields under spec)",
        "kind: expected Flow, got 'Flw'",
        "metadata.name: a Flow needs metadata.name (a string)",
    ]
    assert messages("apiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {name: x}") == [
        "spec: a Flow needs a spec with nodes"
    ]


def test_documents_in_a_stream_are_numbered() -> None:
    assert messages("nodes: {a: {}}\n---\n- 1\n") == [
        "document 2: expected a Flow (a mapping), got list; see the Flow format"
    ]
    assert messages(
        "apiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {name: x}\nspec: {nodes: {a: {}}}\n---\n"
        "apiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {name: x}\nspec: {nodes: {a: {}}}\n"
    ) == ["metadata.name: two documents define flow 'x'; give each a unique name"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "nodes:\n  a: {}\n  a: {}\n",
            "<document>: duplicate key 'a' at line 3, column 3 (first at line 2, column 3); keys must be "
            "unique, "
            "rename or merge them",
        ),
        ("- &a [*a]", "<document>: recursive YAML alias at line 1, column 3; a flow must be a tree"),
        (
            "nodes: {a: {params: {d: 2024-13-45}}}",
            "<document>: invalid YAML value at line 1, column 25: '2024-13-45' is not a valid !!timestamp value "
            "(month must be in 1..12); fix it, or write it as a quoted string without a tag if it is meant as a "
            "string",
        ),
    ],
)
def test_yaml_problems(text: str, message: str) -> None:
    assert messages(text) == [message]


def test_yaml_syntax_errors_give_line_and_column() -> None:
    # The wording between position and fix comes from libyaml (or PyYAML's pure-Python parser).
    [message] = messages("nodes: {a: [}")
    assert message.startswith("<document>: YAML syntax error at line 1, column 13: ")
    assert message.endswith(("node content; fix the YAML", "found '}'; fix the YAML"))


def test_alias_bombs_are_refused_before_expansion() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert messages("\n".join(lines)) == [
        "<document>: the document expands to more than 1000000 values (YAML aliases?); make it smaller"
    ]


def test_problem_str_and_sorting() -> None:
    assert str(Problem("", "x")) == "<document>: x"
    assert str(Problem("a.b", "y", "warning")) == "a.b: warning: y"


def test_yaml_booleans_as_keys_get_a_quoting_hint() -> None:
    assert messages("nodes: {a: {action: 'yes', next: {yes: b}}, b: {}}") == [
        "nodes.a.next.yes: YAML 1.1 reads the key yes as the boolean true, not as the string 'yes' (kubectl "
        "sends it as 'true'; line 1, column 35); quote it: 'yes'"
    ]
