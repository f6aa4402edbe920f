"""Small helpers for object metadata: names, timestamps, uids and JSON paths."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import uuid
from typing import Any

JSON = dict[str, Any]

# The alphabet Kubernetes uses for generateName suffixes (no vowels, no confusable digits).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(when: dt.datetime | None = None) -> str:
    """RFC 3339 with second precision, as metadata timestamps are serialised."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(when: dt.datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def deep(obj: Any) -> Any:
    """A deep copy of JSON data. Through the C JSON codec: several times faster than
    ``copy.deepcopy`` and good for the nesting ``limits.MAX_NESTING`` admits (deepcopy's Python
    recursion gives up near 330 levels); anything that is not JSON falls back to deepcopy."""
    try:
        return json.loads(json.dumps(obj, separators=(",", ":")))
    except (TypeError, ValueError):
        return copy.deepcopy(obj)


def validate_name(name: str, label_only: bool) -> str | None:
    """Return why ``name`` is not a valid object name, or None."""
    limit = 63 if label_only else 253
    pattern = DNS1123_LABEL if label_only else DNS1123_SUBDOMAIN
    if len(name) > limit:
        return f"must be no more than {limit} characters"
    if not pattern.match(name):
        kind = "RFC 1123 label" if label_only else "RFC 1123 subdomain"
        return (
            f"a lowercase {kind} must consist of lower case alphanumeric characters, '-'"
            + ("" if label_only else " or '.'")
            + ", and must start and end with an alphanumeric character"
        )
    return None


def validate_labels(labels: Any) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    if not isinstance(labels, dict):
        return causes
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[: -len(name) - 1] if "/" in key else ""
        if not _LABEL_NAME.match(name) or len(name) > 63 or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f"Invalid value: {key!r}: name part must be a valid label key",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    f"Invalid value: {value!r}: a valid label value must be 63 characters or less "
                    "and consist of alphanumerics, '-', '_' or '.'",
                )
            )
    return causes


def dig(obj: Any, *path: str | int) -> Any:
    """Follow ``path`` through dicts and lists; None when any step is missing."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step)
    return cur


def owner_reference(obj: JSON, controller: bool = True, block: bool = True) -> JSON:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": block,
    }
