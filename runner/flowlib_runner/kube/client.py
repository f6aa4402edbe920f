"""An asyncio REST client for the few Kubernetes calls the project makes, with retries.

Retried: 429 (after ``Retry-After`` when given), 500/502/503/504, dropped connections and timeouts;
409 Conflict only when the caller says the request is safe to repeat (a merge patch without a
``resourceVersion`` is). 409 AlreadyExists is an answer, never retried. Each retry is reported to
``on_retry`` so the operator can count it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from flowlib_api.meta import ResourceRef
from flowlib_runner.kube.config import ClusterConfig

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class ApiError(Exception):
    """The API server answered with an error ``Status``; ``reason`` is its machine-readable reason."""

    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.body = status, reason, message, body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def forbidden(self) -> bool:
        return self.status == 403


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in all, waits doubling from ``base`` up to ``cap`` seconds."""

    attempts: int = 8
    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap * 4)
        return min(self.cap, self.base * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)


RetryCallback = Callable[[str, int | None], None]
"""Called as ``on_retry(method, status)`` (status None for a dropped connection) before each retry."""


class KubeClient:
    """One HTTP session to the API server; use ``async with`` or call ``close()``."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        retry: RetryPolicy | None = None,
        on_retry: RetryCallback | None = None,
        timeout: float = 30.0,
        user_agent: str = "flowlib-operator",
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.timeout = timeout
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context, limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        retry_conflicts: bool = False,
        accept: str | None = None,
    ) -> Any:
        """Send one request, retrying what is safe to retry; return the decoded JSON answer."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, params, body, content_type=content_type, accept=accept)
            except ApiError as error:
                retryable = error.status in RETRIED_STATUSES or (
                    retry_conflicts and error.status == 409 and error.reason == "Conflict"
                )
                if not retryable or attempt >= self.retry.attempts:
                    raise
                delay = self.retry.delay(attempt, _retry_after(error))
                status: int | None = error.status
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                if attempt >= self.retry.attempts:
                    raise
                delay, status = self.retry.delay(attempt), None
            if self.on_retry is not None:
                self.on_retry(method, status)
            await asyncio.sleep(delay)

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        *,
        content_type: str,
        accept: str | None = None,
    ) -> Any:
        headers = self.config.headers()
        if accept is not None:
            headers["Accept"] = accept
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body, separators=(",", ":"))
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with self._client().request(
            method, self.config.host + path, params=params, data=data, headers=headers, timeout=timeout
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise _api_error(response.status, text, response.headers.get("Retry-After"))
            return json.loads(text) if text else None

    # -- verbs ---------------------------------------------------------------------------------

    async def get(self, ref: ResourceRef, name: str, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", ref.path(namespace, name))
        return result

    async def get_or_none(self, ref: ResourceRef, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return await self.get(ref, name, namespace)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def get_metadata_or_none(
        self, ref: ResourceRef, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """Only the object's metadata (``PartialObjectMetadata``), or None if it does not exist.

        For reading labels of Secrets: the same permission as a GET, but no value ever reaches us.
        """
        try:
            result: dict[str, Any] = await self.request("GET", ref.path(namespace, name), accept=PARTIAL_METADATA)
        except ApiError as error:
            if error.not_found:
                return None
            raise
        return result.get("metadata") or {}

    async def list(
        self,
        ref: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        result = await self.request("GET", ref.path(namespace), params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def create(self, ref: ResourceRef, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", ref.path(namespace), body=body)
        return result

    async def replace(
        self, ref: ResourceRef, name: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """PUT ``body`` as the whole object (without ``metadata.resourceVersion``: unconditionally)."""
        result: dict[str, Any] = await self.request("PUT", ref.path(namespace, name), body=body)
        return result

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        patch_type: str = "merge",
        retry_conflicts: bool = True,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH",
            ref.path(namespace, name, subresource),
            body=body,
            content_type=PATCH_TYPES[patch_type],
            retry_conflicts=retry_conflicts,
        )
        return result

    async def delete(
        self,
        ref: ResourceRef,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str = "Background",
        grace_seconds: int | None = None,
        uid: str | None = None,
    ) -> bool:
        """Delete; True if it was there, False if it was already gone. With ``uid``, only that object:
        one of the same name made since answers 409 Conflict (a precondition, never retried)."""
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
        }
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", ref.path(namespace, name), body=options)
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    async def stream_lines(self, path: str, params: Mapping[str, str] | None = None) -> AsyncIterator[str]:
        """Yield the lines of a streaming answer (pod logs with ``follow``, watches) as they come."""
        headers = self.config.headers()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        async with self._client().get(
            self.config.host + path, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status >= 400:
                raise _api_error(response.status, await response.text(), response.headers.get("Retry-After"))
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            if buffer:
                yield buffer.decode("utf-8", errors="replace")

    async def watch(
        self, ref: ResourceRef, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events (``{"type": ..., "object": ...}``) until the server ends the stream."""
        query = {"watch": "true", **(params or {})}
        async for line in self.stream_lines(ref.path(namespace), query):
            if line.strip():
                event: dict[str, Any] = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise ApiError(status.get("code", 500), status.get("reason", ""), status.get("message", ""))
                yield event


def _retry_after(error: ApiError) -> float | None:
    value: Any = error.body.get("_retry_after") if isinstance(error.body, dict) else None
    return None if value is None else float(value)


def _api_error(status: int, text: str, retry_after: str | None) -> ApiError:
    try:
        body = json.loads(text) if text else {}
    except json.JSONDecodeError:
        body = {"message": text.strip()}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    if retry_after is not None:
        try:
            body["_retry_after"] = float(retry_after)
        except ValueError:
            pass  # an HTTP date: fall back to our own backoff
    return ApiError(status, str(body.get("reason", "")), str(body.get("message", text.strip())), body)
