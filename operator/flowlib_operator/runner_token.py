"""The run's own API token, for a runner whose pod runs under a borrowed service account.

A run that names a service account (``spec.serviceAccountName``) runs its pod as that account, so
that user code and cloud workload identity (IRSA, GKE Workload Identity, which key on the pod's
service account) see it. That account may be shared by several runs and other pods, so it must not
hold any run's Role: the runner authenticates as the run's own account (``identity``) instead, with
a token the operator asks for with the TokenRequest API
(https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/).

The token is bound to a Secret, ``<run>-runner-token``, owned by the FlowRun: the API server
accepts it only while that very Secret exists (deleting the FlowRun, or the Secret, revokes it). The
operator stores the token in that Secret (key ``RUNNER_TOKEN_KEY``) and the Job mounts it as a
secret volume (no ``subPath``, so the kubelet carries a refreshed token into the running pod);
``ENV_RUNNER_TOKEN_FILE`` tells the runner where it is, and the runner re-reads it when it changes.

A token lives ``RUNNER_TOKEN_LIFETIME`` (the API server may cap it lower; the answer's expiry is
what counts). The operator asks for a new one once a quarter of that life has gone
(``REFRESH_FRACTION``), for a run that has not finished, in its periodic resync: an operator that
is down for up to three quarters of the lifetime loses no run. The resync passes that read a run
afresh (``runs.VERIFY_AFTER``) also read its Secret: one deleted or replaced since (which revoked
the token) is made again with a new token. A finished run's token is left to
expire (its runner may still be saving its log when the operator sees the final status) and goes
with the FlowRun.

The first token is made when the operator first sees the FlowRun, before it starts the run (kopf
runs event handlers before creation handlers): the run's ServiceAccount and the Secret are created
then, so the Job's pod mounts a Secret that already holds a token. Should that fail, the pod waits
for the key (its volume names it) and the next resync pass makes the token.
"""

from __future__ import annotations

import asyncio
import base64
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.meta import API_GROUP, LABEL_COMPONENT, SECRETS, SERVICEACCOUNTS
from flowlib_api.runnerpod import RUNNER_TOKEN_KEY
from flowlib_api.times import parse_time, rfc3339
from flowlib_api.views import FlowRunView
from flowlib_operator.identity import run_account
from flowlib_operator.jobspec import needs_runner_token, owner_reference, runner_token_name
from flowlib_operator.naming import identity_name, run_labels

RUNNER_TOKEN_LIFETIME = 12 * 3600
"""Seconds a runner token is asked to live (the TokenRequest's ``expirationSeconds``)."""
REFRESH_FRACTION = 0.25
"""The share of a token's life after which the operator replaces it (while its run goes on)."""
TOKEN_COMPONENT = "runner-token"
ANNOTATION_ISSUED = f"{API_GROUP}/runner-token-issued-at"
"""On the runner-token Secret: when the token it holds was issued (RFC 3339)."""
ANNOTATION_EXPIRES = f"{API_GROUP}/runner-token-expires-at"
"""On the runner-token Secret: when the token it holds expires (the TokenRequest's answer)."""

Key = tuple[str, str]


def token_secret(flowrun: dict[str, Any]) -> dict[str, Any]:
    """The runner-token Secret, still empty: the token is bound to it, so it must exist first."""
    run = FlowRunView(flowrun)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": runner_token_name(run.name),
            "namespace": run.namespace,
            "labels": {**run_labels(run.name, None), LABEL_COMPONENT: TOKEN_COMPONENT},
            "ownerReferences": [owner_reference(flowrun)],
        },
    }


def token_request(secret: dict[str, Any], lifetime: int) -> dict[str, Any]:
    """A TokenRequest for a token of ``lifetime`` seconds bound to ``secret`` (name and uid)."""
    meta = secret["metadata"]
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": lifetime,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": meta["name"], "uid": meta["uid"]},
        },
    }


def _owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    return any(owner.get("uid") == uid for owner in obj.get("metadata", {}).get("ownerReferences") or [])


class LeftoverSecret(Exception):
    """The runner-token Secret (or account) of the run's name belongs to a deleted FlowRun that is
    still being collected; the token is made on a later pass."""


@dataclass
class Issued:
    """What the operator knows of a run's current token."""

    uid: str
    issued: float
    expires: float
    secret_uid: str = ""
    """The Secret the token is bound to ("" when only read back from its annotations)."""


@dataclass
class RunnerTokens:
    """Makes and refreshes the runner tokens of runs under borrowed accounts (see the module)."""

    client: KubeClient
    lifetime: int = RUNNER_TOKEN_LIFETIME
    refresh_fraction: float = REFRESH_FRACTION
    clock: Callable[[], float] = time.time
    known: dict[Key, Issued] = field(default_factory=dict)
    """The token of each run as last issued or read (wall-clock seconds), so that the FlowRun's
    frequent watch events cost no request."""
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    """One ``keep`` at a time per run: a watch event and a resync pass may both find a token due."""

    def due(self, issued: Issued) -> bool:
        """Whether a token is old enough to be replaced."""
        return self.clock() >= issued.issued + (issued.expires - issued.issued) * self.refresh_fraction

    async def keep(self, flowrun: dict[str, Any], *, recheck: bool = False) -> bool:
        """Make sure an unfinished run that needs a runner token has one that is not due; True when
        a token was issued. Nothing to do (no request) for any other run, or while the token last
        seen is fresh, unless ``recheck`` asks to read the Secret anyway: one deleted or replaced
        since (which revoked the token) then gets a new token."""
        run = FlowRunView(flowrun)
        if not needs_runner_token(run) or run.finished or not run.uid:
            self.known.pop(run.key, None)
            return False
        if not recheck and self._fresh(run):
            return False
        async with self.locks.setdefault(run.key, asyncio.Lock()):
            if not recheck and self._fresh(run):  # made while this call waited for the lock
                return False
            return await self._issue(flowrun)

    def _fresh(self, run: FlowRunView) -> bool:
        known = self.known.get(run.key)
        return known is not None and known.uid == run.uid and not self.due(known)

    async def _issue(self, flowrun: dict[str, Any]) -> bool:
        """Read the Secret (creating it when missing) and put a new token in it unless the one it
        holds is fresh; True when a token was issued."""
        run = FlowRunView(flowrun)
        assert run.uid is not None
        secret = await self._secret(flowrun)
        secret_uid = str(secret["metadata"].get("uid") or "")
        known = self.known.get(run.key)
        replaced = known is not None and known.uid == run.uid and known.secret_uid not in ("", secret_uid)
        current = _issued_of(secret, run.uid)
        if current is not None and not self.due(current) and not replaced:
            current.secret_uid = secret_uid
            self.known[run.key] = current
            return False
        await self._account(flowrun)
        answer = await self.client.request(
            "POST",
            SERVICEACCOUNTS.path(run.namespace, identity_name(run.name), "token"),
            body=token_request(secret, self.lifetime),
        )
        status = answer.get("status") or {}
        now = self.clock()
        expiry = parse_time(status.get("expirationTimestamp"))
        expires = expiry.timestamp() if expiry is not None else now + self.lifetime
        token = str(status["token"])
        patch = {
            "metadata": {
                "annotations": {
                    ANNOTATION_ISSUED: rfc3339(datetime.fromtimestamp(now, UTC)),
                    ANNOTATION_EXPIRES: rfc3339(datetime.fromtimestamp(expires, UTC)),
                }
            },
            "data": {RUNNER_TOKEN_KEY: base64.b64encode(token.encode()).decode("ascii")},
        }
        await self.client.patch(SECRETS, secret["metadata"]["name"], patch, run.namespace)
        self.known[run.key] = Issued(run.uid, now, expires, secret_uid)
        return True

    def forget_all_but(self, keys: set[Key]) -> None:
        """Drop what is known of runs no longer watched (deleted FlowRuns)."""
        for table in (self.known, self.locks):
            for key in [key for key in table if key not in keys]:
                del table[key]

    async def _secret(self, flowrun: dict[str, Any]) -> dict[str, Any]:
        """The run's runner-token Secret's metadata (as ``{"metadata": ...}``), created if missing.

        Read as metadata only: the annotations say how old its token is, and the token itself never
        comes back to the operator."""
        run = FlowRunView(flowrun)
        name = runner_token_name(run.name)
        metadata = await self.client.get_metadata_or_none(SECRETS, name, run.namespace)
        if metadata is None:
            try:
                created = await self.client.create(SECRETS, token_secret(flowrun), run.namespace)
                return {"metadata": created["metadata"]}
            except ApiError as error:
                if not error.already_exists:
                    raise
            metadata = await self.client.get_metadata_or_none(SECRETS, name, run.namespace)
            if metadata is None:
                raise LeftoverSecret(f"Secret {name} was deleted while it was being created; retried")
        secret = {"metadata": metadata}
        if not _owned_by(secret, run.uid):
            raise LeftoverSecret(f"Secret {name} still belongs to a deleted FlowRun of the same name; waiting")
        return secret

    async def _account(self, flowrun: dict[str, Any]) -> None:
        """The run's own ServiceAccount, created here when the run has not been started yet (its
        start adopts it; ``identity``), since a token can only be asked for an account that exists."""
        run = FlowRunView(flowrun)
        try:
            await self.client.create(SERVICEACCOUNTS, run_account(flowrun), run.namespace)
            return
        except ApiError as error:
            if not error.already_exists:
                raise
        name = identity_name(run.name)
        existing = await self.client.get(SERVICEACCOUNTS, name, run.namespace)
        if not _owned_by(existing, run.uid):
            raise LeftoverSecret(f"ServiceAccount {name} still belongs to a deleted FlowRun of the same name; waiting")


def _issued_of(secret: dict[str, Any], uid: str) -> Issued | None:
    """The token a runner-token Secret holds, from its annotations (None: none yet)."""
    annotations = secret.get("metadata", {}).get("annotations") or {}
    issued = parse_time(annotations.get(ANNOTATION_ISSUED))
    expires = parse_time(annotations.get(ANNOTATION_EXPIRES))
    if issued is None or expires is None:
        return None
    return Issued(uid, issued.timestamp(), expires.timestamp())


_KEEPERS: weakref.WeakKeyDictionary[KubeClient, RunnerTokens] = weakref.WeakKeyDictionary()


def runner_tokens(client: KubeClient) -> RunnerTokens:
    """The one ``RunnerTokens`` of the operator that talks through ``client``."""
    keeper = _KEEPERS.get(client)
    if keeper is None:
        keeper = _KEEPERS[client] = RunnerTokens(client)
    return keeper
