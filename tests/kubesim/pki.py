"""The simulator's certificate authority and kubeconfig files.

The serving certificate covers 127.0.0.1 and the in-cluster names (``kubernetes.default.svc`` ...)
so that a pod's ``ca.crt`` verifies the server exactly as inside a real cluster.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import trustme
import yaml


class Pki:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="kubesim")
        cert = self.ca.issue_cert(
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            common_name="kube-apiserver",
        )
        self.ca_file = directory / "ca.crt"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.ca_pem = self.ca.cert_pem.bytes().decode()
        self.cert_file = directory / "apiserver.pem"
        with open(self.cert_file, "wb") as fh:
            for blob in cert.cert_chain_pems:
                fh.write(blob.bytes())
            fh.write(cert.private_key_pem.bytes())
        os.chmod(self.cert_file, 0o600)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_file))
        return ctx


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str, namespace: str = "default") -> Path:
    """A kubeconfig with one cluster, user and context, all named ``kubesim``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": user, "namespace": namespace}}],
        "current-context": "kubesim",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(path, 0o600)
    return path
