"""The contract of durable runs on the FlowRun side: ``spec.store``, ``retryOf``/``resubmit`` and
``status.store``, as the models, the CRD's CEL rules and the views state them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flowlib_api.meta import FLOWRUNS
from flowlib_api.resources import (
    OPERATOR_FIELDS,
    RESUBMIT_NEEDS_RETRY,
    RUNNER_FIELDS,
    SPEC_RULES,
    FlowRunSpec,
    SpecKey,
    StatusKey,
    flow_source_problem,
    retried_spec,
)
from flowlib_api.storespec import StoreLocation
from flowlib_api.views import FlowRunView

ROOT = Path(__file__).resolve().parents[2]
INLINE = {"nodes": {"a": {}}}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"retryOf": "first"}, None),
        ({"retryOf": "first", "resubmit": True}, None),
        ({"retryOf": "first", "flowRef": {"name": "fixed"}}, None),
        ({"retryOf": "first", "flow": INLINE}, None),
        ({"retryOf": "first", "flowRef": {"name": "f"}, "flow": INLINE}, "set exactly one of spec.flowRef"),
        ({"flowRef": {"name": "f"}, "resubmit": True}, "spec.resubmit starts a retry over"),
        ({"flowRef": {"name": "f"}, "resubmit": False}, None),
        ({"flowRef": {}}, "spec.flowRef.name: name the Flow to run"),
        ({"resubmit": True}, "set exactly one of spec.flowRef"),
    ],
)
def test_a_retry_may_leave_its_definition_out(spec: dict[str, Any], problem: str | None) -> None:
    found = flow_source_problem(spec)
    if problem is None:
        assert found is None
        FlowRunSpec.model_validate(spec)
    else:
        assert found is not None and problem in found, found
        with pytest.raises(ValidationError):
            FlowRunSpec.model_validate(spec)


def _flowrun_crd_spec() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"{FLOWRUNS.plural}.{FLOWRUNS.group}.yaml").read_text(encoding="utf-8"))
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def test_the_crd_states_the_same_rules_and_fields() -> None:
    spec = _flowrun_crd_spec()
    for rule in SPEC_RULES:
        assert rule.cel() in spec["x-kubernetes-validations"]
    assert RESUBMIT_NEEDS_RETRY.message.startswith("spec.resubmit")
    props = spec["properties"]
    assert props[SpecKey.RETRY_OF]["maxLength"] == 253 and props[SpecKey.RETRY_OF]["minLength"] == 1
    assert props[SpecKey.RESUBMIT]["type"] == "boolean"
    store = props[SpecKey.STORE]
    assert set(store["properties"]) >= {"type", "s3", "pvc", "enabled", "checkpointItems", "checkpointSeconds"}
    assert store["properties"]["type"]["enum"] == ["configmap", "s3", "pvc"]
    assert "default" not in store["properties"]["type"]  # the operator's default applies, not the schema's
    for name in (SpecKey.STORE, SpecKey.RETRY_OF, SpecKey.RESUBMIT):
        assert props[name]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf", name


def test_status_store_is_the_operators() -> None:
    assert StatusKey.STORE == "store"
    assert StatusKey.STORE in OPERATOR_FIELDS and StatusKey.STORE not in RUNNER_FIELDS


def test_views_read_the_store_and_the_retry() -> None:
    location = StoreLocation("configmap", "first-store", namespace="team")
    source = FlowRunView(
        {
            "metadata": {"name": "first", "namespace": "team"},
            "spec": {"flowRef": {"name": "f"}, "store": {"type": "configmap"}},
            "status": {"phase": "Failed", "store": location.status()},
        }
    )
    assert source.store_ref == location.to_json()
    assert StoreLocation.from_json(source.store_ref or "") == location
    assert source.store_spec == {"type": "configmap"} and source.own_definition
    assert (source.retry_of, source.resubmit) == (None, False)
    retry = FlowRunView({"metadata": {"name": "again"}, "spec": {"retryOf": "first", "resubmit": True}})
    assert (retry.retry_of, retry.resubmit, retry.own_definition, retry.store_ref) == ("first", True, False, None)
    assert FlowRunView({"status": {"store": "not an object"}}).store is None


def test_a_retry_inherits_input_params_and_outputs_it_leaves_out() -> None:
    source = {"flowRef": {"name": "f"}, "input": {"a": 1}, "params": {"p": 2}, "outputs": ["x"], "timeout": "1h"}
    assert retried_spec({"retryOf": "first"}, source) == {
        "retryOf": "first",
        "input": {"a": 1},
        "params": {"p": 2},
        "outputs": ["x"],
    }
    own = {"retryOf": "first", "input": {"a": 9}, "outputs": []}
    assert retried_spec(own, source) == {**own, "params": {"p": 2}}
