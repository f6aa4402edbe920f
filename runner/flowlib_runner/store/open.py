"""``open_store``: the backend for a resolved ``StoreLocation`` (what the operator hands the runner,
or what ``flowctl run --store DIR`` makes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowlib_api.storespec import StoreLocation
from flowlib_runner.store.base import RunStore

if TYPE_CHECKING:
    from flowlib_runner.kube.client import KubeClient


def open_store(
    location: StoreLocation,
    *,
    client: KubeClient | None = None,
    owner: Mapping[str, Any] | None = None,
    fresh: bool = False,
    own_thread: bool = False,
) -> RunStore:
    """The store at ``location``. A configmap store needs ``client`` (and writes as the FlowRun
    ``owner``, so its ConfigMaps go with it; ``fresh``: it holds nothing yet, so it is not read);
    the others need neither. Opening makes no call: each backend connects on first use.
    ``own_thread``: the caller's event loop has a thread to itself (the checkpoint writer), so a
    directory store does its file I/O on it (see ``DirectoryStore``)."""
    # Each backend is imported when a location names it (a run uses one; see the package docstring).
    if location.type in ("directory", "pvc"):
        from flowlib_runner.store.directory import DirectoryStore

        return DirectoryStore(Path(location.root), own_thread=own_thread)
    if location.type == "configmap":
        if client is None or not location.namespace:
            raise ValueError(f"a configmap store ({location.description}) needs a Kubernetes client and a namespace")
        from flowlib_runner.store.configmap import ConfigMapStore

        return ConfigMapStore(client, location.namespace, location.root, owner, fresh=fresh)
    if location.type == "s3":
        if not location.bucket:
            raise ValueError(f"an s3 store ({location.description}) needs a bucket")
        from flowlib_runner.store.s3 import S3Store

        return S3Store(location.bucket, location.root, endpoint=location.endpoint, region=location.region)
    raise ValueError(f"unknown store type {location.type!r}")
