"""Run stores: where a run keeps its checkpoints, big outputs and log (see ``base.py``).

Backends: ``DirectoryStore`` (a folder: a mounted PVC, or ``flowctl run --store DIR``),
``ConfigMapStore`` (ConfigMaps owned by the FlowRun) and ``S3Store`` (an S3-compatible bucket;
boto3 is imported only when one is used); ``open_store`` picks one for a ``StoreLocation``.

The backends and ``open_store`` are imported on first use (module ``__getattr__``): a run uses one
backend, and the interface alone (``base``) is what most importers need (the configmap backend
brings aiohttp, about 90 ms, to a program that has no Kubernetes client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import MAX_NAME_LENGTH, RunStore, StoreError, StoreFull, check_name, put

if TYPE_CHECKING:
    from .configmap import ConfigMapStore
    from .directory import DirectoryStore
    from .open import open_store
    from .s3 import S3Store

_LAZY = {"ConfigMapStore": "configmap", "DirectoryStore": "directory", "open_store": "open", "S3Store": "s3"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "MAX_NAME_LENGTH",
    "ConfigMapStore",
    "DirectoryStore",
    "RunStore",
    "S3Store",
    "StoreError",
    "StoreFull",
    "check_name",
    "open_store",
    "put",
]
