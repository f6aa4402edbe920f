"""A runner under a borrowed account authenticates with the run's own token file (``ENV_RUNNER_TOKEN_FILE``),
re-read whenever the file is replaced, as the kubelet replaces a secret volume's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme
from flowlib_runner.kube import config as kube_config

from flowlib_api.runnerpod import ENV_RUNNER_TOKEN_FILE


def _in_cluster(monkeypatch: pytest.MonkeyPatch, token_file: Path | None, account_token: Path | None = None) -> None:
    """A pod's service account files (the CA, the projected token) under a temporary directory."""
    base = (token_file or account_token or Path(".")).parent
    ca = base / "ca.crt"
    trustme.CA().cert_pem.write_to_path(str(ca))
    monkeypatch.setattr(kube_config, "IN_CLUSTER_CA_FILE", str(ca))
    if account_token is not None:  # the pod's projected service account token
        monkeypatch.setattr(kube_config, "IN_CLUSTER_TOKEN_FILE", str(account_token))
    monkeypatch.setattr(kube_config, "IN_CLUSTER_NAMESPACE_FILE", str(base / "namespace"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    if token_file is None:
        monkeypatch.delenv(ENV_RUNNER_TOKEN_FILE, raising=False)
    else:
        monkeypatch.setenv(ENV_RUNNER_TOKEN_FILE, str(token_file))


def _replace(path: Path, text: str) -> None:
    staged = path.with_name(".staged")
    staged.write_text(text)
    os.replace(staged, path)  # a new file under the old name, as the kubelet writes volumes


def test_the_runner_token_file_wins_and_is_read_again_when_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    _in_cluster(monkeypatch, token)
    config = kube_config.load_config()
    assert config.host == "https://10.0.0.1:443"
    assert config.headers() == {"Authorization": "Bearer first-token"}
    _replace(token, "second-token")
    assert config.headers() == {"Authorization": "Bearer second-token"}
    assert config.headers() == {"Authorization": "Bearer second-token"}
    # Gone for a moment (between an unlink and a rename): the last token read still serves.
    token.unlink()
    assert config.headers() == {"Authorization": "Bearer second-token"}


def test_without_the_variable_the_pod_account_authenticates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    account = tmp_path / "account-token"
    account.write_text("pod-account-token\n")
    _in_cluster(monkeypatch, None, account)
    assert kube_config.load_config().headers() == {"Authorization": "Bearer pod-account-token"}


def test_a_missing_runner_token_file_fails_at_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _in_cluster(monkeypatch, tmp_path / "absent")
    with pytest.raises(kube_config.ConfigError, match=r"token file .*absent cannot be read"):
        kube_config.load_config()


@pytest.fixture
def in_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A pod whose runner token file holds a token."""
    token = tmp_path / "token"
    token.write_text("t")
    _in_cluster(monkeypatch, token)


@pytest.mark.usefixtures("in_pod")
def test_a_pod_without_its_ca_file_fails_at_load_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kube_config, "IN_CLUSTER_CA_FILE", str(tmp_path / "no-ca.crt"))
    with pytest.raises(kube_config.ConfigError, match=r"CA file .*no-ca\.crt does not exist"):
        kube_config.load_config()


@pytest.mark.usefixtures("in_pod")
def test_an_ipv6_service_address_is_bracketed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert kube_config.load_config().host == "https://[fd00::1]:6443"
