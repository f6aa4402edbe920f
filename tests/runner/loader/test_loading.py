"""Every field of the canonical spec, every document form, and sub-flow resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowlib_runner.definition.loader import load_file, load_file_all, load_object, load_text

from flowlib_api.flowspec import FlowSpec

from .helpers import definition, load

FULL = """
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: wordcount, namespace: demo}
spec:
  description: Count words.
  start: fetch
  params: {lang: en, nested: {a: [1, 2]}}
  maxSteps: 100
  nodes:
    fetch:
      type: base
      description: fetches
      run:
        python: |
          def exec(prep_res):
              return ["a b"]
      output: docs
      retry: {maxRetries: 3, wait: 500ms, backoff: exponential, maxWait: 10s, jitter: 0.2}
      timeout: 1m30s
      params: {page: 1}
      next: {default: count, error: report}
    count:
      type: worker_pool_batch
      batch: {items: docs, maxParallel: 4}
      run: {python: "len(item.split())"}
      output: counts
      next: {default: decide}
    decide:
      action: "{{ 'big' if shared.counts | sum > 3 else 'small' }}"
      next: {big: report, small: sub}
    sub:
      type: flow
      flow: other
      batch: {items: docs, maxParallel: 2}
      next: {default: report}
    report:
      run:
        shell: "echo {{ params.lang }}"
        parse: text
        env: {GREETING: hi}
        workingDir: /tmp
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: other}
spec:
  nodes:
    one:
      run:
        http: {method: post, url: "http://127.0.0.1/x", headers: {A: b}, query: {q: "1"}, json: {k: v},
               timeout: 2, expectedStatus: [200, 201]}
    two: {run: {command: [echo, hi]}}
    three: {run: {call: "json:dumps"}}
  start: one
---
apiVersion: flowlib.dev/v1alpha1
kind: FlowRun
metadata: {name: a-run}
spec: {flowRef: wordcount}
"""


def test_every_field_is_read_into_the_canonical_model() -> None:
    result = load(FULL)
    assert [str(p) for p in result.problems] == [
        "flows.other.nodes.three: warning: unreachable from the start node 'one'; connect it with a next "
        "edge or remove it",
        "flows.other.nodes.two: warning: unreachable from the start node 'one'; connect it with a next "
        "edge or remove it",
    ]
    defn = result.definition
    assert defn is not None
    assert defn.name == "wordcount"
    spec = defn.spec
    assert spec.description == "Count words."
    assert spec.start == "fetch"
    assert spec.params == {"lang": "en", "nested": {"a": [1, 2]}}
    assert spec.max_steps == 100
    fetch = spec.nodes["fetch"]
    assert fetch.type == "base" and fetch.description == "fetches" and fetch.output == "docs"
    assert fetch.run is not None and "def exec" in (fetch.run.python or "")
    assert fetch.retry is not None
    assert (fetch.retry.max_retries, fetch.retry.wait, fetch.retry.backoff) == (3, 0.5, "exponential")
    assert (fetch.retry.max_wait, fetch.retry.jitter) == (10.0, 0.2)
    assert fetch.timeout == 90.0
    assert fetch.params == {"page": 1}
    assert fetch.next == {"default": "count", "error": "report"}
    count = spec.nodes["count"]
    assert count.type == "worker_pool_batch"
    assert count.batch is not None and (count.batch.items, count.batch.max_parallel) == ("docs", 4)
    assert spec.nodes["decide"].action is not None
    sub = spec.nodes["sub"]
    assert (sub.type, sub.flow) == ("flow", "other")
    report = spec.nodes["report"].run
    assert report is not None
    assert (report.shell, report.parse, report.env, report.working_dir) == (
        "echo {{ params.lang }}",
        "text",
        {"GREETING": "hi"},
        "/tmp",
    )
    other = defn.subflows["other"]
    assert set(defn.subflows) == {"other"}
    http = other.nodes["one"].run.http  # type: ignore[union-attr]
    assert http is not None
    assert (http.method, http.url, http.headers, http.query) == (
        "post",
        "http://127.0.0.1/x",
        {"A": "b"},
        {"q": "1"},
    )
    assert (http.json_body, http.timeout, http.expected_status) == ({"k": "v"}, 2.0, [200, 201])
    assert other.nodes["two"].run.command == ["echo", "hi"]  # type: ignore[union-attr]
    assert other.nodes["three"].run.call == "json:dumps"  # type: ignore[union-attr]


def test_defaults() -> None:
    spec = definition("nodes: {only: {}}").spec
    node = spec.nodes["only"]
    assert (node.type, node.run, node.output, node.action, node.next) == ("base", None, None, None, {})
    assert (node.retry, node.timeout, node.batch, node.flow, node.params) == (None, None, None, None, None)
    assert (spec.start, spec.params, spec.max_steps, spec.description) == (None, {}, None, None)


def test_a_bare_spec_is_named_after_its_file(tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text("nodes: {a: {}}\n")
    result = load_file(path)
    assert result.definition is not None and result.definition.name == "hello"
    assert load_text("nodes: {a: {}}").definition.name == "flow"  # type: ignore[union-attr]


def test_the_flow_argument_picks_the_main_flow_and_the_others_become_the_library() -> None:
    result = load(FULL, flow="other")
    assert result.definition is not None and result.definition.name == "other"
    assert result.definition.subflows == {}
    assert [str(p) for p in load(FULL, flow="othr").problems] == [
        "<document>: no flow named 'othr'; did you mean 'other'?; flows in <string>: other, wordcount"
    ]


def test_load_file_all_loads_each_flow_as_main(tmp_path: Path) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(FULL)
    results = load_file_all(path)
    assert [name for name, _ in results] == ["wordcount", "other"]
    assert all(r.ok for _, r in results)


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    result = load_file(tmp_path / "missing.yaml")
    assert not result.ok and "cannot read" in result.problems[0].message


def test_load_object_with_a_library_of_manifests_and_specs() -> None:
    main = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "main"},
        "spec": {
            "nodes": {
                "a": {"type": "flow", "flow": "lib1", "next": {"default": "b"}},
                "b": {"type": "flow", "flow": "lib2"},
            }
        },
    }
    library = {
        "lib1": {
            "apiVersion": "flowlib.dev/v1alpha1",
            "kind": "Flow",
            "metadata": {"name": "lib1"},
            "spec": {"nodes": {"x": {"type": "flow", "flow": "lib2"}}},
        },
        "lib2": {"nodes": {"y": {}}},
        "unused": {"nodes": {"bad": {"type": "nope"}}},
    }
    result = load_object(main, library=library)
    assert result.ok, [str(p) for p in result.problems]
    assert result.definition is not None
    assert set(result.definition.subflows) == {"lib1", "lib2"}
    assert isinstance(result.definition.subflows["lib2"], FlowSpec)


def test_problems_of_a_library_flow_carry_its_name() -> None:
    result = load_object(
        {"nodes": {"a": {"type": "flow", "flow": "lib"}}}, library={"lib": {"nodes": {"x": {"type": "nope"}}}}
    )
    assert not result.ok
    assert [p.path for p in result.problems] == ["flows.lib.nodes.x.type"]


def test_empty_documents_are_skipped_and_an_empty_file_is_a_problem() -> None:
    assert load("---\nnodes: {a: {}}\n---\n").ok
    assert [str(p) for p in load("").problems] == ["<document>: no Flow found; the file is empty"]


@pytest.mark.parametrize("duration", ["250ms", "0.25", 0.25, "0.25s"])
def test_durations_normalize_to_seconds(duration: object) -> None:
    spec = definition(f"nodes: {{a: {{timeout: {duration}}}}}").spec
    assert spec.nodes["a"].timeout == pytest.approx(0.25)
