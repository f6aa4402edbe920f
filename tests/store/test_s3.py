"""The s3 store's own promises: errors name the bucket and prefix (never a credential), and only
blob names are listed and deleted."""

from __future__ import annotations

import boto3
import pytest
from flowlib_runner.store import S3Store, StoreError, put

from .conftest import REGION, S3Server, run


def _client(server: S3Server) -> object:
    return boto3.session.Session().client("s3", endpoint_url=server.endpoint, region_name=REGION)


def test_a_missing_bucket_is_a_store_error_naming_it_and_no_secret(s3_server: S3Server) -> None:
    store = S3Store("no-such-bucket", "runs/x", endpoint=s3_server.endpoint, region=REGION)

    async def body() -> None:
        with pytest.raises(StoreError) as failed:
            await put(store, "meta", b"m")
        message = str(failed.value)
        assert message.startswith("s3://no-such-bucket/runs/x/: cannot write meta: NoSuchBucket")
        assert "testing-secret-key" not in message and "testing-key-id" not in message
        with pytest.raises(StoreError, match="s3://no-such-bucket/runs/x/: cannot list blobs"):
            await store.names()

    run(body())


def test_an_unreachable_endpoint_is_a_store_error(s3_server: S3Server) -> None:
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # the discard port: nothing listens there
        region_name=REGION,
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2),
    )
    store = S3Store(s3_server.bucket, "runs/y", client=client)

    async def body() -> None:
        with pytest.raises(StoreError, match=r"s3://flowlib-store-tests/runs/y/: cannot read meta: Could not connect"):
            await store.get("meta")

    run(body())


def test_keys_that_are_not_blob_names_are_left_alone(s3_server: S3Server) -> None:
    client = _client(s3_server)
    prefix = "runs/shared/"
    for key in (f"{prefix}folder/", f"{prefix}with space", "runs/shared-not-ours"):
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=b"keep")  # type: ignore[attr-defined]
    store = S3Store(s3_server.bucket, prefix, endpoint=s3_server.endpoint, region=REGION)

    async def body() -> None:
        await store.put_many({"a": b"1", "b/c": b"2"})
        assert await store.names() == ["a", "b/c"]
        await store.delete_all()
        listed = client.list_objects_v2(Bucket=s3_server.bucket, Prefix="runs/shared")  # type: ignore[attr-defined]
        keys = sorted(entry["Key"] for entry in listed.get("Contents", []))
        assert keys == ["runs/shared-not-ours", "runs/shared/folder/", "runs/shared/with space"]

    run(body())


def test_delete_all_takes_more_than_one_batch(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib_runner.store import s3

    monkeypatch.setattr(s3, "DELETE_BATCH", 7)
    store = S3Store(s3_server.bucket, "runs/batches", endpoint=s3_server.endpoint, region=REGION)

    async def body() -> None:
        await store.put_many({f"n/{i:03}": b"x" for i in range(30)})
        await store.put_many({f"n/{i:03}": None for i in range(10)})  # deletes in batches too
        assert len(await store.names()) == 20
        await store.delete_all()
        assert await store.names() == []

    run(body())
