"""Each item of a batch sub-flow runs in a scope of its own.

Why: items that run at once (``maxParallel``) must not see each other's writes, as Argo and Tekton
steps have isolated inputs and outputs. An ``ItemScope`` reads the parent's store as it was when
the batch started (each value deep-copied on its first read, so an item can neither change the
parent's values nor another item's), and keeps every write to itself. What the item wrote — the
keys it set, changed or deleted — is its result.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

_MISSING = object()


class ItemScope(dict[str, Any]):
    """A shared store over a frozen ``base``: reads fall through (copied), writes stay here."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        super().__init__()
        self._base = base
        self._deleted: set[str] = set()
        self._set: set[str] = set()

    # -- reads ------------------------------------------------------------------------------

    def __missing__(self, key: str) -> Any:
        if key in self._deleted or key not in self._base:
            raise KeyError(key)
        value = copy.deepcopy(self._base[key])
        dict.__setitem__(self, key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (key in self._base and key not in self._deleted)

    def _all_keys(self) -> list[str]:
        own = list(dict.keys(self))
        seen = set(own)
        return own + [k for k in self._base if k not in seen and k not in self._deleted]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all_keys())

    def __len__(self) -> int:
        return len(self._all_keys())

    def keys(self) -> Any:
        return self._all_keys()

    def items(self) -> Any:
        return [(k, self[k]) for k in self._all_keys()]

    def values(self) -> Any:
        return [self[k] for k in self._all_keys()]

    def copy(self) -> dict[str, Any]:
        return dict(self.items())

    # -- writes -----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._deleted.discard(key)
        self._set.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        if dict.__contains__(self, key):
            dict.__delitem__(self, key)
        self._set.discard(key)
        if key in self._base:
            self._deleted.add(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    # -- the item's result ------------------------------------------------------------------

    def written(self) -> dict[str, Any]:
        """The keys this item set, the values it read and changed in place, and the keys it
        deleted (as None)."""
        out: dict[str, Any] = {}
        for key in dict.keys(self):
            value = dict.__getitem__(self, key)
            if key in self._set or key not in self._base or self._base[key] != value:
                out[key] = value
        for key in self._deleted:
            out[key] = None
        return out
