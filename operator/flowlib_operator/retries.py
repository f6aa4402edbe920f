"""What a retry (``spec.retryOf``) takes from the run it retries, read and written through the API.

The decisions are ``stores.plan_resume`` and ``stores.store_conflict``; here the retry gets:

- its source's definition, when it names none of its own: the source's snapshot ConfigMap, copied
  byte for byte into the retry's own (a Flow edited since the source ran changes nothing; and the
  source's snapshot goes with the source, which may be deleted while the retry runs);
- its source's store, kept alive: a configmap store's chunks are owned by the source FlowRun, and
  the garbage collector deletes a dependent only when every owner is gone, so the retry is added
  as one more owner of each chunk that exists. s3 and pvc stores outlive their FlowRuns anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from typing import Any

from flowlib_runner.kube.client import KubeClient

from flowlib_api.meta import CONFIGMAPS
from flowlib_api.runnerpod import SNAPSHOT_KEY, Snapshot
from flowlib_api.storespec import configmap_chunk_names
from flowlib_api.views import FlowRunView
from flowlib_operator.jobspec import owner_reference
from flowlib_operator.naming import snapshot_name
from flowlib_operator.resolve import Resolution
from flowlib_operator.stores import Resume


async def source_definition(client: KubeClient, namespace: str, resume: Resume) -> Resolution:
    """The source's frozen definition (its snapshot ConfigMap), or the problem that it is gone."""
    name = snapshot_name(resume.source)
    configmap = await client.get_or_none(CONFIGMAPS, name, namespace)
    encoded = ((configmap or {}).get("binaryData") or {}).get(SNAPSHOT_KEY)
    owned = configmap is not None and any(
        owner.get("uid") == resume.source_uid for owner in configmap["metadata"].get("ownerReferences") or []
    )
    flow_name = resume.flow_name or "inline"
    if not owned or not isinstance(encoded, str):
        return Resolution(
            flow_name=flow_name,
            problems=[
                f"spec.retryOf: the definition FlowRun '{resume.source}' ran (ConfigMap {name}) is gone, so this "
                "retry has nothing to run; set spec.flowRef or spec.flow to say which definition to retry with"
            ],
        )
    try:
        snapshot = base64.b64decode(encoded, validate=True)
        frozen = Snapshot.from_bytes(snapshot)
    except (ValueError, binascii.Error) as error:
        return Resolution(
            flow_name=flow_name,
            problems=[
                f"spec.retryOf: the definition FlowRun '{resume.source}' ran (ConfigMap {name}) is not readable "
                f"({error}); set spec.flowRef or spec.flow to say which definition to retry with"
            ],
        )
    pod = frozen.spec.get("pod")
    return Resolution(
        flow_name=resume.flow_name or frozen.name,
        snapshot=snapshot,
        pod=pod if isinstance(pod, Mapping) else None,
        spec=frozen.spec,
    )


def co_owner_reference(flowrun: dict[str, Any]) -> dict[str, Any]:
    """The retry as one more owner of its source's chunks: not their controller (the source stays
    that), and not blocking: deleting the retry never waits for the source's store."""
    return owner_reference(flowrun, controller=False)


async def keep_source_store(client: KubeClient, flowrun: dict[str, Any], resume: Resume) -> list[str]:
    """Make the retry ``flowrun`` an owner of each existing chunk of its source's configmap store, so
    that the chunks outlive the source while the retry exists; the names of the chunks it now owns.

    Only chunks the source itself owns are touched (a ConfigMap of that name owned by something else
    is not the source's store). The patch is a strategic merge, which merges ``ownerReferences`` by
    uid: doing it again (after a restart) changes nothing.
    """
    if resume.location.type != "configmap":
        return []
    namespace = FlowRunView(flowrun).namespace
    names = configmap_chunk_names(resume.location.root)
    chunks = await asyncio.gather(*(client.get_or_none(CONFIGMAPS, name, namespace) for name in names))
    reference = co_owner_reference(flowrun)
    owned = [
        chunk["metadata"]["name"]
        for chunk in chunks
        if chunk is not None
        and any(owner.get("uid") == resume.source_uid for owner in chunk["metadata"].get("ownerReferences") or [])
    ]
    patch = {"metadata": {"ownerReferences": [reference]}}
    await asyncio.gather(*(client.patch(CONFIGMAPS, name, patch, namespace, patch_type="strategic") for name in owned))
    return owned
