"""The status model: camelCase JSON, a structural CRD schema, and the 64 KiB bound."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowlib_api.runstatus import (
    DEFAULT_BUDGET,
    STATUS_LIMIT,
    ItemCounts,
    NodeState,
    RunStatus,
    bounded,
    json_safe,
)
from flowlib_api.text import shorten
from flowlib_api.times import rfc3339_millis as rfc3339


def _walk(schema: dict[str, Any], where: str = "status") -> list[tuple[str, dict[str, Any]]]:
    found = [(where, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += _walk(sub, f"{where}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk(schema["additionalProperties"], f"{where}.*")
    if "items" in schema:
        found += _walk(schema["items"], f"{where}[]")
    return found


def test_schema_is_structural_and_documented() -> None:
    schema = RunStatus.to_json_schema()
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text and "anyOf" not in text and '"title"' not in text
    for where, node in _walk(schema):
        assert node.get("type") in {"object", "string", "integer", "number", "boolean", "array"}, where
        if not where.endswith("[]"):  # list elements are described by their list
            assert node.get("description"), f"{where} has no description"
    props = schema["properties"]
    assert props["output"] == {
        "description": props["output"]["description"],
        "type": "object",
        "nullable": True,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert props["phase"]["enum"] == ["Queued", "Pending", "Running", "Suspended", "Succeeded", "Failed", "Cancelled"]
    node = props["nodes"]["additionalProperties"]
    assert {"phase", "attempts", "visits", "action", "message", "items", "durationSeconds"} <= set(node["properties"])
    assert node["properties"]["items"]["properties"]["total"]["nullable"] is True
    assert props["startTime"]["format"] == "date-time"


def test_json_is_camel_case_without_nulls() -> None:
    status = RunStatus(
        phase="Running",
        start_time=rfc3339(0),
        current_node="a",
        nodes={"a": NodeState(phase="Running", items=ItemCounts(total=3, done=1, failed=0), item_retries=2)},
    )
    data = json.loads(status.to_json())
    assert data["startTime"] == "1970-01-01T00:00:00.000Z"
    assert data["currentNode"] == "a"
    assert data["nodes"]["a"]["itemRetries"] == 2
    assert "completionTime" not in data and "message" not in data
    assert RunStatus.model_validate(data) == status


def test_small_status_is_returned_unchanged() -> None:
    status = RunStatus(phase="Succeeded", output={"a": 1}, nodes={"x": NodeState(phase="Succeeded")})
    assert bounded(status) is status


def test_huge_graph_collapses_node_states_keeping_the_interesting_ones() -> None:
    nodes = {f"node-{i:05d}": NodeState(phase="Succeeded", visits=1, message="m" * 200) for i in range(20_000)}
    nodes["node-19999"] = NodeState(phase="Failed", message="boom")
    nodes["node-10000"] = NodeState(phase="Running")
    status = bounded(RunStatus(phase="Running", nodes=nodes, progress="19999/20000"))
    size = len(status.to_json().encode())
    assert size <= DEFAULT_BUDGET < STATUS_LIMIT
    assert status.nodes["node-19999"].phase == "Failed"
    assert status.nodes["node-10000"].phase == "Running"
    assert 0 < len(status.nodes) < 20_000
    assert status.progress == "19999/20000"
    assert any("node states left out" in note and "Succeeded" in note for note in status.notes)


def test_huge_output_and_messages_are_shortened_with_notes() -> None:
    status = RunStatus(
        phase="Failed",
        message="é" * 100_000,
        output={"big": list(range(100_000)), "small": "kept", "text": "x" * 200_000},
        nodes={"a": NodeState(phase="Failed", message="z" * 50_000, action="y" * 10_000)},
    )
    out = bounded(status)
    assert len(out.to_json().encode()) <= DEFAULT_BUDGET
    assert out.output is not None and out.output["small"] == "kept"
    assert str(out.output["big"]).startswith("<")
    assert out.message is not None and out.message.startswith("é") and "bytes cut" in out.message
    assert len(out.nodes["a"].message or "") < 2000
    assert any("output value" in n for n in out.notes)


def test_many_output_keys_are_dropped_when_previews_do_not_suffice() -> None:
    status = RunStatus(phase="Succeeded", output={f"k{i}": i for i in range(50_000)})
    out = bounded(status)
    assert len(out.to_json().encode()) <= DEFAULT_BUDGET
    assert any("output keys left out" in n for n in out.notes)


_text = st.text(max_size=3000)
_node = st.builds(
    NodeState,
    phase=st.sampled_from(["Running", "Retrying", "Succeeded", "Failed", "Cancelled"]),
    message=st.none() | _text,
    action=st.none() | _text,
    visits=st.integers(0, 10**9),
)


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.dictionaries(st.text(min_size=1, max_size=300), _node, max_size=300),
    output=st.dictionaries(
        st.text(max_size=50), st.none() | _text | st.lists(st.integers(), max_size=500), max_size=40
    ),
    message=st.none() | st.text(max_size=100_000),
    budget=st.integers(4096, STATUS_LIMIT),
)
def test_any_status_fits_its_budget(
    nodes: dict[str, NodeState], output: dict[str, Any], message: str | None, budget: int
) -> None:
    status = RunStatus(phase="Running", nodes=nodes, output=output, message=message)
    out = bounded(status, budget)
    assert len(out.to_json().encode()) <= budget


def test_shorten_cuts_on_utf8_bytes() -> None:
    assert shorten("abc", 10) == "abc"
    cut = shorten("€" * 100, 50)
    assert len(cut.encode()) <= 50 + 30 and cut.startswith("€")


def test_json_safe_turns_objects_into_reprs() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    assert json_safe({"a": Thing(), "b": (1, 2), "c": {3}}) == {"a": "<thing>", "b": [1, 2], "c": [3]}
