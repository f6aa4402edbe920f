"""kopf's last-handled state of each object, kept small enough for any Flow or FlowRun.

kopf remembers what it last handled in an annotation (the "diff base"), by default the object's whole
spec. Kubernetes caps all annotations of an object at 256 KiB, while a Flow or an inline FlowRun
may be about 1.5 MiB: with the default, kopf's patch of a big object is refused (422) and its
handlers fail for ever. The operator only needs to know *that* a Flow's spec changed (it validates
the body it is given) and the exact old value of ``spec.cancel``, so spec fields whose JSON is
longer than ``EXACT_LIMIT`` are remembered by digest: a change still shows as a change in that field.
Metadata is left out: no handler acts on a change of labels or annotations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import kopf

EXACT_LIMIT = 256
"""Spec fields up to this many bytes of JSON are kept as they are (``cancel``, ``flowRef``, ...)."""


def compact(value: Any) -> Any:
    """``value`` itself when short, else a digest that changes whenever it does."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) <= EXACT_LIMIT:
        return value
    return {"sha256": hashlib.sha256(text.encode()).hexdigest()}


class CompactDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation storage, with each long spec field replaced by its digest."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        essence = super().build(body=body, extra_fields=extra_fields)
        # Every handler watches spec fields only: labels and annotations in the diff base would cost
        # one more patch each time they change (the operator's own flowlib.dev/flow label included).
        essence.pop("metadata", None)
        spec = essence.get("spec")
        if isinstance(spec, dict):
            essence["spec"] = {key: compact(value) for key, value in spec.items()}
        return essence
