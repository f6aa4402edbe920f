"""The operator↔runner contract (``flowlib_api``): one writer and one reader for each format, the
rules the CRD's CEL is generated from, and the field ownership both sides follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from flowlib_api.meta import FLOWRUNS, GROUP_VERSION, LABEL_FLOWRUN, ResourceRef
from flowlib_api.resources import (
    ONE_FLOW_SOURCE,
    OPERATOR_FIELDS,
    RUNNER_FIELDS,
    FlowRunSpec,
    FlowRunStatus,
    StatusKey,
    flow_source_problem,
    transition_time,
)
from flowlib_api.runnerpod import TERMINATION_LIMIT, Snapshot, read_termination_message, termination_message
from flowlib_api.text import shorten
from flowlib_api.times import rfc3339_millis, run_duration
from flowlib_api.views import FlowRunView

ROOT = Path(__file__).resolve().parents[2]


def test_the_snapshot_reads_back_what_was_written() -> None:
    snapshot = Snapshot("main", {"nodes": {"a": {}}}, {"sub": {"nodes": {"b": {}}}})
    text = snapshot.to_json()
    again = Snapshot.from_json(text)
    assert (again.name, dict(again.spec), dict(again.library)) == ("main", {"nodes": {"a": {}}}, snapshot.library)
    assert again.manifest() == {
        "apiVersion": GROUP_VERSION,
        "kind": "Flow",
        "metadata": {"name": "main"},
        "spec": {"nodes": {"a": {}}},
    }
    assert text == Snapshot("main", {"nodes": {"a": {}}}, {"sub": {"nodes": {"b": {}}}}).to_json()  # stable


@pytest.mark.parametrize("text", ["", "[]", '{"metadata": 3}', "not json"])
def test_a_broken_snapshot_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Snapshot.from_json(text)


def test_the_termination_message_fits_and_reads_back() -> None:
    status = {"phase": "Failed", "message": "x" * 10_000, "startTime": "2026-01-01T00:00:00Z", "nodes": {"a": {}}}
    text = termination_message(status)
    assert len(text.encode()) <= TERMINATION_LIMIT
    read = read_termination_message(text)
    assert read is not None
    assert read["phase"] == "Failed" and read["startTime"] == "2026-01-01T00:00:00Z" and "nodes" not in read
    assert read_termination_message(json.dumps({"phase": "Running"})) is None  # not a final status
    assert read_termination_message("Error: exit 1") is None
    assert read_termination_message(None) is None


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ({"flowRef": {"name": "f"}}, True),
        ({"flow": {"nodes": {"a": {}}}}, True),
        ({}, False),
        ({"flowRef": {"name": "f"}, "flow": {"nodes": {"a": {}}}}, False),
        ({"flowRef": {}}, False),
    ],
)
def test_exactly_one_flow_source_in_python_and_in_the_model(spec: dict[str, object], ok: bool) -> None:
    assert (flow_source_problem(spec) is None) is ok
    if ok:
        FlowRunSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError):
            FlowRunSpec.model_validate(spec)


def test_the_crd_rules_are_generated_from_the_contract() -> None:
    crd = yaml.safe_load((ROOT / "crds" / f"{FLOWRUNS.plural}.{FLOWRUNS.group}.yaml").read_text(encoding="utf-8"))
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert ONE_FLOW_SOURCE.cel() in spec["x-kubernetes-validations"]
    immutable = [name for name, schema in spec["properties"].items() if "x-kubernetes-validations" in schema]
    assert sorted(immutable) == sorted([*FlowRunSpec.immutable_fields(), "cancel", "approvals"])
    paths = {column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert f".status.{StatusKey.JOB_NAME}" in paths and f".status.{StatusKey.POD_NAME}" in paths


def test_every_status_field_has_one_owner() -> None:
    wire = {field.alias or name for name, field in FlowRunStatus.model_fields.items()}
    assert not set(RUNNER_FIELDS) & set(OPERATOR_FIELDS)
    assert set(RUNNER_FIELDS) | set(OPERATOR_FIELDS) == wire
    assert StatusKey.JOB_NAME in OPERATOR_FIELDS and StatusKey.NODES in RUNNER_FIELDS


def test_views_read_defaults_from_empty_bodies() -> None:
    run = FlowRunView({"metadata": {"name": "r", "namespace": "ns"}})
    assert run.key == ("ns", "r")
    assert (run.phase, run.job_name, run.attempt, run.retries, run.finished) == (None, None, 0, 0, False)
    assert (run.cancel_requested, run.input, run.outputs, run.flow_ref) == (False, {}, [], None)
    done = FlowRunView({"status": {StatusKey.PHASE: "Cancelled", StatusKey.ATTEMPT: 2}, "spec": {"retries": 3}})
    assert (done.finished, done.attempt, done.retries) == (True, 2, 3)


def test_transition_time_is_kept_while_the_condition_stays() -> None:
    previous = [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "lastTransitionTime": "T0"}]
    assert transition_time(previous, "Succeeded", "Unknown", "T1", "Running") == "T0"
    assert transition_time(previous, "Succeeded", "Unknown", "T1", "JobCreated") == "T1"
    assert transition_time(previous, "Succeeded", "True", "T1") == "T1"
    assert transition_time(None, "Ready", "True", "T1") == "T1"


def test_times_and_refs() -> None:
    assert run_duration("2026-01-01T00:00:00Z", "2026-01-01T00:01:12.400Z") == "1m12s"
    assert run_duration(None, "2026-01-01T00:00:00Z") is None
    assert rfc3339_millis(0.5) == "1970-01-01T00:00:00.500Z"
    assert FLOWRUNS.path("ns", "r", "status") == f"/apis/{GROUP_VERSION}/namespaces/ns/flowruns/r/status"
    assert ResourceRef("", "v1", "pods").path("a b") == "/api/v1/namespaces/a%20b/pods"
    assert f"{FLOWRUNS.group}/flowrun" == LABEL_FLOWRUN


def test_shortened_text_fits_its_bound_whatever_is_cut() -> None:
    for size in (100, 9_000, 30_000, 2_000_000):
        for limit in (64, 1024, 8192):
            text = "é" * size
            cut = shorten(text, limit)
            assert len(cut.encode()) <= limit, (size, limit)
            assert cut == text or cut.endswith(" bytes cut]")
