"""Where the API server is and how to authenticate: the kubeconfig, or the pod's service account.

In a runner pod under a borrowed service account the operator mounts the run's own token
(``ENV_RUNNER_TOKEN_FILE``, see ``flowlib_operator.runner_token``): the runner authenticates with
it instead of the pod's account, re-reading the file whenever it changes (the operator refreshes
the token and the kubelet rewrites the file), and takes the API server's address and CA from the
pod as usual."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from flowlib_api.runnerpod import ENV_RUNNER_TOKEN_FILE


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time: read again when the file's
    modification time, size or inode changes (a kubelet replaces a secret volume's files by renaming),
    so each request authenticates with the token the file holds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    def token(self) -> str:
        try:
            info = os.stat(self.path)
        except OSError:
            if self._token:
                return self._token  # between a kubelet's unlink and rename, or a passing hiccup
            raise
        seen = (info.st_mtime_ns, info.st_size, info.st_ino)
        if seen != self._seen:
            with open(self.path, encoding="utf-8") as handle:
                self._token = handle.read().strip()
            self._seen = seen
        return self._token


@dataclass
class ClusterConfig:
    """Connection settings read once; ``headers()`` is called per request so tokens can rotate."""

    host: str
    ssl_context: ssl.SSLContext | bool
    default_namespace: str = "default"
    _configuration: Any = field(default=None, repr=False)
    token_file: TokenFile | None = field(default=None, repr=False)
    """The run's own token (``ENV_RUNNER_TOKEN_FILE``), which wins over what ``_configuration`` says."""

    def headers(self) -> dict[str, str]:
        if self.token_file is not None:
            return {"Authorization": f"Bearer {self.token_file.token()}"}
        configuration = self._configuration
        if configuration is None:
            return {}
        hook = getattr(configuration, "refresh_api_key_hook", None)
        if hook is not None:
            hook(configuration)  # in-cluster: re-reads the projected token when it rotates
        # auth_settings() is the client's own answer to "which headers authenticate a request";
        # the key naming inside api_key differs between client versions, this does not.
        headers: dict[str, str] = {}
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"].title() if setting["key"] == "authorization" else setting["key"]] = setting[
                    "value"
                ]
        return headers


IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def load_config(kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """In a pod (``KUBERNETES_SERVICE_HOST`` set and no explicit kubeconfig): the service account, or
    the token file ``ENV_RUNNER_TOKEN_FILE`` names when it is set; otherwise ``kubeconfig``,
    ``$KUBECONFIG`` or ``~/.kube/config``, as ``kubectl`` does."""
    configuration = k8s_client.Configuration()
    namespace = "default"
    token_file = None
    if kubeconfig is None and "KUBECONFIG" not in os.environ and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        if os.environ.get(ENV_RUNNER_TOKEN_FILE):
            token_file = TokenFile(os.environ[ENV_RUNNER_TOKEN_FILE])
            token_file.token()  # a missing or unreadable file fails here, not at the first request
        try:
            with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as handle:
                namespace = handle.read().strip() or namespace
        except OSError:
            pass  # not every pod mounts the namespace file; "default" is kubectl's answer too
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
        try:
            _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            if context is not None:
                contexts, _ = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active or {}).get("context", {}).get("namespace") or namespace
        except (k8s_config.ConfigException, OSError, KeyError):
            pass  # the context has no namespace: kubectl also falls back to "default"
    return ClusterConfig(
        host=configuration.host.rstrip("/"),
        ssl_context=_ssl_context(configuration),
        default_namespace=namespace,
        _configuration=configuration,
        token_file=token_file,
    )


def _ssl_context(configuration: Any) -> ssl.SSLContext | bool:
    if not configuration.host.startswith("https"):
        return False
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context
