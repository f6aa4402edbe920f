"""``open_store`` picks the backend of a location, and importing the stores stays cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.kube import ClusterConfig, KubeClient
from flowlib_runner.store import ConfigMapStore, DirectoryStore, S3Store, open_store

from flowlib_api.storespec import StoreLocation, StoreSpec, resolve


def _client() -> KubeClient:
    return KubeClient(ClusterConfig(host="https://127.0.0.1:1", ssl_context=False))


def test_each_type_opens_its_backend_at_the_location_status_shows() -> None:
    run: dict[str, Any] = {"namespace": "team", "run": "r1", "uid": "0123456789"}
    configmap = resolve(StoreSpec(), **run)
    s3 = resolve(StoreSpec.model_validate({"type": "s3", "s3": {"bucket": "bkt", "prefix": "/flows/"}}), **run)
    pvc = resolve(StoreSpec.model_validate({"type": "pvc", "pvc": {"claimName": "c"}}), **run)
    opened = [
        (open_store(configmap, client=_client()), ConfigMapStore, configmap),
        (open_store(s3), S3Store, s3),
        (open_store(pvc), DirectoryStore, pvc),
        (open_store(StoreLocation("directory", "/tmp/x")), DirectoryStore, StoreLocation("directory", "/tmp/x")),
    ]
    for store, kind, location in opened:
        assert isinstance(store, kind)
        assert store.location == location.description
    assert isinstance(opened[1][0], S3Store) and opened[1][0].prefix == "flows/team/r1-01234567/"
    assert isinstance(opened[2][0], DirectoryStore) and opened[2][0].root == Path(
        "/var/lib/flowlib/store/team/r1-01234567"
    )


def test_a_configmap_store_needs_a_client() -> None:
    with pytest.raises(ValueError, match="needs a Kubernetes client"):
        open_store(StoreLocation("configmap", "r1-store", namespace="team"))


def test_importing_the_stores_does_not_import_boto3() -> None:
    code = "import sys, flowlib_runner.store; assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
