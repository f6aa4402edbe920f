"""Lint catches what breaks later: YAML 1.1 keys, template names and filters, dead-end actions, loops
without a step guard, and batch nodes without items."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.loader import load_object
from flowlib_runner.definition.templates import check_template, template_problems

from tests.flowctl.conftest import flowctl

from .helpers import definition, load, messages

# -- 1. keys that kubectl's YAML 1.1 reads as something else ----------------------------------------

PARAM_N = """
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: sample}
spec:
  params:
    n: 20000
  nodes:
    draw:
      run: {python: "params['n']"}
"""


def test_a_param_named_n_is_an_error_with_the_quoting_fix() -> None:
    # kubectl reads `n` as false: the cluster got {"false": 20000} and the run died with KeyError: 'n'.
    result = load(PARAM_N)
    assert result.definition is None
    assert [str(p) for p in result.problems] == [
        "params.n: YAML 1.1 reads the key n as the boolean false, not as the string 'n' (kubectl sends it "
        "as 'false'; line 7, column 5); quote it: 'n'"
    ]
    assert load(PARAM_N.replace("    n: 20000", "    'n': 20000")).ok


@pytest.mark.parametrize(
    ("key", "read", "note"),
    [
        ("y", "the boolean true", "kubectl sends it as 'true'; "),
        ("Y", "the boolean true", "kubectl sends it as 'true'; "),
        ("N", "the boolean false", "kubectl sends it as 'false'; "),
        ("yes", "the boolean true", "kubectl sends it as 'true'; "),
        ("Yes", "the boolean true", "kubectl sends it as 'true'; "),
        ("NO", "the boolean false", "kubectl sends it as 'false'; "),
        ("On", "the boolean true", "kubectl sends it as 'true'; "),
        ("off", "the boolean false", "kubectl sends it as 'false'; "),
        ("true", "the boolean true", ""),
        ("012", "the number 10 (octal)", "kubectl sends it as '10'; "),
        ("1:30", "the number 90 (base 60)", ""),
        ("1e3", "the number 1000", "in kubectl's YAML; kubectl sends it as '1000'; "),
        ("200", "the number 200", ""),
        ("~", "null", ""),
    ],
)
def test_keys_yaml_1_1_reads_as_other_types_are_errors(key: str, read: str, note: str) -> None:
    text = f"params: {{{key}: 1}}\nnodes: {{a: {{}}}}\n"
    assert messages(text) == [
        f"params.{key}: YAML 1.1 reads the key {key} as {read}, not as the string '{key}' ({note}line 1, "
        f"column 10); quote it: '{key}'"
    ]


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        # node names, edge names, run params and shared keys in an http body: keys anywhere
        ("nodes:\n  n: {}\n", ["nodes.n"]),
        ("nodes:\n  a: {next: {yes: b, no: c}}\n  b: {}\n  c: {}\n", ["nodes.a.next.no", "nodes.a.next.yes"]),
        ("nodes:\n  a: {params: {off: 1, 'on': 2}}\n", ["nodes.a.params.off"]),
        (
            "nodes:\n  a:\n    run:\n      http: {url: 'http://x', json: {shared: {y: 1, Y: 2}}}\n",
            ["nodes.a.run.http.json.shared.Y", "nodes.a.run.http.json.shared.y"],
        ),
        # a manifest's spec fields are reported without spec., another Flow under flows.<name>
        (
            "apiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {name: one}\nspec:\n  nodes: {n: {}}\n"
            "---\napiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {name: two}\nspec:\n  nodes: {N: {}}\n"
            "---\napiVersion: flowlib.dev/v1alpha1\nkind: FlowRun\nmetadata: {name: r}\n"
            "spec: {flowRef: one, input: {no: 1}}\n",
            ["document 3.spec.input.no", "flows.two.nodes.N", "nodes.n"],
        ),
    ],
)
def test_keys_are_checked_anywhere_in_the_file(text: str, paths: list[str]) -> None:
    problems = load(text).problems
    assert [p.path for p in problems] == paths
    assert all(p.is_error and p.message.endswith(f"quote it: '{p.path.rsplit('.', 1)[-1]}'") for p in problems)


def test_quoted_tagged_and_ordinary_keys_are_fine() -> None:
    text = """
    params: {'n': 1, "yes": 2, !!str N: 3, &anchor count: 4, name: 5, 'on': 6, '012': 7, "1:30": 8}
    nodes: {a: {run: {python: "params['n']"}}}
    """
    assert messages(text) == []


def test_values_that_flowctl_and_kubectl_read_differently_are_errors() -> None:
    text = "nodes:\n  a:\n    params: {flag: on, off_too: off, yes_: yes, octal: 012, answer: n, at: 1:30, big: 1e3}\n"
    assert messages(text) == [
        "nodes.a.params.answer: kubectl (YAML 1.1) reads n as the boolean false, flowctl as the string 'n', "
        "so the flow behaves differently in the cluster (line 3, column 69); quote it ('n') for the string, "
        "or write false for the boolean",
        "nodes.a.params.at: flowctl reads 1:30 as the number 90 (YAML 1.1 base 60), kubectl as the string "
        "'1:30' (line 3, column 76); quote it ('1:30') for the string, or write 90 for the number",
        "nodes.a.params.big: kubectl reads 1e3 as the number 1000, flowctl as the string '1e3' (line 3, "
        "column 87); quote it ('1e3') for the string, or write 1000 for the number",
    ]
    # on/off/yes/no/012 as values read the same for both (booleans and numbers, as YAML 1.1 users mean)
    spec = definition("nodes:\n  a:\n    params: {flag: on, off_too: off, yes_: yes, octal: 012}\n").spec
    assert spec.nodes["a"].params == {"flag": True, "off_too": False, "yes_": True, "octal": 10}


def test_values_in_lists_name_their_index() -> None:
    assert [p.path for p in load("nodes:\n  a: {run: {command: [sort, -k, N, 'n']}}\n").problems] == [
        "nodes.a.run.command[2]"
    ]


# -- 2. templates: undefined names, unknown filters and tests ------------------------------------------


def test_unknown_filter_in_an_action_is_an_error() -> None:
    result = load('nodes:\n  a: {action: "{{ shared.x | no_such_filter }}"}\n')
    assert result.definition is None
    assert [str(p) for p in result.problems] == [
        "nodes.a.action: unknown filter 'no_such_filter'; use one of Jinja2's built-in filters "
        "(https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-filters)"
    ]


def test_misspelt_variable_in_a_shell_template_is_an_error() -> None:
    assert messages("nodes:\n  a: {run: {shell: 'echo {{ sharde.x }}'}}\n") == [
        "nodes.a.run.shell: undefined variable 'sharde'; templates see env, item, node, params, shared; did you "
        "mean 'shared'?"
    ]


@pytest.mark.parametrize(
    ("text", "action", "expected"),
    [
        (
            "{{ foo }}",
            False,
            [
                "undefined variable 'foo'; templates see env, item, node, params, shared; write "
                "shared.foo for a value in the shared store or params.foo for a param"
            ],
        ),
        (
            "{{ result }}",
            False,
            [
                "'result' (exec's result) exists only in action templates; read an earlier node's result "
                "from shared (shared.<its output>)"
            ],
        ),
        ("{{ 'ok' if result else 'no' }}", True, []),
        ("{{ shared.x | uper }}", False, ["unknown filter 'uper'; did you mean 'upper'?"]),
        (
            "{% if shared.x is nosuchtest %}a{% endif %}",
            False,
            [
                "unknown test 'nosuchtest'; use one of Jinja2's built-in tests "
                "(https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-tests)"
            ],
        ),
        ("{{ node.nmae }}", False, ["node has no field 'nmae' (node is {name, type}); use node.name or node.type"]),
        (
            '{% include "other" %}',
            False,
            [
                "templates cannot load other templates: there is nothing to include, "
                "extend or import; write the text inline"
            ],
        ),
        (
            "{{ a }}\n{{ shared.b | nope }}",
            False,
            [
                "unknown filter 'nope' (line 2); use one of Jinja2's built-in filters "
                "(https://jinja.palletsprojects.com/en/stable/templates/#list-of-builtin-filters)",
                "undefined variable 'a' (line 1); templates see env, item, node, params, shared; write shared.a for a "
                "value in the shared store or params.a for a param",
            ],
        ),
        # what templates may use: their variables, names they set, Jinja2 globals, guarded names
        ("{% set n = shared.items | length %}{% for x in range(n) %}{{ loop.index }}{{ x }}{% endfor %}", False, []),
        ("{{ maybe if maybe is defined else 1 }}{{ other | default('x') }}{{ node.name }}{{ node.type }}", False, []),
        ("{{ params.a | int | default(0) }}{{ item | tojson }}{{ shared.x is none }}", False, []),
        ("{% macro m(v) %}{{ v }}{% endmacro %}{{ m(params.a) }}", False, []),
        ("plain text", False, []),
    ],
)
def test_template_problems(text: str, action: bool, expected: list[str]) -> None:
    assert template_problems(text, action=action) == expected


def test_check_template_joins_every_problem_of_one_template() -> None:
    assert check_template("{{ sharde | uper }}") == (
        "unknown filter 'uper'; did you mean 'upper'? Also: undefined variable 'sharde'; templates see env, item, "
        "node, params, shared; did you mean 'shared'?"
    )


def test_http_and_command_templates_name_their_field() -> None:
    text = """
    nodes:
      a:
        run:
          http: {url: "http://x/{{ params.id }}", json: {k: "{{ shard.k }}"}, headers: {A: "{{ 1 | nope }}"}}
        next: {default: b}
      b:
        run: {command: [echo, "{{ itme }}"]}
    """
    assert [p.path for p in load(text).problems] == [
        "nodes.a.run.http.headers.A",
        "nodes.a.run.http.json.k",
        "nodes.b.run.command[1]",
    ]


def test_a_manifest_with_a_bad_template_is_invalid_for_the_operator() -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "x"},
        "spec": {"nodes": {"a": {"action": "{{ sharde.x }}"}}},
    }
    result = load_object(manifest)
    assert not result.ok and [p.path for p in result.errors] == ["nodes.a.action"]


# -- 3. warnings: actions no edge follows, loops without maxSteps -----------------------------------


def test_a_literal_action_no_edge_follows_is_a_warning() -> None:
    result = load("nodes:\n  a: {action: aproved, next: {approved: b, rejected: c}}\n  b: {}\n  c: {}\n")
    assert result.ok
    assert [str(p) for p in result.problems] == [
        "nodes.a.action: warning: the action is always 'aproved' but next has no 'aproved' edge and no default "
        "edge (edges: approved, rejected), so the run stops after this node; did you mean 'approved'? (or add "
        "a next.aproved edge)"
    ]


@pytest.mark.parametrize(
    "node",
    [
        "{action: approved, next: {approved: b}}",  # an edge of that name
        "{action: other, next: {default: b}}",  # a default edge
        "{action: \"{{ 'x' if shared.y else 'approved' }}\", next: {approved: b}}",  # not a literal
        "{action: done, next: {}}",  # no edges: the flow ends here anyway (a sub-flow passes the action on)
    ],
)
def test_actions_that_an_edge_can_follow_are_fine(node: str) -> None:
    problems = load(f"start: a\nnodes:\n  a: {node}\n  b: {{}}\n").problems
    assert [p for p in problems if p.path == "nodes.a.action"] == []


def test_a_string_post_returns_without_an_edge_is_a_warning() -> None:
    text = """
    nodes:
      a:
        run:
          python: |
            def post(shared, prep_res, exec_res):
                def helper():
                    return "ignored"
                if exec_res:
                    return "approved"
                return "rejectd"
        next: {approved: b, rejected: b}
      b: {}
    """
    assert messages(text) == [
        "nodes.a.run.python: warning: post can return 'rejectd' but next has no 'rejectd' edge and no default "
        "edge (edges: approved, rejected), so the run stops after this node; did you mean 'rejected'? (or add "
        "a next.rejectd edge)"
    ]


def test_a_self_loop_without_max_steps_is_a_warning() -> None:
    text = "nodes:\n  poll: {run: {python: '1'}, next: {again: poll, done: end}}\n  end: {}\n"
    result = load(text)
    assert result.ok
    assert [str(p) for p in result.problems] == [
        "nodes.poll.next.again: warning: this edge closes a loop (poll -> poll) and the flow has no maxSteps, so a "
        "loop that never exits runs until the run is cancelled; set maxSteps (or give the FlowRun a timeout)"
    ]
    assert messages("maxSteps: 20\n" + text) == []


def test_every_loop_is_named_once_by_the_edge_that_closes_it() -> None:
    text = """
    start: a
    nodes:
      a: {next: {default: b}}
      b: {next: {default: c, retry: a}}
      c: {next: {error: b}}
    """
    assert [(p.path, p.message.split(")")[0]) for p in load(text).problems] == [
        ("nodes.b.next.retry", "this edge closes a loop (a -> b -> a"),
        ("nodes.c.next.error", "this edge closes a loop (b -> c -> b"),
    ]


# -- 4. batch nodes without items: a warning, and zero items at run time -----------------------------

SEED_POOL = """
metadata: {name: seed-pool}
nodes:
  start:
    type: base
    run: {python: "[1, 2, 3]"}
    output: numbers
    next: {default: process_data}
  process_data:
    type: worker_pool_batch
    batch: {strategy: worker_pool, max_parallel: 5}
    next: {default: done}
  done:
    run: {python: "'finished'"}
"""


def test_the_seed_pool_without_items_or_code_loads_and_runs_zero_items() -> None:
    result = load(SEED_POOL)
    assert result.ok
    assert [(p.path, p.severity) for p in result.problems] == [("nodes.process_data.batch.items", "warning")]
    shared: dict[str, Any] = {}
    asyncio.run(build_flow(definition(SEED_POOL)).run_async(shared))
    assert shared == {"numbers": [1, 2, 3], "done": "finished"}


CODE_WITHOUT_ITEMS = """
nodes:
  pool:
    type: {type}
    run: {run}
    next: {{default: done}}
  done:
    run: {{python: "'finished'"}}
"""


@pytest.mark.parametrize(
    ("type_name", "run"),
    [
        ("worker_pool", '{python: "item * 10"}'),
        ("batch", "{shell: 'echo {{ item }}'}"),
        ("parallel_batch", '{python: "def exec(item):\\n    return item\\n"}'),
    ],
)
def test_a_batch_node_with_code_but_no_way_to_get_items_is_an_error(type_name: str, run: str) -> None:
    """Code per item but nothing that supplies the items is a mistake (a missing batch.items), not
    a request for zero items: unlike a batch node without any code, it stays an error."""
    result = load(CODE_WITHOUT_ITEMS.format(type=type_name, run=run))
    assert [(p.path, p.severity) for p in result.problems] == [("nodes.pool.batch.items", "error")]
    assert "needs items" in result.problems[0].message


def test_a_batch_node_with_prep_code_needs_no_items() -> None:
    text = CODE_WITHOUT_ITEMS.format(
        type="worker_pool",
        run='{python: "def prep(shared):\\n    return [1, 2]\\n\\ndef exec(item):\\n    return item * 10\\n"}',
    )
    shared: dict[str, Any] = {}
    asyncio.run(build_flow(definition(text)).run_async(shared))
    assert shared == {"pool": [10, 20], "done": "finished"}


# -- flowctl lint shows them -------------------------------------------------------------------------


def test_flowctl_lint_prints_each_trap(tmp_path: Path) -> None:
    files = {
        "param.yaml": PARAM_N,
        "filter.yaml": 'nodes:\n  a: {action: "{{ shared.x | no_such_filter }}"}\n',
        "typo.yaml": "nodes:\n  a: {run: {shell: 'echo {{ sharde.x }}'}}\n",
        "action.yaml": "nodes:\n  a: {action: aproved, next: {approved: b, rejected: c}}\n  b: {}\n  c: {}\n",
        "loop.yaml": "nodes:\n  poll: {run: {python: '1'}, next: {again: poll, done: end}}\n  end: {}\n",
        "seed.yaml": SEED_POOL,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    done = flowctl("lint", *(tmp_path / name for name in files))
    assert done.returncode == 2, done.stderr
    out = done.stdout
    assert f"{tmp_path / 'param.yaml'}: params.n: YAML 1.1 reads the key n as the boolean false" in out
    assert f"{tmp_path / 'filter.yaml'}: nodes.a.action: unknown filter 'no_such_filter'" in out
    assert f"{tmp_path / 'typo.yaml'}: nodes.a.run.shell: undefined variable 'sharde'" in out
    assert f"{tmp_path / 'action.yaml'}: nodes.a.action: warning: the action is always 'aproved'" in out
    assert f"{tmp_path / 'loop.yaml'}: nodes.poll.next.again: warning: this edge closes a loop (poll -> poll)" in out
    assert f"{tmp_path / 'seed.yaml'}: nodes.process_data.batch.items: warning: " in out


def test_the_loop_is_named_from_the_start_node() -> None:
    text = (
        "start: decide\nnodes:\n  act: {next: {default: decide}}\n  decide: {next: {act: act, done: end}}\n  end: {}\n"
    )
    assert [p.path for p in load(text).problems] == ["nodes.act.next.default"]
