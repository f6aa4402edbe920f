"""Unit tests of the pure parts: the CEL subset, selectors, patches and schema pruning."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.kubesim import cel
from tests.kubesim.errors import ApiError
from tests.kubesim.patch import json_patch, merge_patch, strategic_merge_patch
from tests.kubesim.selectors import parse_label_selector
from tests.kubesim.tables import human_duration, jsonpath


def ev(rule: str, self: Any, old: Any = None) -> Any:
    env = {"self": self}
    if old is not None:
        env["oldSelf"] = old
    return cel.evaluate(cel.compile_rule(rule), env)


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("has(self.a) != has(self.b)", {"a": 1}, True),
        ("has(self.a) != has(self.b)", {"a": 1, "b": 2}, False),
        ("has(self.a) != has(self.b)", {}, False),
        ("self.size() <= 3", [1, 2], True),
        ("size(self.name) > 2 && self.name.startsWith('ab')", {"name": "abc"}, True),
        ("self.x > 1 ? self.y == 'big' : true", {"x": 2, "y": "big"}, True),
        ("self.all(t, t.matches('^[a-z]+$'))", ["ab", "c"], True),
        ("self.exists(t, t == 'c')", ["ab", "c"], True),
        ("'c' in self", ["ab", "c"], True),
        ("!has(self.a) || self.a.b == 1", {}, True),
        ("self.missing == 1 || true", {}, True),
        ("self.n % 2 == 0 && -self.n < 0", {"n": 4}, True),
    ],
)
def test_cel_subset(rule: str, value: Any, expected: bool) -> None:
    assert ev(rule, value) is expected


def test_cel_transition_rules_and_errors() -> None:
    rule = cel.compile_rule("self == oldSelf")
    assert cel.uses_old_self(rule) and not cel.uses_old_self(cel.compile_rule("self.a == 1"))
    assert ev("self == oldSelf", {"a": 1}, {"a": 1}) is True
    with pytest.raises(cel.CelError, match="no such key"):
        ev("self.missing == 1", {})
    with pytest.raises(cel.CelError):
        cel.compile_rule("self.(")
    with pytest.raises(cel.CelError):
        ev("self.a && true", {"a": 1})


def test_label_selector_syntax() -> None:
    obj = {"metadata": {"labels": {"env": "prod", "tier": "web"}}}
    assert parse_label_selector("env=prod,tier in (web, db)")(obj)
    assert parse_label_selector("env!=dev,!missing")(obj)
    assert not parse_label_selector("env notin (prod)")(obj)
    with pytest.raises(ApiError):
        parse_label_selector("env in prod)")


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
        ],
    )
    assert out == {"a": [2, 3], "b": {}, "d": 1, "e": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(ApiError) as info:
        json_patch(doc, [{"op": "replace", "path": "/zzz", "value": 1}])
    assert info.value.code == 422


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    pod = {
        "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]},
        "metadata": {"finalizers": ["x"]},
    }
    patch = {
        "spec": {"containers": [{"name": "b", "image": "3"}, {"name": "a", "$patch": "delete"}]},
        "metadata": {"finalizers": ["y"]},
    }
    out = strategic_merge_patch(pod, patch)
    assert out["spec"]["containers"] == [{"name": "b", "image": "3"}]
    assert out["metadata"]["finalizers"] == ["x", "y"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
)
def test_merge_patch_rfc7386_properties(target: dict[str, Any], patch: dict[str, Any]) -> None:
    out = merge_patch(target, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in out
        elif not isinstance(value, dict):
            assert out[key] == value
    assert merge_patch(out, patch) == out  # applying the same merge patch twice changes nothing more


def test_jsonpath_and_durations() -> None:
    obj = {"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]}, "l": [1, 2]}
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".l[*]") == [1, 2] and jsonpath(obj, ".l[1]") == [2] and jsonpath(obj, ".nope") == []
    import datetime as dt

    assert human_duration(dt.timedelta(seconds=5)) == "5s"
    assert human_duration(dt.timedelta(minutes=5, seconds=3)) == "5m3s"
    assert human_duration(dt.timedelta(hours=3)) == "3h"
    assert human_duration(dt.timedelta(days=3, hours=2)) == "3d2h"


def test_rbac_escalation_coverage() -> None:
    from tests.kubesim.rbac import escalation

    admin = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    wanted = [{"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"], "verbs": ["get", "patch"]}]
    assert escalation(admin, wanted) == []
    status_only = [{"apiGroups": ["batch"], "resources": ["*/status"], "verbs": ["get", "patch"]}]
    assert [r["resources"] for r in escalation(status_only, wanted)] == [["jobs"], ["jobs"]]
    named = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}]
    assert (
        escalation(named, [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}])
        == []
    )
    assert escalation(named, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]) != []
    urls = [{"nonResourceURLs": ["/metrics*"], "verbs": ["get"]}]
    assert escalation(urls, [{"nonResourceURLs": ["/metrics/x"], "verbs": ["get"]}]) == []
    assert escalation(urls, [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]) != []
