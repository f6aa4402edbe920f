"""What a real API server refuses on the write path, refused here the same way: immutable
ConfigMaps and Secrets, size limits, unconditional updates of custom resources, and bodies nested
too deep (answered with a 4xx, never the simulator's own 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kubesim import Simulator
from tests.kubesim.limits import MAX_NESTING

from .helpers import Raw, install_widgets, widget

pytestmark = pytest.mark.kubesim
CM = "/api/v1/namespaces/default/configmaps"
SECRETS = "/api/v1/namespaces/default/secrets"
WD = "/apis/test.kubesim.dev/v1alpha1/namespaces/default/widgets"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with Simulator(workdir=tmp_path_factory.mktemp("refusals")) as s:
        install_widgets(s)
        yield s


def inline(name: str, flow: Any) -> dict[str, Any]:
    """A Widget carrying ``flow`` (an opaque, preserve-unknown-fields island) instead of flowRef."""
    body = widget(name, flow=flow)
    del body["spec"]["flowRef"]
    return body


def causes(reply: Any) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in reply.body["details"]["causes"]]


def test_immutable_configmaps_and_secrets_refuse_changes(sim: Simulator) -> None:
    """https://kubernetes.io/docs/concepts/configuration/configmap/#configmap-immutable and
    https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable: once ``immutable``
    is true, data and ``immutable`` itself cannot change (422); metadata still can."""
    raw = Raw(sim)
    assert raw.post(CM, {"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True}).status == 201
    changed = raw.patch(f"{CM}/frozen", {"data": {"a": "2"}}, content_type=MERGE)
    assert changed.status == 422
    assert causes(changed) == [("data", "Forbidden: field is immutable when `immutable` is set")]
    thawed = raw.patch(f"{CM}/frozen", {"immutable": False}, content_type=MERGE)
    assert thawed.status == 422 and ("immutable", "Forbidden: field is immutable when `immutable` is set") in causes(
        thawed
    )
    assert raw.patch(f"{CM}/frozen", {"metadata": {"labels": {"x": "y"}}}, content_type=MERGE).status == 200
    assert raw.get(f"{CM}/frozen").body["data"] == {"a": "1"}
    secret = {"metadata": {"name": "sealed"}, "stringData": {"pw": "one"}, "immutable": True}
    assert raw.post(SECRETS, secret).status == 201
    again = raw.patch(f"{SECRETS}/sealed", {"stringData": {"pw": "two"}}, content_type=MERGE)
    assert again.status == 422 and causes(again)[0][0] == "data"
    same = raw.patch(f"{SECRETS}/sealed", {"stringData": {"pw": "one"}}, content_type=MERGE)
    assert same.status == 200  # the same bytes: nothing changed
    retyped = raw.patch(f"{SECRETS}/sealed", {"type": "kubernetes.io/tls"}, content_type=MERGE)
    assert retyped.status == 422 and ("type", "Invalid value: field is immutable") in causes(retyped)
    # A mutable ConfigMap can still change, and may become immutable.
    raw.post(CM, {"metadata": {"name": "soft"}, "data": {"a": "1"}})
    assert raw.patch(f"{CM}/soft", {"data": {"a": "2"}, "immutable": True}, content_type=MERGE).status == 200


def test_size_limits(sim: Simulator) -> None:
    """Request bodies over 3 MiB get 413 (the API server's MaxRequestBodyBytes); ConfigMap and
    Secret data over 1 MiB is invalid (https://kubernetes.io/docs/concepts/configuration/configmap/:
    "The data stored in a ConfigMap cannot exceed 1 MiB"); an object etcd cannot store (over its
    1.5 MiB request limit) fails as etcd's refusal does."""
    raw = Raw(sim)
    big = raw.post(CM, {"metadata": {"name": "huge"}, "data": {"a": "x" * (3 * 1024 * 1024 + 1)}})
    assert big.status == 413 and big.body["reason"] == "RequestEntityTooLarge"
    assert "limit is 3145728" in big.body["message"]
    over = raw.post(CM, {"metadata": {"name": "over"}, "data": {"a": "x" * (1024 * 1024 + 1)}})
    assert over.status == 422 and causes(over) == [("[]", "Too long: must have at most 1048576 bytes")]
    assert raw.post(CM, {"metadata": {"name": "fits"}, "data": {"a": "x" * (1024 * 1024 - 10)}}).status == 201
    secret = raw.post(SECRETS, {"metadata": {"name": "over"}, "stringData": {"a": "x" * (1024 * 1024 + 1)}})
    assert secret.status == 422 and causes(secret)[0][0] == "data"
    heavy = inline("heavy", {"blob": "x" * (1600 * 1024)})
    stored = raw.post(WD, heavy)
    assert stored.status == 500 and stored.body["message"] == "etcdserver: request is too large"
    assert raw.get(f"{WD}/heavy").status == 404


def test_a_number_outside_its_go_integer_is_a_bad_request(sim: Simulator) -> None:
    """Built-in objects decode into Go structs: ``activeDeadlineSeconds`` (int64) of 3.6e33 is a 400,
    as a real API server answers, so a test sees the Job a 30-digit ``timeout`` would give."""
    raw = Raw(sim)
    container = {"name": "c", "image": "busybox"}
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}

    def job(name: str, deadline: int) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"activeDeadlineSeconds": deadline, "template": template}}

    jobs = "/apis/batch/v1/namespaces/default/jobs"
    huge = raw.post(jobs, job("huge", 36 * 10**32))
    assert huge.status == 400 and huge.body["reason"] == "BadRequest", huge.body
    assert "cannot unmarshal number 3600000000000000000000000000000000 into Go struct field" in huge.body["message"]
    assert "activeDeadlineSeconds of type int64" in huge.body["message"]
    assert raw.post(jobs, job("fits", 2**63 - 1)).status == 201
    retries = raw.post(jobs, {**job("retries", 60), "spec": {"backoffLimit": 2**31, "template": template}})
    assert retries.status == 400 and "backoffLimit of type int32" in retries.body["message"]


def test_custom_resources_refuse_unconditional_updates(sim: Simulator) -> None:
    """Custom resources disallow PUT without ``metadata.resourceVersion``, on the resource and on
    /status (https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply and the CR
    registry strategy's AllowUnconditionalUpdate, false); ConfigMaps allow it."""
    raw = Raw(sim)
    created = raw.post(WD, widget("w1")).body
    body = {k: v for k, v in created.items() if k != "status"}
    body["metadata"] = {"name": "w1", "namespace": "default"}
    for path in (f"{WD}/w1", f"{WD}/w1/status"):
        refused = raw.put(path, body)
        assert refused.status == 422, path
        assert causes(refused) == [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")]
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    assert raw.put(f"{WD}/w1", body).status == 200
    raw.post(CM, {"metadata": {"name": "plain"}, "data": {"a": "1"}})
    assert raw.put(f"{CM}/plain", {"metadata": {"name": "plain"}, "data": {"a": "2"}}).status == 200


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_deep_nesting_is_a_client_error_not_a_server_crash(sim: Simulator) -> None:
    """The simulator holds what a client sends up to ``MAX_NESTING`` levels and answers 400 beyond
    (Go's decoder in a real server stops at 10000); never a 500 from its own recursion."""
    raw = Raw(sim)
    deep_ok = raw.post(WD, inline("deep-ok", _nested(MAX_NESTING - 10)))
    assert deep_ok.status == 201, deep_ok.body
    assert json.dumps(raw.get(f"{WD}/deep-ok").body["spec"]["flow"]).count("{") == MAX_NESTING - 10
    too_deep = raw.post(WD, inline("too-deep", _nested(600)))
    assert too_deep.status == 400 and "nests deeper" in too_deep.body["message"]
    patched = raw.patch(f"{WD}/deep-ok", {"spec": {"flow": _nested(600)}}, content_type=MERGE)
    assert patched.status == 400


def test_annotations_over_256_kib_are_invalid(sim: Simulator) -> None:
    """apimachinery's ValidateAnnotationsSize: keys and values together at most 256 KiB (422), on
    create and on update; this is why client-side ``kubectl apply`` cannot store big objects."""
    raw = Raw(sim)
    limit = 256 * 1024
    heavy = {"metadata": {"name": "noted", "annotations": {"a": "x" * limit}}, "data": {}}
    refused = raw.post(CM, heavy)
    assert refused.status == 422
    assert causes(refused) == [("metadata.annotations", f"Too long: must have at most {limit} bytes")]
    assert raw.post(CM, {"metadata": {"name": "noted", "annotations": {"a": "x" * (limit - 1)}}}).status == 201
    grown = raw.patch(f"{CM}/noted", {"metadata": {"annotations": {"b": "y"}}}, content_type=MERGE)
    assert grown.status == 422


def test_metadata_only_reads(sim: Simulator) -> None:
    """GET with ``as=PartialObjectMetadata``: the metadata and none of the data."""
    raw = Raw(sim)
    assert (
        raw.post(SECRETS, {"metadata": {"name": "meta-only", "labels": {"k": "v"}}, "stringData": {"pw": "x"}}).status
        == 201
    )
    accept = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    reply = raw.get(f"{SECRETS}/meta-only", headers={"Accept": accept})
    assert reply.status == 200
    assert reply.body["kind"] == "PartialObjectMetadata" and reply.body["apiVersion"] == "meta.k8s.io/v1"
    assert reply.body["metadata"]["labels"] == {"k": "v"}
    assert "data" not in reply.body
