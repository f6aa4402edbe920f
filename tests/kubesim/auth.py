"""Authentication: the admin token and service-account tokens.

Service-account tokens are HS256-signed JWTs with the claims of real bound tokens
(https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-tokens):
``sub`` = ``system:serviceaccount:<ns>:<name>`` and a ``kubernetes.io`` claim naming the namespace,
service account and the object the token is bound to (a pod or a Secret, each by name and uid). A
token stops working when its service account or that object is deleted, or replaced by one of the
same name (another uid), as the API server's service-account authenticator checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .store import Store

JSON = dict[str, Any]
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = field(default_factory=tuple)
    uid: str = ""

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.admin_token = secrets.token_urlsafe(32)
        self._key = secrets.token_bytes(32)

    def issue(
        self,
        namespace: str,
        name: str,
        expiration: int = 3600,
        pod: JSON | None = None,
        audiences: list[str] | None = None,
        secret: JSON | None = None,
        node: JSON | None = None,
    ) -> str:
        sa = self.store.get(("", "serviceaccounts"), namespace, name)
        now = int(time.time())
        claims: JSON = {
            "aud": audiences or [ISSUER],
            "exp": now + expiration,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),  # every token its own id (ServiceAccountTokenJTI, on since 1.29)
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"] if sa else ""},
            },
        }
        if pod is not None:
            claims["kubernetes.io"]["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        for claim, bound in (("secret", secret), ("node", node)):
            if bound is not None:
                claims["kubernetes.io"][claim] = {"name": bound["metadata"]["name"], "uid": bound["metadata"]["uid"]}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "kubesim"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def authenticate(self, authorization: str | None) -> User | None:
        """The user a request is made as; ANONYMOUS without credentials, None for a bad token."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        if hmac.compare_digest(token, self.admin_token):
            return User("kubesim-admin", ("system:masters", "system:authenticated"))
        return self.review(token.strip())

    def review(self, token: str) -> User | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        claims = json.loads(_unb64(parts[1]))
        if claims.get("exp", 0) < time.time():
            return None
        info = claims.get("kubernetes.io") or {}
        ns, sa_info = info.get("namespace"), info.get("serviceaccount") or {}
        sa = self.store.get(("", "serviceaccounts"), ns or "", sa_info.get("name", ""))
        if sa is None or sa["metadata"]["uid"] != sa_info.get("uid"):
            return None
        for claim, key, scope in (("pod", "pods", ns), ("secret", "secrets", ns), ("node", "nodes", "")):
            bound = info.get(claim)
            if bound is not None:
                obj = self.store.get(("", key), scope or "", bound["name"])
                if obj is None or obj["metadata"]["uid"] != bound["uid"]:
                    return None
        return User(
            f"system:serviceaccount:{ns}:{sa_info['name']}",
            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
            sa["metadata"]["uid"],
        )
