"""The three patch formats of https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/.

JSON merge patch (RFC 7386), JSON patch (RFC 6902, ``test`` included) and strategic merge patch.
The strategic variant knows the merge keys of the built-in fields our workloads use; a real server
derives them from Go struct tags, custom resources get 415 (as on a real server).
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

JSON = dict[str, Any]

# Field name -> merge key for lists merged by key in strategic merge patches (patchStrategy=merge).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "imagePullSecrets": "name",
    "tolerations": "key",
    "hostAliases": "ip",
    "subsets": "",
}
# Primitive lists with patchStrategy=merge: merged as sets.
MERGE_PRIMITIVE_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: path {path!r} does not exist",
            )
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise ApiError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: path {path!r} does not exist",
    )


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ApiError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: unable to remove nonexistent key: {path}",
    )


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request: "
                f"replace operation does not apply: doc is missing key: {path}",
            )
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(copy.deepcopy(value))
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = copy.deepcopy(value)
            else:
                parent.insert(int(last), copy.deepcopy(value))
        else:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: index out of range: {path}",
            )
    else:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: path {path!r} does not exist",
        )
    return doc


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise ApiError(400, "BadRequest", f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, op.get("value"))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, op.get("value"), replace=True)
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, _get(doc, op["from"]))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: testing value {path} failed",
                )
        else:
            raise ApiError(400, "BadRequest", f"Unexpected kind: {kind}")
    return doc


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for built-in objects (directives: $patch, $setElementOrder,
    $deleteFromPrimitiveList, $retainKeys)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [x for x in result[name] if x not in value]
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and MERGE_KEYS[key]:
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key], orders.get(key))
        elif isinstance(value, list) and key in MERGE_PRIMITIVE_LISTS:
            merged = list(result.get(key) or [])
            merged.extend(x for x in value if x not in merged)
            result[key] = merged
        elif isinstance(value, dict):
            merged_value = strategic_merge_patch(result.get(key), value)
            if merged_value is None:
                result.pop(key, None)
            else:
                result[key] = merged_value
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str, order: list[Any] | None) -> list[Any]:
    items = [copy.deepcopy(x) for x in current]
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            items.append(copy.deepcopy(element))
            continue
        index = next((i for i, x in enumerate(items) if isinstance(x, dict) and x.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                items.pop(index)
            continue
        if index is None:
            items.append(strategic_merge_patch({}, element))
        else:
            items[index] = strategic_merge_patch(items[index], element)
    if order:
        rank = {str(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
        items.sort(key=lambda x: rank.get(str(x.get(key)) if isinstance(x, dict) else "", len(rank)))
    return items
