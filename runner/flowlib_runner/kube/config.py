"""Where the API server is and how to authenticate: the kubeconfig, or the pod's service account.

In a runner pod under a borrowed service account the operator mounts the run's own token
(``ENV_RUNNER_TOKEN_FILE``, see ``flowlib_operator.runner_token``): the runner authenticates with
it instead of the pod's account, re-reading the file whenever it changes (the operator refreshes
the token and the kubelet rewrites the file), and takes the API server's address and CA from the
pod as usual.

``ClusterConfig.headers`` runs once per request, so it does no more than what can have changed:

- A token kept in a file -- the run's own token, and in any pod the service account's projected
  token, which the kubelet rotates -- is a ``TokenFile``: one ``stat`` per request, the file read
  again as soon as its modification time, size or inode changes (the kubelet replaces it by
  renaming) and in any case once ``TOKEN_FILE_MAX_AGE`` seconds have passed since it was read. The
  client library's own in-cluster refresh re-read the file only once a minute, so a rotated token
  is now seen at the first request after the rotation instead of up to a minute later.
- What a kubeconfig gives (a static token, basic auth, an exec plugin's or auth provider's
  credential) is computed once, and asked of the client library again every ``AUTH_RECHECK``
  seconds when it can expire (the library set a refresh hook): the library runs an exec plugin
  again ``EXPIRY_SKEW_PREVENTION_DELAY`` (5 min) before its credential expires, so that a credential
  is replaced no later than ``AUTH_RECHECK`` seconds after the library would have replaced it when
  asked at every request, minutes before it expires. Each question also re-resolves the proxy
  settings (the library's hook assigns ``host``, whose setter scans the environment with urllib's
  ``getproxies``, though this client sends no request through a proxy): that cost, most of the old
  per-request one, is now paid once per recheck, and never for a credential that cannot expire.
"""

from __future__ import annotations

import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from flowlib_api.runnerpod import ENV_RUNNER_TOKEN_FILE

TOKEN_FILE_MAX_AGE = 60.0
"""Seconds after which a token file is read again even though its ``stat`` looks the same (a file
rewritten in place, at the same size, within one tick of a coarse file system clock)."""
AUTH_RECHECK = 10.0
"""Seconds between two questions to the client library about a kubeconfig credential that can
expire (see the module docstring)."""


def _clock() -> float:
    return time.monotonic()


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time: read again when the file's
    modification time, size or inode changes (a kubelet replaces a secret volume's files by renaming,
    and a projected service account token by swapping the ``..data`` link), or once it was last read
    ``TOKEN_FILE_MAX_AGE`` seconds ago, so each request authenticates with the token the file holds.
    Between changes a request costs one ``stat``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._token = ""

    def token(self) -> str:
        try:
            info = os.stat(self.path)
        except OSError:
            if self._token:
                return self._token  # between a kubelet's unlink and rename, or a passing hiccup
            raise
        seen = (info.st_mtime_ns, info.st_size, info.st_ino)
        now = _clock()
        if seen != self._seen or now - self._read_at >= TOKEN_FILE_MAX_AGE:
            with open(self.path, encoding="utf-8") as handle:
                token = handle.read().strip()
            if token or not self._token:  # an empty file is one being written: keep the last token
                self._token = token
            self._seen, self._read_at = seen, now
        return self._token


@dataclass
class ClusterConfig:
    """Connection settings read once; ``headers()`` is called per request so tokens can rotate
    (cheaply: see the module docstring)."""

    host: str
    ssl_context: ssl.SSLContext | bool
    default_namespace: str = "default"
    _configuration: Any = field(default=None, repr=False)
    token_file: TokenFile | None = field(default=None, repr=False)
    """A token file (the run's own token, ``ENV_RUNNER_TOKEN_FILE``, or in a pod the service
    account's), which wins over what ``_configuration`` says."""
    _auth: dict[str, str] | None = field(default=None, init=False, repr=False)
    _auth_due: float = field(default=0.0, init=False, repr=False)

    def headers(self) -> dict[str, str]:
        """The headers that authenticate a request: a new dict each time (callers add to it)."""
        if self.token_file is not None:
            return {"Authorization": f"Bearer {self.token_file.token()}"}
        now = _clock()
        if self._auth is None or now >= self._auth_due:
            self._auth = self._library_auth()
            can_expire = getattr(self._configuration, "refresh_api_key_hook", None) is not None
            self._auth_due = now + AUTH_RECHECK if can_expire else float("inf")
        return dict(self._auth)

    def _library_auth(self) -> dict[str, str]:
        """What the client library says authenticates a request now. auth_settings() runs its
        refresh hook (an expired exec-plugin credential is renewed there) and is its own answer to
        "which headers authenticate"; the key naming inside api_key differs between client versions,
        this does not."""
        configuration = self._configuration
        if configuration is None:
            return {}
        headers: dict[str, str] = {}
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                key = setting["key"]
                headers[key.title() if key == "authorization" else key] = setting["value"]
        return headers


IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
IN_CLUSTER_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""The pod's service account token (projected, rotated by the kubelet): read as a ``TokenFile``."""
IN_CLUSTER_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
"""The cluster's CA, which the API server's certificate is checked against."""


class ConfigError(RuntimeError):
    """No usable connection settings (a pod without its service account files, a bad kubeconfig)."""


def _in_cluster(token_path: str) -> ClusterConfig:
    """A pod's settings, read the way client-go's rest.InClusterConfig reads them (the service's
    host and port from the environment, the CA and token files of the pod's service account), by
    hand: the kubernetes package, whose import alone costs a runner about 130 ms before its first
    node, is only needed for kubeconfig files."""
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if not os.path.isfile(IN_CLUSTER_CA_FILE):
        raise ConfigError(f"in a pod, but the service account's CA file {IN_CLUSTER_CA_FILE} does not exist")
    token_file = TokenFile(token_path)
    try:
        # The run's own token, else the account's: a missing or unreadable file fails here, not at
        # the first request.
        token_file.token()
    except OSError as error:
        raise ConfigError(f"in a pod, but the token file {token_path} cannot be read: {error}") from error
    namespace = "default"
    try:
        with open(IN_CLUSTER_NAMESPACE_FILE, encoding="utf-8") as handle:
            namespace = handle.read().strip() or namespace
    except OSError:
        pass  # not every pod mounts the namespace file; "default" is kubectl's answer too
    return ClusterConfig(
        host=f"https://{host}:{port}",
        ssl_context=ssl.create_default_context(cafile=IN_CLUSTER_CA_FILE),
        default_namespace=namespace,
        token_file=token_file,
    )


def load_config(kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """In a pod (``KUBERNETES_SERVICE_HOST`` set and no explicit kubeconfig): the service account, or
    the token file ``ENV_RUNNER_TOKEN_FILE`` names when it is set; otherwise ``kubeconfig``,
    ``$KUBECONFIG`` or ``~/.kube/config``, as ``kubectl`` does."""
    if kubeconfig is None and "KUBECONFIG" not in os.environ and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster(os.environ.get(ENV_RUNNER_TOKEN_FILE) or IN_CLUSTER_TOKEN_FILE)
    from kubernetes import client as k8s_client  # kubeconfig files only (see _in_cluster)
    from kubernetes import config as k8s_config

    configuration = k8s_client.Configuration()
    namespace = "default"
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
