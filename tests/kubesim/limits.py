"""The size and shape limits a real API server enforces, in one place.

- Request bodies: at most 3 MiB (``MaxRequestBodyBytes`` of k8s.io/apiserver's server config; 413
  ``RequestEntityTooLarge``, "limit is 3145728").
- ConfigMap and Secret data: at most 1 MiB in all (``MaxSecretSize`` of pkg/apis/core; validation).
- What etcd stores: at most 1.5 MiB a request (etcd's default ``--max-request-bytes``); the API
  server passes etcd's refusal on as a 500 "etcdserver: request is too large"
  (kubernetes/kubernetes#112152 asks for a better code; none exists yet).
- Annotations: at most 256 KiB in all, keys and values (``TotalAnnotationSizeLimitB`` of
  apimachinery's ``ValidateAnnotationsSize``; 422 "metadata.annotations: Too long"). This is what
  makes client-side ``kubectl apply`` fail for objects over 256 KiB (its last-applied annotation).
- Nesting: Go's JSON decoder stops at 10,000 levels; the simulator, in Python, handles fewer and
  answers 400 beyond ``MAX_NESTING`` instead of failing with its own recursion limit (a 500).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError, bad_request

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DATA_BYTES = 1024 * 1024
MAX_STORED_BYTES = 1536 * 1024
MAX_NESTING = 500
MAX_ANNOTATION_BYTES = 256 * 1024


def annotations_size(annotations: dict[str, str]) -> int:
    """Bytes of keys and values together, as the API server counts them."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())


def body_too_large() -> ApiError:
    """413, as the API server answers a body over the limit."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}")


def check_body_size(raw: bytes) -> None:
    if len(raw) > MAX_BODY_BYTES:
        raise body_too_large()


def nesting(value: Any) -> int:
    """How deep ``value`` nests (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        stack.extend((child, depth) for child in children)
    return deepest


def check_nesting(value: Any) -> None:
    if nesting(value) > MAX_NESTING:
        raise bad_request(
            f"the request body nests deeper than {MAX_NESTING} levels, which kubesim cannot hold "
            "(a real API server decodes up to 10000)"
        )


def check_stored_size(obj: Any) -> None:
    """What etcd would refuse: the object as stored (JSON, as custom resources are) over 1.5 MiB."""
    size = len(json.dumps(obj, separators=(",", ":")).encode())
    if size > MAX_STORED_BYTES:
        raise ApiError(500, "InternalError", "etcdserver: request is too large")
