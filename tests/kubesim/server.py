"""The HTTPS front end: routing, authentication, authorization, content negotiation.

Paths follow https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris; every
failure is a ``Status`` object. Verb semantics live in ``core.Api``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from . import discovery, limits, openapi, protobuf, streams, tables
from .errors import ApiError, bad_request, conflict, forbidden, invalid, method_not_allowed
from .faults import DROP
from .meta import dig, timestamp
from .patch import json_patch, merge_patch, strategic_merge_patch
from .rbac import RBAC, Attributes, Authorizer, escalation, escalation_message, forbidden_message
from .webhooks import MUTATING, Webhooks, as_sent, for_create

if TYPE_CHECKING:
    import ssl

    from .auth import Authenticator, User
    from .core import Api
    from .faults import Faults
    from .kubelet import Kubelet
    from .resources import ResourceType
    from .store import Watcher

JSON = dict[str, Any]


def _json(
    body: Any, status: int = 200, warnings: list[str] | None = None, retry_after: int | None = None
) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Content-Type"] = "application/json"
    headers["Cache-Control"] = "no-cache, private"
    for warning in warnings or []:
        headers.add("Warning", f'299 - "{warning.replace(chr(34), chr(92) + chr(34))}"')
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status, headers=headers)


def _scale_of(obj: JSON) -> JSON:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    match = ",".join(f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": match},
    }


def invalid_scale(name: str, replicas: Any) -> ApiError:
    return invalid(
        "autoscaling",
        "Scale",
        name,
        [("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
    )


def patch_document(doc: JSON, content_type: str, raw: bytes) -> Any:
    ctype = content_type.split(";", maxsplit=1)[0].strip()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if ctype == "application/json-patch+json":
        return json_patch(doc, body)
    if ctype == "application/strategic-merge-patch+json":
        return strategic_merge_patch(doc, body)
    if ctype == "application/merge-patch+json":
        return merge_patch(doc, body)
    raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format ({ctype})")


RESOURCE_VERSION_WAIT = 3.0
"""Seconds a list waits for a resourceVersion the server has not reached (the watch cache's)."""


def deletion_answer(rt: ResourceType, obj: JSON, pending: bool, options: JSON) -> tuple[JSON, int]:
    """What a DELETE answers (k8s.io/apiserver/pkg/endpoints/handlers/delete.go, and the registry's
    finalizeDelete in registry/generic/registry/store.go): the object while its deletion is pending
    (finalizers, a grace period); once it is gone, a success ``Status`` naming it, except for the
    kinds whose registry returns the deleted object. 200 either way; 202 only for a pending deletion
    that was asked with ``orphanDependents: false`` (kept so as not to break old clients)."""
    code = 202 if pending and options.get("orphanDependents") is False else 200
    if pending or rt.returns_deleted_object:
        return obj, code
    meta = obj["metadata"]
    status: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": meta["name"], "group": rt.group, "kind": rt.plural, "uid": meta.get("uid")},
    }
    return status, code


def error_response(error: ApiError) -> web.Response:
    return _json(error.status(), error.code, retry_after=error.retry_after)


class ApiServer:
    def __init__(self, api: Api, authn: Authenticator, authz: Authorizer, faults: Faults, kubelet: Kubelet) -> None:
        self.api = api
        self.authn = authn
        self.authz = authz
        self.faults = faults
        self.kubelet = kubelet
        self.open_watches: set[Watcher] = set()
        self.webhooks = Webhooks(api)
        self.bookmark_interval = 5.0
        self.request_log: list[tuple[str, str]] = []
        self.log_requests = False
        # (user, attributes, allowed) of every authorization decision, while a test audits them.
        self.audit_log: list[tuple[str, Attributes, bool]] | None = None
        self.address = ""
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext) -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = int(sockets[0].getsockname()[1])
        self.address = f"{host}:{bound}"
        return bound

    async def stop(self) -> None:
        self.cut_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def cut_watches(self) -> int:
        watchers = list(self.open_watches)
        for watcher in watchers:
            watcher.close()
        return len(watchers)

    # -- dispatch ----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.log_requests:
            self.request_log.append((request.method, request.path_qs))
        try:
            delay, fault = self.faults.check(request.method, request.path)
            if delay:
                await asyncio.sleep(delay)
            if fault is not None:
                if fault.code == DROP and request.transport is not None:
                    request.transport.abort()
                    return web.Response(status=499)  # never sent: the connection is gone
                raise fault
            user = self.authn.authenticate(request.headers.get("Authorization"))
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await self._dispatch(request, user)
        except ApiError as exc:
            return error_response(exc)

    def _authorize(self, user: User, attrs: Attributes) -> None:
        allowed = self.authz.allowed(user, attrs)
        if self.audit_log is not None:
            self.audit_log.append((user.name, attrs, allowed))
        if not allowed:
            details = {"kind": attrs.resource, "name": attrs.name, "group": attrs.group} if attrs.is_resource else None
            error = forbidden(forbidden_message(user, attrs))
            if details is not None:
                error.details = {k: v for k, v in details.items() if v}
            raise error

    async def _dispatch(self, request: web.Request, user: User) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        if not segs or segs[0] not in ("api", "apis") or len(segs) < (2 if segs[0] == "api" else 3):
            return self._non_resource(request, user, segs)
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        else:
            group, version, rest = segs[1], segs[2], segs[3:]
        if not rest:
            self._authorize(user, Attributes(verb="get", path=request.path))
            doc = discovery.resource_list(self.api.registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.api.resource(group, version, plural)
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = self._verb(request, bool(name))
        self._authorize(user, Attributes(verb, namespace or "", group, plural, sub, name))
        ns = namespace or ""
        if verb not in rt.verbs and not sub:
            raise method_not_allowed()
        return await self._resource(request, user, rt, verb, namespace, ns, name, sub)

    @staticmethod
    def _verb(request: web.Request, named: bool) -> str:
        method = request.method
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if named else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }.get(method, method.lower())

    def _non_resource(self, request: web.Request, user: User, segs: list[str]) -> web.StreamResponse:
        path = request.path
        self._authorize(user, Attributes(verb=request.method.lower(), path=path))
        if request.method != "GET":
            raise method_not_allowed()
        reg = self.api.registry
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path.rstrip("/") == "/version":
            return _json(discovery.version_info())
        if path.rstrip("/") == "/api":
            return _json(discovery.api_versions(self.address))
        if path.rstrip("/") == "/apis":
            return _json(discovery.group_list(reg))
        if len(segs) == 2 and segs[0] == "apis":
            doc = discovery.group(reg, segs[1])
            if doc is not None:
                return _json(doc)
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "")
            if "protobuf" in accept:
                # kubectl asks for protobuf; a document without definitions makes it skip client-side
                # validation of kinds it cannot find, exactly as for kinds a real server does not list.
                return web.Response(body=openapi.V2_PROTOBUF, content_type=openapi.V2_PROTOBUF_TYPE)
            return _json(openapi.v2(reg))
        if path == "/openapi/v3":
            return _json(openapi.v3_root(reg))
        if len(segs) >= 4 and segs[:2] == ["openapi", "v3"]:
            gv = segs[2:]
            group, version = (
                ("", gv[1]) if gv[0] == "api" and len(gv) == 2 else (gv[1], gv[2]) if len(gv) == 3 else ("-", "-")
            )
            if any(rt.group == group and rt.version == version for rt in reg.all()):
                return _json(openapi.v3_group_version(reg, group, version))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # -- resources ---------------------------------------------------------------------------
    async def _read(self, request: web.Request) -> bytes:
        """The request body, refused past the API server's limit before it is decoded."""
        if request.content_length is not None and request.content_length > limits.MAX_BODY_BYTES:
            raise limits.body_too_large()
        raw = await request.read()
        limits.check_body_size(raw)
        return raw

    async def _body(self, request: web.Request, rt: ResourceType | None = None) -> Any:
        raw = await self._read(request)
        ctype = request.headers.get("Content-Type", "application/json")
        if "protobuf" in ctype:
            return protobuf.decode(raw, rt.api_version if rt else "v1", rt.kind if rt else "")
        try:
            if "yaml" in ctype:
                body = yaml.safe_load(raw)
            else:
                body = json.loads(raw) if raw else None
        except RecursionError as exc:
            raise bad_request(f"the request body nests deeper than {limits.MAX_NESTING} levels") from exc
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
        limits.check_nesting(body)
        return body

    async def _resource(
        self,
        request: web.Request,
        user: User,
        rt: ResourceType,
        verb: str,
        namespace: str | None,
        ns: str,
        name: str,
        sub: str,
    ) -> web.StreamResponse:
        q = request.query
        api = self.api
        as_table = "as=Table" in request.headers.get("Accept", "")
        dry_run = q.get("dryRun") == "All"
        strict = q.get("fieldValidation") == "Strict"
        ignore = q.get("fieldValidation") == "Ignore"
        if verb == "watch":
            if name:
                selector = f"metadata.name={name}"
                query = dict(q)
                query["fieldSelector"] = ",".join(x for x in (q.get("fieldSelector"), selector) if x)
                request = request.clone(rel_url=request.rel_url.with_query(query))
            return await streams.watch(self, request, rt, namespace, as_table)
        if verb == "list":
            await self._wait_for_resource_version(request)
            return self._list(rt, namespace, request, as_table)
        if sub == "scale":
            return await self._scale(request, rt, verb, ns, name, dry_run)
        if verb == "get":
            obj = api.get(rt, ns, name)
            if sub == "log":
                return await streams.pod_log(self, request, obj)
            if as_table:
                return _json(
                    tables.table(rt, [obj], obj["metadata"]["resourceVersion"], q.get("includeObject", "Metadata"))
                )
            if "as=PartialObjectMetadata;" in request.headers.get("Accept", "") + ";":
                # The metadata alone (what `kubectl get --show-labels` and controllers that only need
                # labels ask for): the same authorization, none of the data.
                return _json(
                    {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
                )
            return _json(obj)
        if verb == "create":
            body = await self._body(request, rt)
            if sub:
                return self._create_sub(rt, ns, name, sub, body, user)
            if name:
                raise method_not_allowed()
            if rt.group in ("authorization.k8s.io", "authentication.k8s.io"):
                return self._review(rt, body, user)
            self._no_escalation(user, rt, ns, body)
            mutated, hooked, decoded = await self._webhooks(
                user,
                rt,
                "",
                "CREATE",
                ns,
                "",
                dry_run,
                lambda new, dry: api.create(rt, ns, body if new is None else new, dry, strict),
                lambda: body,
            )
            obj, warnings = api.create(rt, ns, body if mutated is None else mutated, dry_run, strict)
            return _json(obj, 201, hooked + ([] if ignore else decoded + warnings))
        if verb == "update":
            body = await self._body(request, rt)
            self._no_escalation(user, rt, ns, body)
            mutated, hooked, decoded = await self._webhooks(
                user,
                rt,
                sub,
                "UPDATE",
                ns,
                name,
                dry_run,
                lambda new, dry: api.update(rt, ns, name, body if new is None else new, sub or None, dry, strict),
                lambda: body,
            )
            obj, warnings = api.update(rt, ns, name, body if mutated is None else mutated, sub or None, dry_run, strict)
            return _json(obj, 200, hooked + ([] if ignore else decoded + warnings))
        if verb == "patch":
            raw = await self._read(request)
            if rt.group == RBAC and not user.is_admin:
                result, _ = api.patch(
                    rt,
                    ns,
                    name,
                    request.headers.get("Content-Type", ""),
                    raw,
                    sub or None,
                    True,
                    strict,
                    q.get("fieldManager"),
                )
                self._no_escalation(user, rt, ns, result)
            ctype = request.headers.get("Content-Type", "")
            operation = "UPDATE" if api.find(rt, ns, name) is not None else "CREATE"

            def write(new: JSON | None, dry: bool) -> tuple[JSON, list[str]]:
                """The patch, or (after mutating webhooks) the object they made of its result."""
                if new is None:
                    return api.patch(rt, ns, name, ctype, raw, sub or None, dry, strict, q.get("fieldManager"))
                if operation == "CREATE":
                    return api.create(rt, ns, new, dry, strict)
                return api.update(rt, ns, name, new, sub or None, dry, strict)

            mutated, hooked, decoded = await self._webhooks(
                user,
                rt,
                sub,
                operation,
                ns,
                name,
                dry_run,
                write,
                lambda: (
                    yaml.safe_load(raw) if operation == "CREATE" else patch_document(api.get(rt, ns, name), ctype, raw)
                ),
            )
            obj, warnings = write(mutated, dry_run)
            return _json(obj, 200, hooked + ([] if ignore else decoded + warnings))
        options = await self._delete_options(request)
        if verb == "delete":
            if self.webhooks.configured():
                old = api.get(rt, ns, name)
                await self.webhooks.mutate(user, rt, "", "DELETE", None, old, ns, name, dry_run)
                await self.webhooks.validate(user, rt, "", "DELETE", None, old, ns, name, dry_run)
            obj = api.delete(rt, ns, name, options, dry_run)
            pending = bool(obj["metadata"].get("deletionTimestamp")) and (dry_run or api.find(rt, ns, name) is not None)
            return _json(*deletion_answer(rt, obj, pending, options))
        if verb == "deletecollection":
            return _json(
                api.delete_collection(rt, namespace, q.get("labelSelector"), q.get("fieldSelector"), options, dry_run)
            )
        raise method_not_allowed()

    async def _scale(
        self, request: web.Request, rt: ResourceType, verb: str, ns: str, name: str, dry_run: bool
    ) -> web.Response:
        """The ``scale`` subresource: an ``autoscaling/v1`` Scale view of ``spec.replicas``."""
        obj = self.api.get(rt, ns, name)
        if verb not in ("get", "update", "patch"):
            raise method_not_allowed()
        if verb != "get":
            raw = await self._read(request)
            if verb == "update":
                body = await self._parse(raw, request.headers.get("Content-Type", "application/json"))
            else:
                body = patch_document(_scale_of(obj), request.headers.get("Content-Type", ""), raw)
            replicas = ((body or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid_scale(name, replicas)
            new = {**obj, "spec": {**obj["spec"], "replicas": replicas}}
            obj, _ = self.api.update(rt, ns, name, new, None, dry_run)
        return _json(_scale_of(obj))

    async def _parse(self, raw: bytes, ctype: str) -> Any:
        try:
            return yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"couldn't decode the body: {exc}") from exc

    async def _webhooks(
        self,
        user: User,
        rt: ResourceType,
        sub: str,
        operation: str,
        ns: str,
        name: str,
        dry_run: bool,
        write: Callable[[JSON | None, bool], tuple[JSON, list[str]]],
        sent: Callable[[], Any],
    ) -> tuple[JSON | None, list[str], list[str]]:
        """Admission webhooks in a real server's order
        (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/):
        mutating webhooks see the object after the built-in defaulting and mutating admission (the
        request previewed by a dry run; on create without what the registry sets later, see
        ``webhooks.for_create``), or the object as sent when it is invalid until a webhook fixes it;
        their result is validated (another dry run) and is what the validating webhooks see.

        ``write(obj, dry_run)`` performs the request (``obj`` None) or writes ``obj`` in its place;
        ``sent()`` is the object the client sent (a patch applied to the stored object). Returns the
        object to write instead of the request (None when no webhook changed it), the webhooks'
        warnings, and, when the object is replaced, the request's own unknown-field warnings."""
        if not self.webhooks.configured():
            return None, [], []
        for _ in range(5):
            refusal: ApiError | None = None
            try:
                preview, decoded = write(None, True)
            except ApiError as exc:
                # Schema validation comes after mutating admission: a webhook may still fix it.
                if exc.code != 422 or not self.webhooks.configured(MUTATING):
                    raise
                refusal, decoded = exc, []
                try:
                    preview = as_sent(rt, ns, sent())
                except (ApiError, ValueError, yaml.YAMLError):
                    raise exc from None
            old: JSON | None = None
            request_name = name
            if operation == "CREATE":
                given = sent()
                given_meta = given.get("metadata") if isinstance(given, dict) else None
                request_name = str((given_meta if isinstance(given_meta, dict) else {}).get("name") or "")
                target = preview if refusal is not None else for_create(rt, preview, bool(request_name))
            else:
                old = self.api.get(rt, ns, name)
                target = preview
            mutated, warnings = await self.webhooks.mutate(
                user, rt, sub, operation, target, old, ns, request_name, dry_run
            )
            if mutated is None and refusal is not None:
                raise refusal
            if mutated is not None:
                if old is not None:
                    mutated.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
                preview, _ = write(mutated, True)  # schema validation of what the webhooks made
            meta = preview.get("metadata") or {}
            warnings += await self.webhooks.validate(
                user, rt, sub, operation, preview, old, ns, meta.get("name", request_name), dry_run
            )
            if mutated is None:
                return None, warnings, []
            if old is None or dig(self.api.find(rt, ns, name), "metadata", "resourceVersion") == dig(
                old, "metadata", "resourceVersion"
            ):
                return mutated, warnings, decoded
            # The object changed while the webhooks ran: admit the request again on the new one
            # (a real server's update retries the same way), so the mutated object overwrites nothing.
        raise conflict(
            rt.group,
            rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )

    def _no_escalation(self, user: User, rt: ResourceType, ns: str, body: Any) -> None:
        """RBAC escalation prevention: a role may only grant what its author holds (or the author has
        ``escalate``); a binding may only bind a role whose permissions the author holds (or ``bind``)."""
        if rt.group != RBAC or user.is_admin or not isinstance(body, dict):
            return
        name = (body.get("metadata") or {}).get("name", "")
        scope = ns if rt.namespaced else ""
        if rt.plural in ("roles", "clusterroles"):
            if self.authz.allowed(user, Attributes("escalate", scope, RBAC, rt.plural, "", name)):
                return
            granted = list(body.get("rules") or [])
        elif rt.plural in ("rolebindings", "clusterrolebindings"):
            ref = body.get("roleRef") or {}
            target = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            if self.authz.allowed(user, Attributes("bind", scope, RBAC, target, "", ref.get("name", ""))):
                return
            granted = self.authz.role_rules(ref, scope)
        else:
            return
        missing = escalation(self.authz.rules_for(user, scope), granted)
        if missing:
            raise forbidden(escalation_message(rt.plural, name, user, missing))

    async def _delete_options(self, request: web.Request) -> JSON:
        body = await self._body(request) if request.can_read_body else None
        options: JSON = dict(body) if isinstance(body, dict) else {}
        q = request.query
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "orphanDependents" in q:
            options["orphanDependents"] = q["orphanDependents"] == "true"
        return options

    async def _wait_for_resource_version(self, request: web.Request) -> None:
        """A list at a ``resourceVersion`` the server has not reached (NotOlderThan, the default for
        a non-zero one) waits for it, then fails as the watch cache does: 504 Timeout "Too large
        resource version" with a ResourceVersionTooLarge cause and a retry hint
        (https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list;
        storage.NewTooLargeResourceVersionError)."""
        q = request.query
        text = q.get("resourceVersion", "")
        if text in ("", "0") or q.get("resourceVersionMatch", "NotOlderThan") != "NotOlderThan":
            return
        try:
            wanted = int(text)
        except ValueError as exc:
            raise bad_request(f"invalid resource version: {text!r}") from exc
        store = self.api.store
        deadline = time.monotonic() + RESOURCE_VERSION_WAIT
        while store.rv < wanted:
            if time.monotonic() >= deadline:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {wanted}, current: {store.rv}",
                    {
                        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                        "retryAfterSeconds": 1,
                    },
                    retry_after=1,
                )
            await asyncio.sleep(0.05)

    def _list(self, rt: ResourceType, namespace: str | None, request: web.Request, as_table: bool) -> web.Response:
        q = request.query
        listed = self.api.list_objects(rt, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        items = listed["items"]
        start = 0
        if q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(q["continue"]))
                start = int(token["start"])
            except (ValueError, KeyError) as exc:
                raise bad_request("continue key is not valid") from exc
            listed["metadata"]["resourceVersion"] = str(token["rv"])
        limit = int(q.get("limit") or 0)
        if limit > 0 and len(items) > start + limit:
            token = {"rv": int(listed["metadata"]["resourceVersion"]), "start": start + limit}
            listed["metadata"]["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            listed["metadata"]["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        else:
            items = items[start:]
        listed["items"] = items
        if as_table:
            table = tables.table(rt, items, listed["metadata"]["resourceVersion"], q.get("includeObject", "Metadata"))
            table["metadata"].update({k: v for k, v in listed["metadata"].items() if k != "resourceVersion"})
            return _json(table)
        return _json(listed)

    def _create_sub(self, rt: ResourceType, ns: str, name: str, sub: str, body: Any, user: User) -> web.Response:
        """``serviceaccounts/<name>/token``: a TokenRequest, as pkg/registry/core/serviceaccount/storage/token.go
        answers it. ``expirationSeconds`` defaults to an hour and must lie between 10 minutes and 2^32
        seconds (422, ``ValidateTokenRequest``); a ``boundObjectRef`` must be a Pod (running as this
        account), a Secret or a Node (400 for any other kind), must exist (404) and, when it names a
        uid, be that very object (409). The token then stops authenticating with that object."""
        if rt.key != ("", "serviceaccounts") or sub != "token":
            raise method_not_allowed()
        self.api.get(rt, ns, name)
        spec = dict((body or {}).get("spec") or {})
        raw_seconds = spec.get("expirationSeconds")
        seconds = 3600 if raw_seconds is None else raw_seconds
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise bad_request(f"json: cannot unmarshal {type(seconds).__name__} into Go struct field of type int64")
        if seconds < 600 or seconds > 1 << 32:
            limit = "less than 10 minutes" if seconds < 600 else "larger than 2^32 seconds"
            raise invalid(
                "authentication.k8s.io",
                "TokenRequest",
                "",
                [
                    (
                        "FieldValueInvalid",
                        "spec.expirationSeconds",
                        f"Invalid value: {seconds}: may not specify a duration {limit}",
                    )
                ],
            )
        pod = secret = node = None
        ref = spec.get("boundObjectRef")
        if ref:
            api_version, kind, ref_name = str(ref.get("apiVersion") or ""), ref.get("kind"), str(ref.get("name") or "")
            group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
            if group == "" and kind == "Pod":
                pod = self.api.get(self.api.resource("", "v1", "pods"), ns, ref_name)
                if pod["spec"].get("serviceAccountName", "default") != name:
                    raise bad_request(
                        f'cannot bind token for serviceaccount "{name}" to pod running with different '
                        "serviceaccount name."
                    )
                bound = pod
            elif group == "" and kind == "Secret":
                secret = self.api.get(self.api.resource("", "v1", "secrets"), ns, ref_name)
                bound = secret
            elif group == "" and kind == "Node":
                node = self.api.get(self.api.resource("", "v1", "nodes"), "", ref_name)
                bound = node
            else:
                shown = api_version if "/" in api_version else f"/{api_version}"
                raise bad_request(f"cannot bind token to object of type {shown}, Kind={kind}")
            if ref.get("uid") and ref["uid"] != bound["metadata"]["uid"]:
                raise conflict(
                    "",
                    str(kind),
                    ref_name,
                    f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                    "The object might have been deleted and then recreated",
                )
            spec["boundObjectRef"] = {**ref, "uid": bound["metadata"]["uid"]}
        token = self.authn.issue(ns, name, seconds, pod, spec.get("audiences"), secret, node)
        expires = timestamp(dt.datetime.fromtimestamp(time.time() + seconds, dt.UTC))
        return _json(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns},
                "spec": {**spec, "expirationSeconds": seconds},
                "status": {"token": token, "expirationTimestamp": expires},
            },
            201,
        )

    def _review(self, rt: ResourceType, body: Any, user: User) -> web.Response:
        spec = (body or {}).get("spec") or {}
        out: JSON = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {}, "spec": spec}
        if rt.plural == "tokenreviews":
            found = self.authn.review(spec.get("token", ""))
            status: JSON = {"authenticated": found is not None}
            out["status"] = status
            if found is not None:
                status["user"] = {
                    "username": found.name,
                    "uid": found.uid,
                    "groups": list(found.groups),
                }
            return _json(out, 201)
        subject = user
        if rt.plural == "subjectaccessreviews":
            from .auth import User as UserType

            subject = UserType(spec.get("user", ""), tuple(spec.get("groups") or []))
        res = spec.get("resourceAttributes")
        if res is not None:
            attrs = Attributes(
                res.get("verb", ""),
                res.get("namespace", ""),
                res.get("group", ""),
                res.get("resource", ""),
                res.get("subresource", ""),
                res.get("name", ""),
            )
        else:
            non = spec.get("nonResourceAttributes") or {}
            attrs = Attributes(non.get("verb", ""), path=non.get("path", "/"))
        allowed = self.authz.allowed(subject, attrs)
        out["status"] = {"allowed": allowed, "reason": "RBAC: allowed" if allowed else ""}
        return _json(out, 201)
