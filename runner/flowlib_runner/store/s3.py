"""The s3 store: a run's blobs as objects ``<prefix><name>`` in an S3-compatible bucket.

For runs whose checkpoints and outputs outgrow the configmap store, on AWS S3, MinIO, Ceph and the
like. Objects outlive the FlowRun (a bucket lifecycle rule expires them).

Why it looks the way it does:

- boto3 is imported, and its client built, on first use and on a worker thread: importing it
  takes a noticeable fraction of a second, which a run that never touches S3 (or the runner's
  start) should not pay, and which must not stall the event loop.
- Credentials come from boto3's default chain only (environment variables, which the operator fills
  from ``spec.store.s3.secretName``; IRSA's web identity; the instance profile), so no secret ever
  passes through this code, and messages hold the bucket, the key and the service's error code.
- Every call runs on a worker thread (boto3 is synchronous), at most ``CONCURRENCY`` at a time per
  store; botocore's "standard" retry mode retries throttling, 5xx and connection errors.
- A store with an ``endpoint`` (MinIO and other non-AWS stores) uses path-style addressing (no
  bucket DNS names needed) and sends checksums only where the API requires them, which is what
  stores that do not know S3's newer checksum headers accept.
- ``names`` and ``delete_all`` see only keys that are blob names: a prefix shared with other data
  (even an empty one) never loses anything that is not the store's.

The identity needs ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject`` on the keys and
``s3:ListBucket`` on the bucket; without ``ListBucket`` S3 answers a missing key with 403, which
``get`` cannot tell from a refusal (a ``StoreError``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flowlib_runner.store.base import StoreError, check_name

CONCURRENCY = 8
"""S3 requests of one store in flight at once (also the size of botocore's connection pool)."""
DELETE_BATCH = 1000
"""Keys per DeleteObjects request: the API's maximum."""
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


class S3Store:
    """The blobs of one run under ``prefix`` (``""`` or a key prefix; a ``/`` is added) in ``bucket``.

    ``client`` is a boto3 S3 client to use instead of building one (tests, custom sessions).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        self.endpoint = endpoint
        self.region = region
        self._client = client
        self._client_lock = threading.Lock()
        self._slots = asyncio.Semaphore(CONCURRENCY)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def __repr__(self) -> str:
        return f"S3Store({self.location!r})"

    # -- the protocol ----------------------------------------------------------------------------

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        writes = [(check_name(name), data) for name, data in blobs.items() if data is not None]
        deletes = [self.prefix + check_name(name) for name, data in blobs.items() if data is None]
        calls = [self._run(f"write {name}", self._put, self.prefix + name, data) for name, data in writes]
        calls += [
            self._run("delete blobs", self._delete, deletes[i : i + DELETE_BATCH])
            for i in range(0, len(deletes), DELETE_BATCH)
        ]
        failures = [result for result in await asyncio.gather(*calls, return_exceptions=True) if result is not None]
        if failures:
            raise failures[0]

    async def get(self, name: str) -> bytes | None:
        return await self._run(f"read {name}", self._get, self.prefix + check_name(name))

    async def names(self, prefix: str = "") -> list[str]:
        return sorted(await self._run("list blobs", self._names, prefix))

    async def delete_all(self) -> None:
        keys = [self.prefix + name for name in await self.names()]
        for i in range(0, len(keys), DELETE_BATCH):
            await self._run("delete blobs", self._delete, keys[i : i + DELETE_BATCH])

    # -- on worker threads -----------------------------------------------------------------------

    async def _run(self, what: str, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a worker thread; boto3's errors become a ``StoreError`` naming ``what``."""
        async with self._slots:
            return await asyncio.to_thread(self._guarded, what, call, *args)

    def _guarded(self, what: str, call: Callable[..., T], *args: Any) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(*args)
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", "?"), details.get("Message", "")
            raise StoreError(f"{self.location}: cannot {what}: {code}: {message}".rstrip(": ")) from error
        except BotoCoreError as error:
            raise StoreError(f"{self.location}: cannot {what}: {error}") from error

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = _make_client(self.endpoint, self.region)
            return self._client

    def _put(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=key, Body=data)

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        data: bytes = answer["Body"].read()
        return data

    def _names(self, prefix: str) -> list[str]:
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        names = []
        for page in pages:
            for entry in page.get("Contents", []):
                name = entry["Key"][len(self.prefix) :]
                if _is_name(name):
                    names.append(name)
        return names

    def _delete(self, keys: list[str]) -> None:
        if not keys:
            return
        answer = self._s3().delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise StoreError(
                f"{self.location}: cannot delete {len(errors)} of {len(keys)} blobs, e.g. {first.get('Key')}: "
                f"{first.get('Code')}: {first.get('Message')}"
            )


def _is_name(text: str) -> bool:
    try:
        check_name(text)
    except ValueError:
        return False
    return True


def _make_client(endpoint: str | None, region: str | None) -> Any:
    """A boto3 S3 client with the default credential chain and botocore's standard retries."""
    import boto3
    from botocore.config import Config

    settings: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}, "max_pool_connections": CONCURRENCY}
    if endpoint is not None:
        settings.update(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    session = boto3.session.Session()  # its own session: the module-level default one is not thread-safe
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=Config(**settings))
