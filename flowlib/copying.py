"""A faster ``copy.copy`` for nodes.

PocketFlow copies every node before running it, so state a node keeps on ``self`` during one visit
never leaks into the graph's original objects. ``copy.copy`` goes through ``__reduce_ex__`` and
costs microseconds per node, which dominates a loop of trivial nodes. For an ordinary class (no
``__copy__``, ``__reduce__``, ``__getstate__``/``__setstate__``, ``__slots__`` or custom
``__new__``) ``copy.copy`` amounts to "new instance, same ``__dict__`` contents", which is what
this does directly; any other class still goes through ``copy.copy``, so the result is the same.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

T = TypeVar("T")

# Class -> whether shallow_copy may take the fast path; flows read it directly in their hot loop.
# Bounded: a program that makes node classes on the fly (the YAML runner makes one per node per
# build) would otherwise keep every one of them alive through this cache. When it is full it is
# emptied, and the classes still in use are looked at again on their next copy.
PLAIN_CLASSES: dict[type, bool] = {}
PLAIN_CLASSES_LIMIT = 1024
_OBJECT_HOOKS = ("__reduce_ex__", "__reduce__", "__getstate__")


def _is_plain(cls: type) -> bool:
    plain = PLAIN_CLASSES.get(cls)
    if plain is None:
        plain = (
            all(getattr(cls, hook) is getattr(object, hook) for hook in _OBJECT_HOOKS)
            and getattr(cls, "__setstate__", None) is None
            and getattr(cls, "__copy__", None) is None
            and getattr(cls, "__new__") is getattr(object, "__new__")  # noqa: B009 (typed as Any on purpose)
            and not any("__slots__" in vars(klass) for klass in cls.__mro__[:-1])
            and "__dict__" in dir(cls)
        )
        if len(PLAIN_CLASSES) >= PLAIN_CLASSES_LIMIT:
            PLAIN_CLASSES.clear()
        PLAIN_CLASSES[cls] = plain
    return plain


def shallow_copy(obj: T) -> T:
    """Same result as ``copy.copy(obj)``, several times faster for ordinary node classes."""
    if obj is None:
        return obj
    cls = type(obj)
    if _is_plain(cls):
        new: Any = object.__new__(cls)
        new.__dict__.update(obj.__dict__)
        return new  # type: ignore[no-any-return]
    return copy.copy(obj)
