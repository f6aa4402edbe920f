"""Run stores: where a run keeps its checkpoints, big outputs and log (see ``base.py``).

Backends: ``DirectoryStore`` (a folder: a mounted PVC, or ``flowctl run --store DIR``),
``ConfigMapStore`` (ConfigMaps owned by the FlowRun) and ``S3Store`` (an S3-compatible bucket;
boto3 is imported only when one is used); ``open_store`` picks one for a ``StoreLocation``.
"""

from .base import MAX_NAME_LENGTH, RunStore, StoreError, StoreFull, check_name, put
from .configmap import ConfigMapStore
from .directory import DirectoryStore
from .open import open_store
from .s3 import S3Store

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
