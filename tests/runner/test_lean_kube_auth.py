"""``ClusterConfig.headers`` runs once per request: it repeats no work for what cannot have changed,
and still authenticates with a rotated token or a renewed credential (issue 14, point 2).

The expensive parts are counted, never timed: reads of a token file, the client library's
``auth_settings`` (which runs its refresh hook), urllib's ``getproxies`` (the hook's assignment of
``host`` re-resolves the proxy from the environment) and an exec plugin's runs. The monotonic clock
the config reads and the wall clock the library judges expiry by are both fakes the tests move.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from flowlib_runner.kube import config as kube_config
from kubernetes.client import configuration as k8s_configuration
from kubernetes.config import kube_config as k8s_kube_config

from flowlib_api.runnerpod import ENV_RUNNER_TOKEN_FILE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(kube_config, "_clock", fake)
    return fake


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of the expensive calls, by name (``open`` only of token files)."""
    counted: Counter[str] = Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(k8s_configuration, "getproxies", counting("getproxies", k8s_configuration.getproxies))
    real_settings = k8s_configuration.Configuration.auth_settings
    monkeypatch.setattr(k8s_configuration.Configuration, "auth_settings", counting("auth_settings", real_settings))

    def opening(path: Any, *args: Any, **kwargs: Any) -> Any:
        if "token" in os.path.basename(str(path)):
            counted["read token"] += 1
        return open(path, *args, **kwargs)

    monkeypatch.setattr(kube_config, "open", opening, raising=False)  # the module's ``open``, no other
    return counted


# -- in a pod: the projected service account token ---------------------------------------------


def _project(volume: Path, token: str, version: str) -> None:
    """Write ``token`` as the kubelet's atomic writer does: a new timestamped directory, then the
    ``..data`` link swapped to it by a rename; ``token`` itself links through ``..data``."""
    (volume / version).mkdir()
    (volume / version / "token").write_text(token)
    staged = volume / "..data_tmp"
    staged.symlink_to(version)
    os.replace(staged, volume / "..data")
    if not (volume / "token").is_symlink():
        (volume / "token").symlink_to("..data/token")


@pytest.fixture
def in_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A pod without a runner token: the account's token lives in a projected volume under tmp_path."""
    volume = tmp_path / "serviceaccount"
    volume.mkdir()
    _project(volume, "account-token-1", "..2026_11_27_12_00_00.1")

    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    monkeypatch.setattr(kube_config, "IN_CLUSTER_CA_FILE", str(tmp_path / "ca.crt"))
    monkeypatch.setattr(kube_config, "IN_CLUSTER_NAMESPACE_FILE", str(volume / "namespace"))
    monkeypatch.setattr(kube_config, "IN_CLUSTER_TOKEN_FILE", str(volume / "token"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv(ENV_RUNNER_TOKEN_FILE, raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    return volume


def test_a_rotated_service_account_token_is_used_from_the_next_request(
    in_pod: Path, clock: Clock, calls: Counter[str]
) -> None:
    config = kube_config.load_config()
    assert calls["read token"] == 1  # at load: a missing token fails there
    calls.clear()
    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer account-token-1"}
    assert calls == Counter()  # no re-read, no library refresh, no proxy lookup

    _project(in_pod, "account-token-2", "..2026_11_27_12_48_00.2")  # the kubelet rotates it
    assert config.headers() == {"Authorization": "Bearer account-token-2"}  # at once, not a minute later
    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer account-token-2"}
    assert calls == Counter({"read token": 1})


def test_a_token_rewritten_in_place_unseen_by_stat_is_read_again_after_the_max_age(
    in_pod: Path, clock: Clock, calls: Counter[str]
) -> None:
    config = kube_config.load_config()
    target = in_pod / "token"
    before = os.stat(target)
    target.resolve().write_text("account-token-X")  # same size, then the same mtime: stat sees nothing
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    clock.now += kube_config.TOKEN_FILE_MAX_AGE - 1
    assert config.headers() == {"Authorization": "Bearer account-token-1"}
    clock.now += 1
    assert config.headers() == {"Authorization": "Bearer account-token-X"}
    assert calls["read token"] == 2


def test_headers_are_a_new_dict_each_time(in_pod: Path, clock: Clock) -> None:
    config = kube_config.load_config()
    first = config.headers()
    first["Accept"] = "application/json"  # what the client adds per request
    assert config.headers() == {"Authorization": "Bearer account-token-1"}


# -- from a kubeconfig -----------------------------------------------------------------------------


def _kubeconfig(path: Path, user: dict[str, Any]) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(document))
    return str(path)


def test_a_static_kubeconfig_token_is_computed_once(tmp_path: Path, clock: Clock, calls: Counter[str]) -> None:
    config = kube_config.load_config(_kubeconfig(tmp_path / "kubeconfig", {"token": "static-token"}))
    calls.clear()
    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer static-token"}
    assert calls["auth_settings"] == 1
    assert calls["getproxies"] <= 1  # the library's hook assigns host once (the old way: twice a request)
    clock.now += kube_config.AUTH_RECHECK  # the library set a refresh hook: it is asked again, once
    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer static-token"}
    assert calls["auth_settings"] == 2


def test_client_certificate_auth_asks_the_library_once_for_good(
    tmp_path: Path, clock: Clock, calls: Counter[str]
) -> None:
    config = kube_config.load_config(_kubeconfig(tmp_path / "kubeconfig", {}))
    calls.clear()
    clock.now += 10 * kube_config.AUTH_RECHECK
    assert [config.headers() for _ in range(3)] == [{}, {}, {}]
    clock.now += 10 * kube_config.AUTH_RECHECK
    assert config.headers() == {}
    assert calls == Counter({"auth_settings": 1})  # no hook: nothing of it can expire


def test_an_exec_plugin_credential_is_renewed_before_it_expires_and_not_before(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: Clock, calls: Counter[str]
) -> None:
    wall = [datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)]
    lifetime = datetime.timedelta(minutes=15)
    runs: list[str] = []

    class Plugin:  # the exec plugin (what `aws eks get-token` or `gke-gcloud-auth-plugin` answers)
        def __init__(self, *_: Any) -> None:
            pass

        def run(self) -> dict[str, str]:
            runs.append(f"exec-token-{len(runs) + 1}")
            expires = (wall[0] + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
            return {"token": runs[-1], "expirationTimestamp": expires}

    def is_expired(expiry: Any) -> bool:  # the library's rule, judged by the fake wall clock
        moment = expiry if isinstance(expiry, datetime.datetime) else k8s_kube_config.parse_rfc3339(expiry)
        return bool(moment - k8s_kube_config.EXPIRY_SKEW_PREVENTION_DELAY <= wall[0])

    monkeypatch.setattr(k8s_kube_config, "ExecProvider", Plugin)
    monkeypatch.setattr(k8s_kube_config, "_is_expired", is_expired)
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "never-run"}}
    config = kube_config.load_config(_kubeconfig(tmp_path / "kubeconfig", exec_user))
    assert runs == ["exec-token-1"]
    calls.clear()

    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer exec-token-1"}
    assert calls["auth_settings"] == 1

    # Rechecked every AUTH_RECHECK seconds until the library finds it due (5 min before expiry).
    step = datetime.timedelta(seconds=kube_config.AUTH_RECHECK)
    while wall[0] + step < datetime.datetime(2026, 11, 27, 12, 10, tzinfo=datetime.UTC):
        clock.now += kube_config.AUTH_RECHECK
        wall[0] += step
        assert config.headers() == {"Authorization": "Bearer exec-token-1"}
    assert runs == ["exec-token-1"]
    clock.now += kube_config.AUTH_RECHECK
    wall[0] += step  # 12:10:00: the credential expires at 12:15, so the library renews it now
    assert config.headers() == {"Authorization": "Bearer exec-token-2"}
    assert runs == ["exec-token-1", "exec-token-2"]
    for _ in range(100):
        assert config.headers() == {"Authorization": "Bearer exec-token-2"}
    assert runs == ["exec-token-1", "exec-token-2"]
