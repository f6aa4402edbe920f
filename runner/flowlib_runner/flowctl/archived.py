"""What a run kept in its store, read from outside the cluster: kept outputs and archived logs.

``flowctl output`` and ``flowctl logs`` (once the runner pods are gone) open the store the FlowRun's
``status.store`` names, with the user's own credentials, never the run's:

- ``configmap``: the ConfigMaps ``<run>-store-0`` ... ``-7`` beside the run, read (``get``) with the
  kubeconfig's identity; only chunks owned by that FlowRun are trusted;
- ``s3``: the bucket, with boto3's default credential chain on this machine (``AWS_ACCESS_KEY_ID``
  and ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` or ``~/.aws``, SSO); the Secret the run's pod got
  its keys from is not read;
- ``pvc``: a claim mounted in the run's pod cannot be read from here; the error names the folder
  and how to read it from a pod that mounts the claim.

A local store directory (``flowctl run --store DIR``) is read directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from flowlib_api.storespec import STORE_MOUNT, StoreLocation
from flowlib_runner.execution.logarchive import archived_attempts, read_log
from flowlib_runner.execution.outputs import INDEX_BLOB, read_index
from flowlib_runner.flowctl.clusterapi import ClusterApi, ClusterError
from flowlib_runner.flowctl.common import EXIT_INVALID, EXIT_OK
from flowlib_runner.store import DirectoryStore, RunStore, StoreError
from flowlib_runner.store.open import open_store

T = TypeVar("T")


class NoStore(ClusterError):
    """The run kept no store (or one that cannot be read from here)."""


def store_location(flowrun: dict[str, Any]) -> StoreLocation | None:
    """The store the FlowRun's ``status.store`` names (None: it kept none)."""
    ref = ((flowrun.get("status") or {}).get("store") or {}).get("ref")
    if not ref:
        return None
    try:
        return StoreLocation.from_json(ref)
    except ValueError as error:
        raise ClusterError(
            f"status.store.ref of FlowRun {flowrun['metadata']['name']} is not readable: {error}"
        ) from error


def how_read(location: StoreLocation) -> str:
    """What flowctl reads the store with, for the note it prints."""
    if location.type == "configmap":
        return f"{location.description}, with your kubeconfig's credentials"
    if location.type == "s3":
        return f"{location.description}, with your own AWS credentials (boto3's default chain)"
    return location.description


def open_cluster_store(api: ClusterApi, flowrun: dict[str, Any], location: StoreLocation) -> RunStore:
    """The run's store, opened with the user's credentials (see the module docstring)."""
    name = flowrun["metadata"]["name"]
    if location.type == "pvc":
        raise NoStore(
            f"FlowRun {name} keeps its store on the claim {location.claim_name!r} (the folder {location.root} "
            "in its runner pod), which cannot be read from outside the cluster. Read it in a pod that mounts the "
            f"claim at {STORE_MOUNT} and has flowctl (the runner image does): flowctl output {location.root} KEY, "
            f"or flowctl logs {location.root}; or give runs whose outputs you read from outside an s3 or "
            "configmap store (spec.store.type)"
        )
    if location.type == "configmap" and not location.namespace:
        location = replace(location, namespace=api.namespace)
    try:
        return open_store(location, client=api.client, owner=flowrun)
    except ValueError as error:
        raise NoStore(f"FlowRun {name}'s store cannot be opened: {error}") from error


async def reading(location: StoreLocation, work: Awaitable[T], *, namespace: str) -> T:
    """``work`` (reads of the run's store), its ``StoreError`` said with what to do about it."""
    try:
        return await work
    except StoreError as error:
        raise ClusterError(f"cannot read the run's store: {error}. {_advice(location, namespace)}") from error


def _advice(location: StoreLocation, namespace: str) -> str:
    if location.type == "configmap":
        names = f"{location.root}-0 ... {location.root}-7"
        return (
            f'Reading it needs verb "get" on configmaps {names} in namespace "{namespace}" '
            f"(check with: kubectl auth can-i get configmaps -n {namespace})"
        )
    if location.type == "s3":
        secret = (
            f" (the run's pods use the keys of Secret {location.secret_name!r}: "
            f"kubectl get secret {location.secret_name} -n {namespace} -o yaml)"
            if location.secret_name
            else ""
        )
        return (
            "flowctl reads the bucket with your own AWS credentials: set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, for an identity that may read {location.description}{secret}"
        )
    return ""


async def output_refs(store: RunStore, flowrun: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The kept outputs' refs: the FlowRun's ``status.outputRefs``, completed by the store's index."""
    refs: dict[str, dict[str, Any]] = {}
    data = await store.get(INDEX_BLOB)
    if data is not None:
        try:
            refs.update(read_index(data))
        except ValueError as error:
            raise StoreError(f"{store.location}: {INDEX_BLOB} is not readable: {error}") from error
    if flowrun is not None:
        refs.update((flowrun.get("status") or {}).get("outputRefs") or {})
    return refs


def print_local_logs(directory: str, *, emit: Callable[[str], None], note: Callable[[str], None]) -> int:
    """``flowctl logs DIR``: every attempt's log a local store directory archived; the exit code."""
    store = DirectoryStore(directory)

    async def work() -> int:
        attempts = await archived_attempts(store)
        if not attempts:
            note(f"{directory} holds no archived log (runs save theirs with: flowctl run FILE --store DIR)")
            return EXIT_INVALID
        for attempt in attempts:
            emit(f"==> attempt {attempt} (archived in {directory}) <==")
            for line in (await read_log(store, attempt) or "").splitlines():
                emit(line)
        return EXIT_OK

    try:
        return asyncio.run(work())
    except StoreError as error:
        note(f"cannot read the log archived in {directory}: {error}")
        return EXIT_INVALID
