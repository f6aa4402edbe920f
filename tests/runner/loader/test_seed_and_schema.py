"""The seed's flowrunner format, and the JSON Schema exported for the CRD."""

from __future__ import annotations

import json
from typing import Any

from flowlib_runner.definition.loader import flow_spec_json_schema

from .helpers import definition, messages

SEED = """
metadata:
  name: complex-flow
  description: From flowrunner.
  version: "1.0.0"
max_steps: 20
nodes:
  start:
    type: base
    retry: {max_retries: 3, wait: 100ms, max_wait: 1s}
    run: {python: "[1, 2, 3]"}
    output: numbers
    next: {default: process_data}
  process_data:
    type: worker_pool_batch
    batch: {strategy: worker_pool, max_parallel: 5, items: numbers}
    run: {python: "item * 10"}
    next: {default: seq, failure: END}
  seq:
    batch: {strategy: sequential, items: numbers}
    max_retries: 2
    next: {default: shell}
  shell:
    run: {command: [echo, hi], working_dir: /}
"""


def test_the_seed_format_is_read_into_the_canonical_spec() -> None:
    defn = definition(SEED)
    assert defn.name == "complex-flow"
    spec = defn.spec
    assert (spec.description, spec.max_steps) == ("From flowrunner.", 20)
    start = spec.nodes["start"]
    assert start.retry is not None and (start.retry.max_retries, start.retry.wait, start.retry.max_wait) == (
        3,
        0.1,
        1.0,
    )
    pool = spec.nodes["process_data"]
    assert pool.type == "worker_pool_batch" and pool.batch is not None and pool.batch.max_parallel == 5
    assert pool.next == {"default": "seq"}  # END means "stop here"
    seq = spec.nodes["seq"]
    assert seq.type == "batch" and seq.retry is not None and seq.retry.max_retries == 2
    assert spec.nodes["shell"].run.working_dir == "/"  # type: ignore[union-attr]


def test_seed_problems_use_the_spelling_the_user_wrote() -> None:
    text = """
    metadata: {name: s}
    nodes:
      a:
        type: base
        retry: {max_retries: 0, wait: 100ms}
        hooks: {exec: "return 1"}
        next: {default: b, done: END}
      b:
        type: worker_pool
        batch: {strategy: parallel, max_parallel: 0, items: x}
        next: {default: c}
      c: {type: base, batch: {strategy: nope, items: x}, max_retries: 0}
    """
    assert messages(text) == [
        "nodes.a.hooks: JavaScript hooks are not supported; port them to Python with run: {python: ...} "
        "defining prep(shared), exec(prep_res) and post(shared, prep_res, exec_res)",
        "nodes.a.retry.max_retries: must be >= 1, got 0",
        "nodes.b.batch.max_parallel: must be >= 1, got 0",
        "nodes.b.batch.strategy: strategy 'parallel' means type parallel_batch but the node says type "
        "worker_pool; remove one of them",
        "nodes.c.batch: type base does not take batch; use type worker_pool (or batch, async_batch, "
        "parallel_batch) to run exec per item, or remove batch",
        "nodes.c.batch.strategy: unknown batch strategy 'nope'; use one of async, async_batch, batch, "
        "parallel, parallel_batch, sequential, worker_pool, worker_pool_batch",
        "nodes.c.max_retries: must be >= 1, got 0",
    ]
    assert messages("metadata: {}\nnodes: {a: {}}") == [
        "metadata.name: a flowrunner document needs metadata.name (a string)"
    ]


def _walk(schema: dict[str, Any], path: str, visit: Any) -> None:
    visit(schema, path)
    for name, sub in schema.get("properties", {}).items():
        _walk(sub, f"{path}.{name}", visit)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _walk(schema[key], f"{path}[{key}]", visit)


def test_the_json_schema_is_structural_and_documented() -> None:
    schema = flow_spec_json_schema()
    text = json.dumps(schema)
    for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", '"title"'):
        assert forbidden not in text

    def visit(node: dict[str, Any], path: str) -> None:
        assert node.get("description"), f"{path} has no description"
        typed = (
            "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("x-kubernetes-int-or-string"):
            assert "default" not in node, path

    def visit_props(node: dict[str, Any], path: str) -> None:
        if path.endswith(("[items]", "[additionalProperties]")):
            return
        visit(node, path)

    _walk(schema, "spec", visit_props)
    props = schema["properties"]
    assert props["params"]["x-kubernetes-preserve-unknown-fields"] is True
    node = props["nodes"]["additionalProperties"]
    assert node["properties"]["timeout"]["x-kubernetes-int-or-string"] is True
    assert node["properties"]["run"]["x-kubernetes-preserve-unknown-fields"] is True
    assert node["properties"]["run"]["properties"]["http"]["properties"]["json"]["x-kubernetes-preserve-unknown-fields"]
    assert node["properties"]["retry"]["properties"]["backoff"]["enum"] == ["fixed", "exponential"]
    assert set(props) == {
        "description",
        "start",
        "params",
        "paramSchema",
        "maxSteps",
        "nodes",
        "finally",
        "pod",
        "concurrency",
        "history",
    }
