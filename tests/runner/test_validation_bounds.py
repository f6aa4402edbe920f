"""Validation is bounded (issue 12, point 5): whatever the definition, what it reports is small, it
takes linear time, and it ends in problems, never in an exception.

Each test is a reviewer's reproducer: a 6 MB report from 1,000 dangling edges, 41.6 s for 5,000
nodes, 46 s for a 10 MB template, RecursionError on JSON nested 1,000 deep, tracebacks from
``flowctl lint`` on ``!!bool abc``, ``!!timestamp notatime`` and a 401-digit timeout.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flowlib_operator.admission import flow_problems, flowrun_problems
from flowlib_runner.definition import loader, templates, validate
from flowlib_runner.definition.loader import LoadResult, load_object, load_text
from flowlib_runner.definition.problems import LISTED_NAMES, REPORTED_PROBLEMS, Problem, report
from flowlib_runner.definition.validate import MAX_NESTING, MAX_TEXT_BYTES
from flowlib_runner.flowctl.local import lint
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib_api.text import PROBLEM_MESSAGE_BYTES

STATUS_BYTES = 64 * 1024
"""What a Flow's status may take at most, problems and all."""


def manifest(nodes: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "big"},
        "spec": {**spec, "nodes": nodes},
    }


def chain(n: int, target: str = "n{next:04d}") -> dict[str, Any]:
    """``n`` inline-Python nodes, each pointing at ``target`` (by default the next node)."""
    nodes: dict[str, Any] = {}
    for i in range(n):
        node: dict[str, Any] = {"run": {"python": f"{i} + 1"}}
        if i + 1 < n:
            node["next"] = {"default": target.format(i=i, next=i + 1)}
        nodes[f"n{i:04d}"] = node
    return nodes


def report_size(result: LoadResult) -> int:
    return len("\n".join(str(p) for p in result.problems).encode())


def deep(levels: int) -> dict[str, Any]:
    """``{"a": {"a": ... {"a": 1}}}`` nested ``levels`` deep, built without recursion."""
    root: dict[str, Any] = {}
    current = root
    for _ in range(levels - 1):
        current["a"] = {}
        current = current["a"]
    current["a"] = 1
    return root


# -- what a report holds ------------------------------------------------------------------------


def test_a_thousand_dangling_targets_make_a_small_report() -> None:
    result = load_object(manifest(chain(1_000, target="missing{i}")))
    assert not result.ok
    assert len(result.problems) == REPORTED_PROBLEMS + 1
    assert report_size(result) < STATUS_BYTES // 2
    first = str(result.problems[0])
    assert first.startswith("nodes.n0000.next.default: target 'missing0' does not exist; known nodes: ")
    assert f"… and {1_000 - LISTED_NAMES} more" in first
    # 999 dangling edges, and 1,000 start nodes (nodes without incoming edges)
    assert str(result.problems[-1]) == (
        f"<document>: … and {1_000 - REPORTED_PROBLEMS} more errors not shown; fix the ones above and check again"
    )


def test_did_you_mean_stays_when_the_listing_is_cut() -> None:
    nodes = chain(1_000)
    nodes["n0500"]["next"] = {"default": "n0501x"}
    (problem,) = load_object(manifest(nodes, start="n0000")).errors
    assert problem.path == "nodes.n0500.next.default"
    assert problem.message == (
        "target 'n0501x' does not exist; known nodes: n0000, n0001, n0002, n0003, n0004 … and 995 more; "
        "did you mean 'n0501'?"
    )


def test_a_short_listing_is_not_cut() -> None:
    nodes = chain(7)
    nodes["n0006"]["next"] = {"default": "n000"}
    (problem,) = load_object(manifest(nodes)).errors
    assert "known nodes: n0000, n0001, n0002, n0003, n0004, n0005, n0006; did you mean" in problem.message


def test_several_start_nodes_are_listed_briefly() -> None:
    nodes = {f"n{i:04d}": {} for i in range(1_000)}
    (problem,) = load_object(manifest(nodes)).errors
    assert problem.path == "start"
    assert "n0000, n0001, n0002, n0003, n0004 … and 995 more; set start:" in problem.message


def test_a_long_loop_is_shown_by_its_ends() -> None:
    nodes = chain(1_000)
    nodes["n0999"]["next"] = {"again": "n0000"}
    (warning,) = load_object(manifest(nodes, start="n0000")).warnings
    assert warning.path == "nodes.n0999.next.again"
    loop = "n0000 -> n0001 -> n0002 -> n0003 -> n0004 -> … 991 more -> n0996 -> n0997 -> n0998 -> n0999 -> n0000"
    assert f"({loop})" in warning.message


def test_a_report_keeps_the_first_errors_and_warnings_and_counts_the_rest() -> None:
    problems = [Problem(f"p{i:03d}", "wrong") for i in range(120)]
    problems += [Problem(f"w{i:03d}", "odd", "warning") for i in range(60)]
    kept = report(problems)
    assert [p.path for p in kept[:REPORTED_PROBLEMS]] == [f"p{i:03d}" for i in range(REPORTED_PROBLEMS)]
    assert sum(p.severity == "warning" for p in kept) == REPORTED_PROBLEMS
    assert kept[-1] == Problem(
        "", "… and 70 more errors and 10 more warnings not shown; fix the ones above and check again"
    )


def test_a_huge_value_quoted_in_a_message_is_cut() -> None:
    result = load_object(manifest({"a": {}}, start="x" * 1_000_000))
    (problem,) = result.errors
    assert len(str(problem).encode()) <= PROBLEM_MESSAGE_BYTES
    assert problem.message.startswith("start node 'xxx")


# -- time and memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["n{next:04d}", "missing{i}"], ids=["valid", "dangling"])
def test_five_thousand_nodes_validate_in_linear_time_and_memory(target: str) -> None:
    """Before: 41.6 s and +296 MB (every problem listed every name and compared it with each)."""
    obj = manifest(chain(5_000, target=target))
    tracemalloc.start()
    try:
        result = load_object(obj)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.ok == (target != "missing{i}")
    # Time is the benchmark's to judge (benchmarks/validation_bench.py); memory is deterministic.
    assert peak < 100 * 1024 * 1024, peak


def test_a_huge_template_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a 1 MB action took 3.35 s to check, 10 MB 46 s (it was parsed and analysed whole)."""
    big = "{{ shared.x | upper }}" * (1024 * 1024 // 22)

    def never(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("an oversized template was analysed")

    monkeypatch.setattr(validate, "template_problems", never)
    result = load_object(manifest({"a": {"action": big, "next": {"x": "b"}}, "b": {}}))
    (problem,) = result.errors
    assert problem.path == "nodes.a.action"
    limit = MAX_TEXT_BYTES // 1024
    assert problem.message.startswith(f"this template or inline code is 1024 KiB, over the {limit} KiB limit")


@pytest.mark.parametrize(
    ("run", "path"),
    [
        ({"python": "x = 1\n" * 20_000}, "nodes.a.run.python"),
        ({"shell": "echo {{ item }}" * 5_000}, "nodes.a.run.shell"),
        ({"command": ["echo", "é" * 40_000]}, "nodes.a.run.command[1]"),
        ({"http": {"url": "http://x", "json": {"body": ["{{ x }}" * 10_000]}}}, "nodes.a.run.http.json.body[0]"),
    ],
)
def test_inline_code_and_templates_over_the_limit_name_their_field(run: dict[str, Any], path: str) -> None:
    (problem,) = load_object(manifest({"a": {"run": run}})).errors
    assert problem.path == path
    assert "over the 64 KiB limit" in problem.message


def test_a_template_at_the_limit_is_checked() -> None:
    text = "{{ shared.x }}" + " " * (MAX_TEXT_BYTES - 14)
    assert load_object(manifest({"a": {"action": text}})).ok


# -- nesting ------------------------------------------------------------------------------------


def test_json_nested_a_thousand_deep_is_a_problem_naming_node_and_field() -> None:
    """Before: RecursionError (``templates.template_strings``, ``validate.short``)."""
    obj = manifest({"a": {"run": {"http": {"url": "http://x", "json": deep(1_000)}}}})
    (problem,) = load_object(obj).errors
    assert problem.path == "nodes.a.run.http.json"
    assert problem.message.startswith(f"nested more than {MAX_NESTING} levels deep")


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 10_000])
def test_deep_params_are_a_problem_wherever_they_are(levels: int) -> None:
    obj = manifest({"a": {"params": {"p": deep(levels)}}}, params={"q": [deep(levels)]})
    assert sorted(p.path for p in load_object(obj).errors) == ["nodes.a.params.p", "params.q"]


def test_nesting_at_the_limit_is_fine() -> None:
    assert load_object(manifest({"a": {"params": {"p": deep(MAX_NESTING - 1)}}})).ok


def test_deep_json_in_the_webhook_is_a_problem() -> None:
    """Before: RecursionError in the admission webhook."""
    obj = manifest({"a": {"run": {"http": {"url": "http://x", "json": deep(1_000)}}}})
    (problem,) = flow_problems(obj)
    assert problem.startswith("nodes.a.run.http.json: nested more than")
    run = {"metadata": {"name": "r"}, "spec": {"flow": obj["spec"]}}
    assert [p.split(":")[0] for p in flowrun_problems(run)] == ["spec.flow.nodes.a.run.http.json"]


def test_a_deep_value_in_a_seed_document_is_a_problem() -> None:
    doc = {"metadata": {"name": "seed"}, "nodes": {"a": {"batch": deep(2_000)}}}
    (problem,) = load_object(doc).errors
    assert problem.path == "nodes.a.batch.a"


def test_a_long_chain_of_sub_flows_is_loaded_without_recursion() -> None:
    flows = {f"f{i}": {"nodes": {"a": {"type": "flow", "flow": f"f{i + 1}"}}} for i in range(1, 2_000)}
    flows["f2000"] = {"nodes": {"a": {}}}
    result = load_object(manifest({"a": {"type": "flow", "flow": "f1"}}), library=flows)
    assert result.definition is not None, result.problems[:3]
    assert len(result.definition.subflows) == 2_000


def test_a_long_cycle_of_sub_flows_is_shown_by_its_ends() -> None:
    flows = {f"f{i}": {"nodes": {"a": {"type": "flow", "flow": f"f{i + 1}"}}} for i in range(1, 2_000)}
    flows["f2000"] = {"nodes": {"a": {"type": "flow", "flow": "f1"}}}
    (problem,) = load_object(manifest({"a": {"type": "flow", "flow": "f1"}}), library=flows).errors
    assert problem.path == "flows.f2000.nodes.a.flow"
    cycle = "f1 -> f2 -> f3 -> f4 -> f5 -> … 1991 more -> f1997 -> f1998 -> f1999 -> f2000 -> f1"
    assert f"({cycle})" in problem.message


# -- crashes become problems --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("nodes: {a: {params: {x: !!bool abc}}}", "<document>: invalid YAML value at line 1, column 25: 'abc' is not"),
        (
            "nodes: {a: {params: {x: !!timestamp notatime}}}",
            "<document>: invalid YAML value at line 1, column 25: 'notatime' is not a valid !!timestamp value",
        ),
        ("nodes: {a: {params: {x: !!int twelve}}}", "<document>: invalid YAML value at line 1, column 25: 'twelve'"),
        ("nodes: {a: {timeout: " + "1" * 401 + "}}", "nodes.a.timeout: a number of about 401 digits is not a"),
        ("nodes: {a: {timeout: " + "9" * 5_000 + "}}", "<document>: invalid YAML value at line 1, column 22: '99"),
        ("nodes: {a: {run: {command: [" + "7" * 5_000 + "]}}}", "<document>: invalid YAML value at line 1,"),
    ],
)
def test_yaml_values_no_constructor_can_read_are_problems(text: str, start: str) -> None:
    problems = [str(p) for p in load_text(text).problems]
    assert len(problems) == 1 and problems[0].startswith(start), problems


def test_a_huge_number_in_a_python_object_is_a_problem() -> None:
    """Python callers (and JSON) can hold any int: quoting one in a message must not raise."""
    problems = load_object(manifest({"a": {"timeout": 10**5_000, "run": {"command": [10**5_000]}}})).errors
    assert [p.path for p in problems] == ["nodes.a.run.command.0", "nodes.a.timeout"]
    assert all("a number of about 5001 digits" in p.message for p in problems)


@pytest.mark.parametrize(
    "text",
    [
        "nodes: {a: {params: {x: !!bool abc}}}",
        "nodes: {a: {params: {x: !!timestamp notatime}}}",
        "nodes: {a: {timeout: " + "1" * 401 + "}}",
    ],
)
def test_flowctl_lint_reports_instead_of_printing_a_traceback(text: str, tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    result = CliRunner().invoke(lint, [str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.startswith(f"{path}: ")


_PIECES = st.sampled_from(
    [
        "echo ",
        " ",
        "{{ params.x }}",
        "{{ shared.n0001 }}",
        "{{- item -}}",
        "{{ node.name }}",
        "{{ node.nam }}",
        "{{ result }}",
        "{{ sharde.x }}",
        "{{ true }}",
        "{{ env.TOKEN }}",
        "}}",
        "{",
        "{{",
        "{%",
        "{#",
        "#}",
        "{{ x | upper }}",
        "{% if shared.a %}a{% endif %}",
        "'",
        "\n",
        "{{ params.x.y.z }}",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(_PIECES, max_size=8).map("".join), st.booleans())
def test_the_fast_path_for_plain_templates_agrees_with_the_full_analysis(text: str, action: bool) -> None:
    if templates._plainly_valid(text, action=action):
        env = templates.environment()
        tree = env.parse(text)  # a plainly valid template parses
        assert templates._semantic_problems(env, tree, text, action=action) == []


def test_a_file_of_many_flows_is_parsed_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``flowctl lint`` of a file with N flows used to parse the whole file N times (quadratic)."""
    calls: list[str] = []
    real = loader.read_documents

    def counted(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(loader, "read_documents", counted)
    documents = [
        f"apiVersion: flowlib.dev/v1alpha1\nkind: Flow\nmetadata: {{name: f{i}}}\nspec: {{nodes: {{a: {{}}}}}}\n"
        for i in range(20)
    ]
    path = tmp_path / "many.yaml"
    path.write_text("---\n".join(documents))
    results = loader.load_file_all(path)
    assert [name for name, _ in results] == [f"f{i}" for i in range(20)]
    assert all(result.ok for _, result in results)
    assert len(calls) == 1
