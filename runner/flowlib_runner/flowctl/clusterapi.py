"""The calls `flowctl`'s cluster commands make, with errors written for the person at the terminal.

Why a wrapper over `KubeClient`: a bare `403 Forbidden` or `404 NotFound` tells a user neither what
was missing nor what to do. Every call here knows its verb and resource, so a refusal names the RBAC
permission to ask for, a missing FlowRun says how to list the runs, and a missing CRD says the
operator's CRDs are not installed. Each becomes a `ClusterError` (exit code 3, distinct from the run
results 0/1/130 and from invalid input 2, so scripts can tell "the run failed" from "could not ask").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import aiohttp
import click

from flowlib_api.meta import FLOWRUNS, FLOWS, LABEL_FLOWRUN, PODS, ResourceRef
from flowlib_runner.kube.client import ApiError, KubeClient, RetryPolicy
from flowlib_runner.kube.config import ClusterConfig, load_config

EXIT_CLUSTER = 3
"""Exit code when the cluster could not be asked (unreachable, refused, no such object)."""

T = TypeVar("T")


class ClusterError(click.ClickException):
    """An error for people: printed as ``flowctl: <message>`` with exit code 3."""

    exit_code = EXIT_CLUSTER

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"flowctl: {self.format_message()}", err=True, file=file)


class LogNotReady(Exception):
    """The pod's container has not started, so it has no log yet (the API answers 400)."""


@dataclass(frozen=True)
class _Call:
    """What a request is doing, in RBAC terms, so that a refusal can name the missing permission."""

    verb: str
    ref: ResourceRef
    subresource: str | None = None

    @property
    def resource(self) -> str:
        plural = self.ref.plural + (f"/{self.subresource}" if self.subresource else "")
        return f"{plural}.{self.ref.group}" if self.ref.group else plural

    def refused(self, namespace: str | None, error: ApiError) -> ClusterError:
        group = f'API group "{self.ref.group}"' if self.ref.group else 'the core API group ("")'
        where = f' in namespace "{namespace}"' if namespace else " in all namespaces"
        role = "Role" if namespace else "ClusterRole"
        rbac = self.ref.plural + (f"/{self.subresource}" if self.subresource else "")
        return ClusterError(
            f"forbidden: you may not {self.verb} {self.resource}{where}. Ask a cluster admin for a {role} "
            f'granting verb "{self.verb}" on resource "{rbac}" in {group}. The API server said: {error.message}'
        )


def _kind_missing(error: ApiError, name: str | None) -> bool:
    """A 404 about the whole resource type (the CRD is not installed), not about one object."""
    details = error.body.get("details") if isinstance(error.body, dict) else None
    if isinstance(details, dict) and details.get("name"):
        return False
    return name is None or "could not find the requested resource" in error.message


class ClusterApi:
    """`KubeClient` bound to a namespace, answering in `ClusterError`s people can act on."""

    def __init__(self, client: KubeClient, namespace: str, prog: str = "flowctl") -> None:
        self.client = client
        self.namespace = namespace
        self.prog = prog

    @property
    def host(self) -> str:
        return self.client.config.host

    async def _do(self, call: _Call, work: Awaitable[T], *, namespace: str | None, name: str | None = None) -> T:
        try:
            return await work
        except ApiError as error:
            raise self._explain(call, error, namespace, name) from error
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ClusterError(
                f"cannot reach the Kubernetes API server at {self.host} ({type(error).__name__}: {error}); "
                "check the cluster is up and the kubeconfig/--context points at it"
            ) from error

    def _explain(self, call: _Call, error: ApiError, namespace: str | None, name: str | None) -> ClusterError:
        if error.forbidden:
            return call.refused(namespace, error)
        if error.status == 401:
            return ClusterError(
                "unauthorized: the API server did not accept the credentials in your kubeconfig; "
                f"log in again or pick another --context ({error.message})"
            )
        if error.not_found and call.ref in (FLOWRUNS, FLOWS) and _kind_missing(error, name):
            return ClusterError(
                f"this cluster does not know {call.ref.plural}.{call.ref.group}: the flowlib CRDs are not "
                "installed (kubectl apply -k crds/ from the flowlib-operator repository, or its Helm chart)"
            )
        if error.not_found and call.ref is FLOWRUNS and name is not None:
            return ClusterError(
                f'no FlowRun named "{name}" in namespace "{namespace}"; list the runs with: '
                f"{self.prog} list -n {namespace} (or {self.prog} list -A for every namespace)"
            )
        if error.not_found and call.ref is FLOWS and name is not None:
            return ClusterError(
                f'no Flow named "{name}" in namespace "{namespace}"; list them with: kubectl get flows -n {namespace}, '
                "create one with kubectl apply -f FILE, or pass the path of a flow file instead of a name"
            )
        if error.status == 422 or error.reason == "Invalid":
            return ClusterError(f"the API server rejected the {call.ref.plural[:-1]}: {error.message}")
        what = f" {name}" if name else ""
        return ClusterError(
            f"could not {call.verb} {call.resource}{what}: {error.status} {error.reason}: {error.message}"
        )

    # -- FlowRuns and Flows ---------------------------------------------------------------------

    async def get_run(self, name: str) -> dict[str, Any]:
        call = _Call("get", FLOWRUNS)
        return await self._do(
            call, self.client.get(FLOWRUNS, name, self.namespace), namespace=self.namespace, name=name
        )

    async def list_runs(self, all_namespaces: bool = False) -> list[dict[str, Any]]:
        namespace = None if all_namespaces else self.namespace
        call = _Call("list", FLOWRUNS)
        return await self._do(call, self.client.list(FLOWRUNS, namespace), namespace=namespace)

    async def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        call = _Call("create", FLOWRUNS)
        try:
            return await self._do(call, self.client.create(FLOWRUNS, body, self.namespace), namespace=self.namespace)
        except ClusterError as error:
            cause = error.__cause__
            if isinstance(cause, ApiError) and cause.already_exists:
                name = body["metadata"].get("name")
                raise ClusterError(
                    f'a FlowRun named "{name}" already exists in namespace "{self.namespace}"; '
                    "pick another --name or use --generate-name"
                ) from cause
            raise

    async def cancel_run(self, name: str) -> dict[str, Any]:
        call = _Call("patch", FLOWRUNS)
        work = self.client.patch(FLOWRUNS, name, {"spec": {"cancel": True}}, self.namespace)
        return await self._do(call, work, namespace=self.namespace, name=name)

    async def add_approval(self, flowrun: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        """Append ``decision`` to the run's ``spec.approvals``; the resourceVersion makes the write
        fail (409) rather than drop a decision someone else added meanwhile."""
        meta = flowrun["metadata"]
        given: list[dict[str, Any]] = list((flowrun.get("spec") or {}).get("approvals") or [])
        approvals = [*given, decision]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"approvals": approvals}}
        call = _Call("patch", FLOWRUNS)
        work = self.client.patch(FLOWRUNS, meta["name"], patch, self.namespace)
        return await self._do(call, work, namespace=self.namespace, name=meta["name"])

    async def get_flow(self, name: str) -> dict[str, Any]:
        call = _Call("get", FLOWS)
        return await self._do(call, self.client.get(FLOWS, name, self.namespace), namespace=self.namespace, name=name)

    # -- pods and their logs --------------------------------------------------------------------

    async def run_pods(self, run: str) -> list[dict[str, Any]]:
        """The run's runner pods, oldest first (one per attempt of its Job)."""
        call = _Call("list", PODS)
        work = self.client.list(PODS, self.namespace, label_selector=f"{LABEL_FLOWRUN}={run}")
        pods = await self._do(call, work, namespace=self.namespace)
        return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))

    async def get_pod(self, name: str) -> dict[str, Any] | None:
        call = _Call("get", PODS)
        return await self._do(call, self.client.get_or_none(PODS, name, self.namespace), namespace=self.namespace)

    async def pod_log(self, pod: str, *, follow: bool) -> AsyncIterator[str]:
        """The pod's log lines; raises `LogNotReady` when its container has not started yet.

        A pod that vanished (404) ends the stream quietly: its Job or FlowRun was deleted, and the
        caller learns why from the FlowRun.
        """
        call = _Call("get", PODS, "log")
        params = {"follow": "true"} if follow else {}
        lines = self.client.stream_lines(PODS.path(self.namespace, pod, "log"), params)
        try:
            async for line in lines:
                yield line
        except ApiError as error:
            if error.status == 400:
                raise LogNotReady(error.message) from error
            if error.not_found:
                return
            raise self._explain(call, error, self.namespace, pod) from error
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            return  # a dropped stream: the caller checks the pod and picks up where it was
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ClusterError(f"cannot reach the Kubernetes API server at {self.host}: {error}") from error


def load_cluster_config(kubeconfig: str | None, context: str | None) -> ClusterConfig:
    """`load_config` with its failures (no kubeconfig, unknown context) said plainly."""
    try:
        return load_config(kubeconfig, context)
    except Exception as error:  # the kubernetes loaders raise ConfigException, OSError, TypeError...
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise ClusterError(
            f"cannot use the kubeconfig ({where}){f' context {context!r}' if context else ''}: {error}"
        ) from error


@asynccontextmanager
async def connect(
    kubeconfig: str | None, context: str | None, namespace: str | None, *, prog: str = "flowctl"
) -> AsyncIterator[ClusterApi]:
    """A `ClusterApi` on the kubeconfig's cluster; the namespace defaults to the context's, as kubectl's."""
    config = load_cluster_config(kubeconfig, context)
    # A person waits at the terminal: give up on a dead API server after a few seconds, not a minute.
    client = KubeClient(config, retry=RetryPolicy(attempts=4, base=0.2, cap=2.0), timeout=20.0, user_agent=prog)
    try:
        yield ClusterApi(client, namespace or config.default_namespace, prog)
    finally:
        await client.close()
