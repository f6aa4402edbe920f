"""Validating admission webhooks
(https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/).

``ValidatingWebhookConfiguration`` objects are honoured: a request whose operation, group, version,
resource (``plural`` or ``plural/subresource``), scope, namespaceSelector and objectSelector match a
webhook is sent to it as an ``admission.k8s.io/v1`` AdmissionReview, after defaulting and schema
validation and before it is stored. ``clientConfig.url`` or ``clientConfig.service`` (resolved to the
Service's target port on 127.0.0.1, verified against ``<service>.<namespace>.svc`` with ``caBundle``)
are supported; ``failurePolicy`` Fail/Ignore and ``timeoutSeconds`` too. Mutating webhooks are stored
but not called.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp

from .errors import ApiError
from .meta import dig
from .selectors import selector_to_matcher

if TYPE_CHECKING:
    from .auth import User
    from .core import Api
    from .resources import ResourceType

JSON = dict[str, Any]
GROUP = "admissionregistration.k8s.io"
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}


def _rule_matches(rule: JSON, rt: ResourceType, sub: str, operation: str) -> bool:
    def has(values: Any, value: str) -> bool:
        return isinstance(values, list) and ("*" in values or value in values)

    if not has(rule.get("operations"), operation) or not has(rule.get("apiGroups"), rt.group):
        return False
    if not has(rule.get("apiVersions"), rt.version):
        return False
    resources = rule.get("resources") or []
    wanted = f"{rt.plural}/{sub}" if sub else rt.plural
    if not (
        wanted in resources or "*/*" in resources or (not sub and "*" in resources) or (sub and f"*/{sub}" in resources)
    ):
        return False
    scope = rule.get("scope", "*")
    return bool(scope == "*" or (scope == "Namespaced") == rt.namespaced)


def _selector_matches(selector: JSON | None, labels: dict[str, str]) -> bool:
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return True
    return selector_to_matcher(selector)({"metadata": {"labels": labels}})


class Webhooks:
    def __init__(self, api: Api) -> None:
        self.api = api

    def configured(self) -> bool:
        return bool(self.api.store.items((GROUP, "validatingwebhookconfigurations")))

    def _matching(
        self, rt: ResourceType, sub: str, operation: str, obj: JSON | None, old: JSON | None, ns: str
    ) -> list[JSON]:
        if rt.group == GROUP:
            return []  # webhook configurations are never sent to webhooks
        space = self.api.store.get(("", "namespaces"), "", ns) if ns else None
        ns_labels = (space or {}).get("metadata", {}).get("labels") or {}
        hooks = []
        for config in self.api.store.items((GROUP, "validatingwebhookconfigurations")):
            for hook in config.get("webhooks") or []:
                if not any(_rule_matches(r, rt, sub, operation) for r in hook.get("rules") or []):
                    continue
                if rt.namespaced and not _selector_matches(hook.get("namespaceSelector"), ns_labels):
                    continue
                labels = [dig(o, "metadata", "labels") or {} for o in (obj, old) if o is not None]
                if not any(_selector_matches(hook.get("objectSelector"), lb) for lb in labels or [{}]):
                    continue
                hooks.append(hook)
        return hooks

    async def validate(
        self,
        user: User,
        rt: ResourceType,
        sub: str,
        operation: str,
        obj: JSON | None,
        old: JSON | None,
        ns: str,
        name: str,
        dry_run: bool,
    ) -> list[str]:
        """Call every matching webhook; raise the denial (or a call failure under Fail); return warnings."""
        warnings: list[str] = []
        for hook in self._matching(rt, sub, operation, obj, old, ns):
            review: JSON = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": str(uuid.uuid4()),
                    "kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "resource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
                    "requestKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "requestResource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
                    "name": name,
                    "namespace": ns,
                    "operation": operation,
                    "userInfo": {"username": user.name, "uid": user.uid, "groups": list(user.groups)},
                    "object": obj,
                    "oldObject": old,
                    "dryRun": dry_run,
                },
            }
            if sub:
                review["request"]["subResource"] = sub
            response = await self._call(hook, review)
            if response is None:
                continue
            warnings.extend(response.get("warnings") or [])
            if not response.get("allowed"):
                status = response.get("status") or {}
                code = int(status.get("code") or 400)
                message = status.get("message") or ""
                text = f'admission webhook "{hook["name"]}" denied the request' + (f": {message}" if message else "")
                raise ApiError(code, status.get("reason") or _REASONS.get(code, ""), text)
        return warnings

    async def _call(self, hook: JSON, review: JSON) -> JSON | None:
        config = hook.get("clientConfig") or {}
        timeout = float(hook.get("timeoutSeconds") or 10)
        try:
            url, hostname = self._target(config)
            context = ssl.create_default_context()
            if config.get("caBundle"):
                context = ssl.create_default_context(cadata=base64.b64decode(config["caBundle"]).decode())
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(
                    f"{url}?timeout={int(timeout)}s", json=review, ssl=context, server_hostname=hostname
                ) as resp,
            ):
                if resp.status != 200:
                    raise RuntimeError(f"the server responded with HTTP {resp.status}")
                body = await resp.json(content_type=None)
            answer = body.get("response") if isinstance(body, dict) else None
            if not isinstance(answer, dict) or answer.get("uid") != review["request"]["uid"]:
                raise RuntimeError("expected response.uid to match the request uid")
            return answer
        except (TimeoutError, OSError, aiohttp.ClientError, RuntimeError, ValueError) as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: failed calling webhook "{hook["name"]}": failed to call webhook: {exc}',
            ) from exc

    def _target(self, config: JSON) -> tuple[str, str | None]:
        if config.get("url"):
            return str(config["url"]), None
        svc_ref = config.get("service") or {}
        ns, name = svc_ref.get("namespace", ""), svc_ref.get("name", "")
        service = self.api.store.get(("", "services"), ns, name)
        if service is None:
            raise RuntimeError(f'service "{name}" not found')
        port = int(svc_ref.get("port") or 443)
        spec_port = next((p for p in dig(service, "spec", "ports") or [] if p.get("port") == port), None)
        if spec_port is None:
            raise RuntimeError(f"service {ns}/{name} has no port {port}")
        target = spec_port.get("targetPort", port)
        if isinstance(target, str):
            target = self._named_port(service, target)
        path = svc_ref.get("path") or "/"
        return f"https://127.0.0.1:{target}{path}", f"{name}.{ns}.svc"

    def _named_port(self, service: JSON, port_name: str) -> int:
        ns = service["metadata"]["namespace"]
        match = selector_to_matcher({"matchLabels": dig(service, "spec", "selector") or {}})
        for pod in self.api.store.items(("", "pods"), ns):
            if not match(pod):
                continue
            for container in dig(pod, "spec", "containers") or []:
                for port in container.get("ports") or []:
                    if port.get("name") == port_name:
                        return int(port["containerPort"])
        raise RuntimeError(f'no endpoints available for service "{service["metadata"]["name"]}"')
