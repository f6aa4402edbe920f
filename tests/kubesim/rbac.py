"""The RBAC authorizer (https://kubernetes.io/docs/reference/access-authn-authz/rbac/).

A request is allowed when any rule of a role bound to the user (directly, via a group, or as a
service account) matches its verb, API group, resource (``plural`` or ``plural/subresource``),
resource name, or non-resource URL. Members of ``system:masters`` bypass it, as on a real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .auth import User
from .store import Store

JSON = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Attributes:
    verb: str
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests

    @property
    def is_resource(self) -> bool:
        return not self.path


def _matches(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def rule_allows(rule: JSON, attrs: Attributes) -> bool:
    if not _matches(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
                return True
        return False
    if rule.get("nonResourceURLs") and not rule.get("resources"):
        return False
    if not _matches(rule.get("apiGroups"), attrs.group):
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not any(r in ("*", wanted) or (attrs.subresource and r == f"*/{attrs.subresource}") for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: JSON, user: User, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


def _bound(binding: JSON, user: User, namespace: str) -> bool:
    return any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or [])


class Authorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def role_rules(self, ref: JSON, namespace: str) -> list[JSON]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.get((RBAC, "clusterroles"), "", ref.get("name", ""))
        else:
            role = self.store.get((RBAC, "roles"), namespace, ref.get("name", ""))
        return list((role or {}).get("rules") or [])

    def _bindings(self, user: User, namespace: str) -> list[tuple[JSON, str]]:
        """Bindings naming ``user``: cluster-wide ones, plus those of ``namespace`` if given."""
        found = [(b, "") for b in self.store.items((RBAC, "clusterrolebindings")) if _bound(b, user, "")]
        if namespace:
            found += [
                (b, namespace)
                for b in self.store.items((RBAC, "rolebindings"), namespace)
                if _bound(b, user, namespace)
            ]
        return found

    def allowed(self, user: User, attrs: Attributes) -> bool:
        if user.is_admin:
            return True
        namespace = attrs.namespace if attrs.is_resource else ""
        for binding, ns in self._bindings(user, namespace):
            if any(rule_allows(r, attrs) for r in self.role_rules(binding.get("roleRef") or {}, ns)):
                return True
        return False

    def rules_for(self, user: User, namespace: str) -> list[JSON]:
        """Every rule that applies to ``user`` in ``namespace`` (SelfSubjectRulesReview)."""
        return [r for b, ns in self._bindings(user, namespace) for r in self.role_rules(b.get("roleRef") or {}, ns)]


def forbidden_message(user: User, attrs: Attributes) -> str:
    if not attrs.is_resource:
        return f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    subject = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    if attrs.name:
        subject += f' "{attrs.name}"'
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.group}" {scope}'
    )


_ALL = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_READ = ["get", "list", "watch"]
_CORE = ["pods", "pods/log", "pods/status", "configmaps", "secrets", "serviceaccounts", "services", "events"]


def bootstrap_objects() -> list[tuple[str, JSON]]:
    """The default cluster roles and bindings a fresh cluster has (trimmed to what we serve)."""
    roles: list[tuple[str, list[JSON]]] = [
        (
            "cluster-admin",
            [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
        ),
        (
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        (
            "system:public-info-viewer",
            [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}],
        ),
        (
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                }
            ],
        ),
        (
            "admin",
            [
                {"apiGroups": [""], "resources": _CORE, "verbs": _ALL},
                {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"], "verbs": _ALL},
                {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": _ALL},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _ALL},
            ],
        ),
        (
            "edit",
            [
                {"apiGroups": [""], "resources": _CORE, "verbs": _ALL},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": _ALL},
            ],
        ),
        (
            "view",
            [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "pods/log", "configmaps", "serviceaccounts", "services", "events"],
                    "verbs": _READ,
                },
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": _READ},
            ],
        ),
    ]
    bindings = [
        ("cluster-admin", "cluster-admin", ["system:masters"]),
        ("system:discovery", "system:discovery", ["system:authenticated"]),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            ["system:authenticated", "system:unauthenticated"],
        ),
        ("system:basic-user", "system:basic-user", ["system:authenticated"]),
    ]
    out: list[tuple[str, JSON]] = []
    for name, rules in roles:
        labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
        out.append(("clusterroles", {"metadata": {"name": name, "labels": labels}, "rules": rules}))
    for name, role, groups in bindings:
        out.append(
            (
                "clusterrolebindings",
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": g} for g in groups],
                },
            )
        )
    return out


def _breakdown(rule: JSON) -> list[JSON]:
    """Split a rule into single-verb, single-group, single-resource, single-name rules."""
    if rule.get("nonResourceURLs"):
        return [
            {"verbs": [v], "nonResourceURLs": [u]} for v in rule.get("verbs") or [] for u in rule["nonResourceURLs"]
        ]
    out = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                names = rule.get("resourceNames") or [None]
                for name in names:
                    single: JSON = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        single["resourceNames"] = [name]
                    out.append(single)
    return out


def _has(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)  # type: ignore[operator]


def _covered(owner: JSON, single: JSON) -> bool:
    verb = single["verbs"][0]
    if not _has(owner.get("verbs"), verb):
        return False
    if "nonResourceURLs" in single:
        url = single["nonResourceURLs"][0]
        return any(
            o == "*" or o == url or (o.endswith("*") and url.startswith(o[:-1]))
            for o in owner.get("nonResourceURLs") or []
        )
    if not _has(owner.get("apiGroups"), single["apiGroups"][0]):
        return False
    resource = single["resources"][0]
    sub = resource.partition("/")[2]
    owned = owner.get("resources") or []
    if not ("*" in owned or resource in owned or (sub and f"*/{sub}" in owned)):
        return False
    names = owner.get("resourceNames") or []
    return not names or (bool(single.get("resourceNames")) and single["resourceNames"][0] in names)


def escalation(held: list[JSON], granted: list[JSON]) -> list[JSON]:
    """The parts of ``granted`` that the ``held`` rules do not cover (RBAC escalation prevention,
    https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping)."""
    return [single for rule in granted for single in _breakdown(rule) if not any(_covered(o, single) for o in held)]


def escalation_message(plural: str, name: str, user: User, missing: list[JSON]) -> str:
    groups = " ".join(f'"{g}"' for g in user.groups)

    def show(rule: JSON) -> str:
        if "nonResourceURLs" in rule:
            return f'{{NonResourceURLs:["{rule["nonResourceURLs"][0]}"], Verbs:["{rule["verbs"][0]}"]}}'
        names = f', ResourceNames:["{rule["resourceNames"][0]}"]' if rule.get("resourceNames") else ""
        group, resource, verb = rule["apiGroups"][0], rule["resources"][0], rule["verbs"][0]
        return f'{{APIGroups:["{group}"], Resources:["{resource}"]{names}, Verbs:["{verb}"]}}'

    return (
        f'{plural}.{RBAC} "{name}" is forbidden: user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC '
        "permissions not currently held:\n" + "\n".join(show(r) for r in missing)
    )
