"""The operator's own kopf peering object: created at start when missing, and kept while it runs.

Why the operator creates it instead of the install: with ``--peering NAME`` kopf keeps every handler
paused until the peering object exists, so the object had to be part of ``deploy/``. But it is an
instance of a CRD (``clusterkopfpeerings.kopf.dev``) that the same install creates, and ``kubectl
apply -k deploy/`` on a fresh cluster cannot map a kind whose CRD it is only creating: the first
apply failed with "ensure CRDs are installed first". Owning the object here, as controllers own
their leader-election Lease, makes one apply enough (the CRDs and the Deployment are ordinary
objects), and an object deleted by hand or pruned by a GitOps tool comes back.

Cluster-wide (``--all-namespaces``) that is one ``ClusterKopfPeering``; watching listed namespaces
(``--namespace NS``) kopf peers through one ``KopfPeering`` in each, so one is made in each.
The objects carry no spec; kopf writes each replica's heartbeat into their ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.meta import LABEL_MANAGED_BY, MANAGED_BY, ResourceRef

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
CLUSTER_PEERINGS = ResourceRef(PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", namespaced=False)
NAMESPACED_PEERINGS = ResourceRef(PEERING_GROUP, PEERING_VERSION, "kopfpeerings")
PEERING_CRDS_FILE = "deploy/base/kopf-peering.yaml"
"""Where the peering CRDs are defined, for the messages that say what to install."""

STARTUP_TIMEOUT = 60.0
"""How long the start waits for the peering CRD to be served (a fresh install creates it moments
before the operator starts). Then the operator exits, saying why; it stays below the time the
Deployment's liveness probe gives a starting pod (15 s delay + 3 failures 20 s apart)."""
KEEP_INTERVAL = 60.0
"""Seconds between checks that the peering objects still exist (kopf's peering lifetime is 60 s)."""

log = logging.getLogger("flowlib.operator.peering")


class PeeringNotReady(Exception):
    """The peering object cannot be created yet (its CRD is not served, its namespace is missing, the
    API server is unreachable): worth trying again shortly."""


class PeeringRefused(Exception):
    """The peering object does not exist and the operator may not (or cannot) create it: trying again
    changes nothing until someone acts on the message."""


@dataclass(frozen=True)
class PeeringTarget:
    """One peering object: cluster-wide (``namespace`` None) or in one watched namespace."""

    name: str
    namespace: str | None = None

    @property
    def ref(self) -> ResourceRef:
        return CLUSTER_PEERINGS if self.namespace is None else NAMESPACED_PEERINGS

    @property
    def kind(self) -> str:
        return "ClusterKopfPeering" if self.namespace is None else "KopfPeering"

    def describe(self) -> str:
        where = "" if self.namespace is None else f' in namespace "{self.namespace}"'
        return f'{self.kind} "{self.name}"{where}'

    def body(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "labels": {"app.kubernetes.io/part-of": "flowlib", LABEL_MANAGED_BY: MANAGED_BY},
        }
        if self.namespace is not None:
            metadata["namespace"] = self.namespace
        return {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "kind": self.kind, "metadata": metadata}


def peering_targets(name: str, namespaces: Sequence[str] | None) -> list[PeeringTarget]:
    """The objects kopf peers through: one cluster-wide (``namespaces`` None) or one per namespace."""
    if namespaces is None:
        return [PeeringTarget(name)]
    return [PeeringTarget(name, namespace) for namespace in dict.fromkeys(namespaces)]


async def ensure_peering(client: KubeClient, target: PeeringTarget) -> bool:
    """Create ``target`` unless it exists; whether this call created it.

    Create first, not get-then-create: one request when it is missing, no race with a second
    replica starting at the same time (409 AlreadyExists is the answer "it is there"). When the
    create is forbidden, a get tells an install that made the object itself (and withheld
    ``create``) from one that lacks both.
    """
    try:
        await client.create(target.ref, target.body(), target.namespace)
    except ApiError as error:
        if error.already_exists:
            return False
        if error.forbidden:
            if await _exists_after_refusal(client, target):
                return False
            raise PeeringRefused(
                f"{target.describe()} does not exist and the operator may not create it ({error.message}). "
                f'Grant its service account verb "create" on resource "{target.ref.plural}" in API group '
                f'"{PEERING_GROUP}" (deploy/base/operator-rbac.yaml has it), or create the object yourself: '
                f"kubectl create -f - <<< '{json.dumps(target.body(), separators=(',', ':'))}'"
            ) from error
        if error.not_found:
            raise PeeringNotReady(_not_found_text(target, error)) from error
        raise PeeringRefused(
            f"could not create {target.describe()}: {error.status} {error.reason}: {error.message}"
        ) from error
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise PeeringNotReady(f"could not reach the API server to create {target.describe()}: {error}") from error
    return True


async def _exists_after_refusal(client: KubeClient, target: PeeringTarget) -> bool:
    try:
        return await client.get_or_none(target.ref, target.name, target.namespace) is not None
    except ApiError:
        return False  # may not read it either: the refusal of the create is the message to show


def _not_found_text(target: PeeringTarget, error: ApiError) -> str:
    crd = f"{target.ref.plural}.{PEERING_GROUP}"
    if target.namespace is not None and "namespaces" in error.message:
        return f'the watched namespace "{target.namespace}" does not exist, so its {target.kind} cannot be created'
    return (
        f"the API server does not serve {crd} yet, so {target.describe()} cannot be created; "
        f"kopf's peering CRDs must be installed ({PEERING_CRDS_FILE}, part of deploy/): {error.message}"
    )


async def ensure_all(client: KubeClient, targets: Sequence[PeeringTarget]) -> list[PeeringTarget]:
    """``ensure_peering`` for each target; the ones this call created."""
    return [target for target in targets if await ensure_peering(client, target)]


async def keep_peering(client: KubeClient, targets: Sequence[PeeringTarget], interval: float = KEEP_INTERVAL) -> None:
    """Check every ``interval`` seconds that each peering object exists, and create it again if not.

    Without it, a peering object deleted while the operator runs (by hand, or pruned by a GitOps
    tool that once applied it) would leave the replicas uncoordinated until the next restart: kopf
    only patches the object and quietly ignores its absence. A get per object and interval; the
    create only when it is gone. Problems are logged and tried again at the next interval.
    """
    while True:
        await asyncio.sleep(interval)
        for target in targets:
            try:
                if await client.get_or_none(target.ref, target.name, target.namespace) is not None:
                    continue
                if await ensure_peering(client, target):
                    log.warning("%s had been deleted; created it again", target.describe())
            except (PeeringNotReady, PeeringRefused) as problem:
                log.warning("peering: %s", problem)
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError) as error:
                log.warning("peering: could not check %s: %s", target.describe(), error)


def register(
    registry: kopf.OperatorRegistry,
    client: KubeClient,
    name: str,
    namespaces: Sequence[str] | None,
    *,
    interval: float = KEEP_INTERVAL,
) -> None:
    """Make the peering objects of ``--peering NAME`` at start-up and keep them while running.

    A kopf startup handler, so it runs before kopf starts watching (and before it would wait for the
    object): while the CRD is not served yet it is retried every 2 s, and after ``STARTUP_TIMEOUT``
    the operator stops with the reason in its log; a refusal stops it at once.
    """
    targets = peering_targets(name, namespaces)
    keeper: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry, id="flowlib-peering", timeout=STARTUP_TIMEOUT)
    async def create_peering(logger: kopf.Logger, **_: Any) -> None:
        try:
            created = await ensure_all(client, targets)
        except PeeringNotReady as waiting:
            raise kopf.TemporaryError(str(waiting), delay=2) from waiting
        except PeeringRefused as refused:
            raise kopf.PermanentError(str(refused)) from refused
        for target in targets:
            logger.info("%s %s", target.describe(), "created" if target in created else "exists")
        keeper.append(asyncio.create_task(keep_peering(client, targets, interval), name="flowlib-peering"))

    @kopf.on.cleanup(registry=registry, id="flowlib-peering-stop")
    async def stop_keeping(**_: Any) -> None:
        for task in keeper:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    del create_peering, stop_keeping
