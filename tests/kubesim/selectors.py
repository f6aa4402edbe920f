"""Label and field selectors, with the syntax described in
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/ and
https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request
from .meta import dig
from .resources import ResourceType

JSON = dict[str, Any]
Matcher = Callable[[JSON], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return terms


def _requirement(key: str, op: str, values: frozenset[str]) -> Callable[[dict[str, str]], bool]:
    """One label requirement; ops: ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``."""

    def check(labels: dict[str, str]) -> bool:
        present = key in labels
        if op == "=":
            return labels.get(key) in values
        if op == "!=":
            return labels.get(key) not in values
        if op == "in":
            return present and labels[key] in values
        if op == "notin":
            return not present or labels[key] not in values
        if op == "exists":
            return present
        return not present

    return check


def parse_label_selector(text: str | None) -> Matcher:
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text or ""):
        eq = _EQ_RE.match(term)
        if eq:
            key, op, value = eq.groups()
            checks.append(_requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
            continue
        st = _SET_RE.match(term)
        if not st:
            raise bad_request(f"unable to parse requirement: found '{term.strip()}', expected: label selector")
        neg, key, op, values = st.groups()
        if op:
            options = frozenset(v.strip() for v in values.split(",") if v.strip())
            checks.append(_requirement(key, op, options))
        else:
            checks.append(_requirement(key, "!" if neg else "exists", frozenset()))

    def match(obj: JSON) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def selector_to_matcher(selector: JSON | None) -> Matcher:
    """A ``metav1.LabelSelector`` (matchLabels/matchExpressions) as a matcher; None matches nothing."""
    if selector is None:
        return lambda _obj: False
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return parse_label_selector(",".join(parts))


def field_value(obj: JSON, label: str) -> str:
    value = dig(obj, *label.split("."))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None, rt: ResourceType) -> Matcher:
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        label, op, value = m.groups()
        if not rt.supports_field(label):
            raise bad_request(f"field label not supported: {label}")
        checks.append((label, op != "!=", value))

    if rt.view is not None:  # labels of the view, read from the stored shape
        checks = [(rt.view.fields.get(label, label), equal, value) for label, equal, value in checks]

    def match(obj: JSON) -> bool:
        return all((field_value(obj, label) == value) is equal for label, equal, value in checks)

    return match
