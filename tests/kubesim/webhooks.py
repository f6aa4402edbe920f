"""Mutating and validating admission webhooks
(https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/).

``MutatingWebhookConfiguration`` and ``ValidatingWebhookConfiguration`` objects are honoured: a
request whose operation, group, version, resource (``plural`` or ``plural/subresource``), scope,
namespaceSelector (a Namespace's own labels for namespaces) and objectSelector (the new or the old
object) match a webhook is sent to it as an ``admission.k8s.io/v1`` AdmissionReview.
``clientConfig.url`` or ``clientConfig.service`` (resolved to the Service's target port on
127.0.0.1, verified against ``<service>.<namespace>.svc`` with ``caBundle``) are supported;
``failurePolicy`` Fail/Ignore and ``timeoutSeconds`` too.

Mutating webhooks run first, one after the other, ordered by configuration name and then by their
position in it, each on the object as the previous ones left it; a ``JSONPatch`` response
(``patchType: JSONPatch``, base64 ``patch``) is applied, and the result decoded as the kind again
(custom resources: defaulted and pruned, https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting).
When a webhook changed the object, the webhooks with ``reinvocationPolicy: IfNeeded`` that ran
before it are called once more, in order, after the first round. Validating webhooks then see
the result. A denial is ``admission webhook "<name>" denied the request: <message>`` (or ``<reason>``,
or ``... denied the request without explanation``) with the webhook's code (at least 400) and
reason. ``server.py`` decides what the webhooks see (``ApiServer._webhooks``).
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp

from . import builtin_schema, schema
from .errors import ApiError
from .meta import deep, dig
from .patch import json_patch
from .selectors import selector_to_matcher

if TYPE_CHECKING:
    from .auth import User
    from .core import Api
    from .resources import ResourceType

JSON = dict[str, Any]
GROUP = "admissionregistration.k8s.io"
VALIDATING = "validatingwebhookconfigurations"
MUTATING = "mutatingwebhookconfigurations"
REVIEW = ("admission.k8s.io/v1", "AdmissionReview")


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


class CallFailed(Exception):
    """The webhook could not be called or answered nonsense: subject to its failurePolicy."""


def redecode(rt: ResourceType, obj: JSON) -> JSON:
    """An object as the server decodes it again after a webhook's patch: fields the kind lacks are
    dropped (silently), and custom resources get their schema defaults."""
    if rt.is_custom and rt.crd_version is not None:
        root = rt.crd_version["schema"]["openAPIV3Schema"]
        schema.apply_defaults(root, obj)
        schema.prune(root, obj, "", [], root=True)
    elif not rt.is_custom:
        try:
            builtin_schema.decode_check(obj, rt.group, rt.version, rt.kind)
        except ApiError as exc:
            raise ApiError(500, "InternalError", f"Internal error occurred: {exc.message}") from exc
    return obj


def as_sent(rt: ResourceType, ns: str, body: Any) -> JSON:
    """The object as the client sent it, for mutating webhooks when it is not valid yet (only
    decoded: apiVersion/kind and namespace set, fields the kind lacks dropped, CR defaults)."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
        raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
    obj = deep(body)
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    meta = obj.setdefault("metadata", {})
    if rt.namespaced:
        meta["namespace"] = ns or meta.get("namespace") or "default"
    return redecode(rt, obj)


def for_create(rt: ResourceType, preview: JSON, named: bool) -> JSON:
    """What mutating webhooks see on a create: the previewed object without what the registry
    only sets after admission (uid, creationTimestamp, generation, resourceVersion, the status a
    status subresource resets, and the generated name when the client sent only generateName)."""
    obj: JSON = deep(preview)
    meta = obj.setdefault("metadata", {})
    for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
        meta.pop(key, None)
    if not named:
        meta.pop("name", None)
    if "status" in rt.subresources:
        obj.pop("status", None)
    return obj


class Webhooks:
    def __init__(self, api: Api) -> None:
        self.api = api

    def configured(self, plural: str | None = None) -> bool:
        plurals = (plural,) if plural else (VALIDATING, MUTATING)
        return any(self.api.store.items((GROUP, p)) for p in plurals)

    def _hooks(self, plural: str) -> list[tuple[str, JSON]]:
        """Every webhook of one kind as ``(identity, webhook)``: configurations by name, then in order."""
        configs = sorted(self.api.store.items((GROUP, plural)), key=lambda c: c["metadata"]["name"])
        return [
            (f"{config['metadata']['name']}/{hook.get('name')}/{i}", hook)
            for config in configs
            for i, hook in enumerate(config.get("webhooks") or [])
        ]

    def _applies(
        self, hook: JSON, rt: ResourceType, sub: str, operation: str, obj: JSON | None, old: JSON | None, ns: str
    ) -> bool:
        if rt.group == GROUP:
            return False  # webhook configurations are never sent to webhooks
        if not any(_rule_matches(r, rt, sub, operation) for r in hook.get("rules") or []):
            return False
        if rt.namespaced:
            space = self.api.store.get(("", "namespaces"), "", ns) if ns else None
            if not _selector_matches(hook.get("namespaceSelector"), dig(space, "metadata", "labels") or {}):
                return False
        elif rt.key == ("", "namespaces"):
            # A Namespace is matched by its own labels (the new object's, else the old one's).
            labels = dig(obj if obj is not None else old, "metadata", "labels") or {}
            if not _selector_matches(hook.get("namespaceSelector"), labels):
                return False
        labels = [dig(o, "metadata", "labels") or {} for o in (obj, old) if o is not None]
        return any(_selector_matches(hook.get("objectSelector"), lb) for lb in labels or [{}])

    @staticmethod
    def _review(
        user: User,
        rt: ResourceType,
        sub: str,
        operation: str,
        obj: JSON | None,
        old: JSON | None,
        ns: str,
        name: str,
        dry_run: bool,
    ) -> JSON:
        review: JSON = {
            "apiVersion": REVIEW[0],
            "kind": REVIEW[1],
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
            review["request"]["requestSubResource"] = sub
        return review

    @staticmethod
    def _denial(hook: JSON, response: JSON) -> ApiError:
        """webhookerrors.ToStatusErr: the webhook's status, its message prefixed with who denied it."""
        status = response.get("status") or {}
        code = int(status.get("code") or 0)
        denied = f'admission webhook "{hook["name"]}" denied the request'
        if status.get("message"):
            message = f"{denied}: {status['message']}"
        elif status.get("reason"):
            message = f"{denied}: {status['reason']}"
        else:
            message = f"{denied} without explanation"
        return ApiError(max(code, 400), str(status.get("reason") or ""), message, status.get("details"))

    async def mutate(
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
    ) -> tuple[JSON | None, list[str]]:
        """Run the matching mutating webhooks; return the object if any of them changed it (else
        None) and their warnings. A denial, or a call failure under Fail, raises."""
        hooks = self._hooks(MUTATING)
        if not hooks:
            return None, []
        current = deep(obj) if obj is not None else None
        changed_any = False
        warnings: list[str] = []
        invoked: set[str] = set()  # IfNeeded webhooks called since the last change
        reinvoke: set[str] = set()
        for round_ in (1, 2):
            for key, hook in hooks:
                if round_ == 2 and key not in reinvoke:
                    continue  # a second round only calls the webhooks marked for it
                if not self._applies(hook, rt, sub, operation, current, old, ns):
                    continue
                review = self._review(user, rt, sub, operation, current, old, ns, name, dry_run)
                new = await self._mutate_once(hook, review, rt, current, warnings)
                if new is not None and new != current:
                    current, changed_any = new, True
                    # The object changed: IfNeeded webhooks that saw it before must see it again.
                    reinvoke |= invoked
                    invoked = set()
                if round_ == 1 and hook.get("reinvocationPolicy") == "IfNeeded":
                    invoked.add(key)
            if not reinvoke:
                break
        return (current if changed_any else None), warnings

    async def _mutate_once(
        self, hook: JSON, review: JSON, rt: ResourceType, obj: JSON | None, warnings: list[str]
    ) -> JSON | None:
        response = await self._call(hook, review, mutating=True)
        if response is None:
            return None  # failed, and the failurePolicy is Ignore
        warnings.extend(response.get("warnings") or [])
        if not response.get("allowed"):
            raise self._denial(hook, response)
        if not response.get("patch"):
            return None
        try:
            ops = json.loads(base64.b64decode(response["patch"], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ApiError(500, "InternalError", f"Internal error occurred: {exc}") from exc
        if not ops:
            return None
        if obj is None:
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: admission webhook "{hook["name"]}" attempted to modify the object, '
                "which is not supported for this operation",
            )
        try:
            patched = json_patch(obj, ops)
        except ApiError as exc:
            raise ApiError(500, "InternalError", f"Internal error occurred: {exc.message}") from exc
        if not isinstance(patched, dict):
            raise ApiError(500, "InternalError", "Internal error occurred: the patch did not produce an object")
        return redecode(rt, patched)

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
        """Call every matching validating webhook; raise the denial (or a call failure under Fail);
        return warnings."""
        warnings: list[str] = []
        for _, hook in self._hooks(VALIDATING):
            if not self._applies(hook, rt, sub, operation, obj, old, ns):
                continue
            review = self._review(user, rt, sub, operation, obj, old, ns, name, dry_run)
            response = await self._call(hook, review, mutating=False)
            if response is None:
                continue
            warnings.extend(response.get("warnings") or [])
            if not response.get("allowed"):
                raise self._denial(hook, response)
        return warnings

    async def _call(self, hook: JSON, review: JSON, mutating: bool) -> JSON | None:
        """POST the review; the response, or None for a failure under ``failurePolicy: Ignore``."""
        config = hook.get("clientConfig") or {}
        timeout = float(hook.get("timeoutSeconds") or 10)
        url = ""
        try:
            try:
                url, hostname = self._target(config)
                url = f"{url}?timeout={int(timeout)}s"
                context = ssl.create_default_context()
                if config.get("caBundle"):
                    context = ssl.create_default_context(cadata=base64.b64decode(config["caBundle"]).decode())
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                    session.post(url, json=review, ssl=context, server_hostname=hostname) as resp,
                ):
                    if resp.status != 200:
                        raise CallFailed(f"failed to call webhook: the server responded with HTTP {resp.status}")
                    body = await resp.json(content_type=None)
            except TimeoutError as exc:
                raise CallFailed(f'failed to call webhook: Post "{url}": context deadline exceeded') from exc
            except (OSError, aiohttp.ClientError, ValueError) as exc:
                raise CallFailed(f"failed to call webhook: {exc}") from exc
            return self._verify(review, body, mutating)
        except CallFailed as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise ApiError(
                500, "InternalError", f'Internal error occurred: failed calling webhook "{hook["name"]}": {exc}'
            ) from exc

    @staticmethod
    def _verify(review: JSON, body: Any, mutating: bool) -> JSON:
        """VerifyAdmissionResponse: the answer's kind, uid and patch fields."""

        def bad(why: str) -> CallFailed:
            return CallFailed(f"received invalid webhook response: {why}")

        if not isinstance(body, dict):
            raise CallFailed(f"failed to call webhook: the response is not an object: {str(body)[:100]}")
        answer = body.get("response")
        if not isinstance(answer, dict):
            raise bad("webhook response was absent")
        uid = review["request"]["uid"]
        if answer.get("uid") != uid:
            raise bad(f'expected response.uid="{uid}", got "{answer.get("uid", "")}"')
        if (body.get("apiVersion"), body.get("kind")) != REVIEW:
            group, _, version = str(body.get("apiVersion") or "").rpartition("/")
            got = f"{group}/{version}, Kind={body.get('kind') or ''}"
            raise bad(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {got}")
        if mutating:
            if answer.get("patch") and answer.get("patchType") is None:
                raise bad("webhook returned response.patch but not response.patchType")
            if answer.get("patchType") is not None and answer["patchType"] != "JSONPatch":
                raise bad(f'webhook returned invalid response.patchType of "{answer["patchType"]}"')
        else:
            if answer.get("patchType") is not None:
                raise bad("validating webhook may not return response.patchType")
            if answer.get("patch"):
                raise bad("validating webhook may not return response.patch")
        return answer

    def _target(self, config: JSON) -> tuple[str, str | None]:
        if config.get("url"):
            return str(config["url"]), None
        svc_ref = config.get("service") or {}
        ns, name = svc_ref.get("namespace", ""), svc_ref.get("name", "")
        service = self.api.store.get(("", "services"), ns, name)
        if service is None:
            raise CallFailed(f'failed to call webhook: service "{name}" not found')
        port = int(svc_ref.get("port") or 443)
        spec_port = next((p for p in dig(service, "spec", "ports") or [] if p.get("port") == port), None)
        if spec_port is None:
            raise CallFailed(f"failed to call webhook: service {ns}/{name} has no port {port}")
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
        raise CallFailed(f'failed to call webhook: no endpoints available for service "{service["metadata"]["name"]}"')
