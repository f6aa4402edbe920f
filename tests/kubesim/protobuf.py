"""Decoding of ``application/vnd.kubernetes.protobuf`` request bodies.

kubectl's typed commands (``create configmap|secret|namespace|serviceaccount|token|job|role...``,
``run``, ``auth can-i``) send protobuf. Responses are always JSON, which those clients accept. Only
the kinds listed in ``SCHEMAS`` are known; a body with a field this table lacks is refused with 415
rather than silently losing data. Field numbers are those of the Kubernetes API's protobuf
definitions (``k8s.io/api/.../generated.proto``).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from .errors import ApiError

JSON = dict[str, Any]
MAGIC = b"k8s\x00"
# A field: (json name, kind, sub-schema name or None, repeated, pointer). ``pointer`` fields keep zero
# values; other zero values are dropped, as Go's omitempty does when it re-encodes them as JSON.
Field = tuple[str, str, str | None, bool, bool]


def _f(name: str, kind: str = "string", sub: str | None = None, repeated: bool = False, pointer: bool = False) -> Field:
    return (name, kind, sub, repeated, pointer)


SCHEMAS: dict[str, dict[int, Field]] = {
    "Unknown": {
        1: _f("typeMeta", "msg", "TypeMeta"),
        2: _f("raw", "bytes"),
        3: _f("contentEncoding"),
        4: _f("contentType"),
    },
    "TypeMeta": {1: _f("apiVersion"), 2: _f("kind")},
    "ObjectMeta": {
        1: _f("name"),
        2: _f("generateName"),
        3: _f("namespace"),
        4: _f("selfLink"),
        5: _f("uid"),
        6: _f("resourceVersion"),
        7: _f("generation", "int"),
        8: _f("creationTimestamp", "time"),
        9: _f("deletionTimestamp", "time"),
        10: _f("deletionGracePeriodSeconds", "int", pointer=True),
        11: _f("labels", "map"),
        12: _f("annotations", "map"),
        13: _f("ownerReferences", "msg", "OwnerReference", True),
        14: _f("finalizers", repeated=True),
        17: _f("managedFields", "msg", "Ignored", True),
    },
    "Ignored": {},
    "OwnerReference": {
        1: _f("kind"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("controller", "bool", pointer=True),
        7: _f("blockOwnerDeletion", "bool", pointer=True),
    },
    "ConfigMap": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("data", "map"),
        3: _f("binaryData", "mapbytes"),
        4: _f("immutable", "bool", pointer=True),
    },
    "Secret": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("data", "mapbytes"),
        3: _f("type"),
        4: _f("stringData", "map"),
        5: _f("immutable", "bool", pointer=True),
    },
    "Namespace": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("spec", "msg", "NamespaceSpec"),
        3: _f("status", "msg", "Ignored"),
    },
    "NamespaceSpec": {1: _f("finalizers", repeated=True)},
    "ServiceAccount": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("secrets", "msg", "ObjectReference", True),
        3: _f("imagePullSecrets", "msg", "LocalObjectReference", True),
        4: _f("automountServiceAccountToken", "bool", pointer=True),
    },
    "ObjectReference": {
        1: _f("kind"),
        2: _f("namespace"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("resourceVersion"),
        7: _f("fieldPath"),
    },
    "LocalObjectReference": {1: _f("name")},
    "TokenRequest": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("spec", "msg", "TokenRequestSpec"),
        3: _f("status", "msg", "Ignored"),
    },
    "TokenRequestSpec": {
        1: _f("audiences", repeated=True),
        3: _f("boundObjectRef", "msg", "BoundObjectReference"),
        4: _f("expirationSeconds", "int", pointer=True),
    },
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
    "SelfSubjectAccessReview": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("spec", "msg", "SelfSubjectAccessReviewSpec"),
        3: _f("status", "msg", "Ignored"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: _f("resourceAttributes", "msg", "ResourceAttributes"),
        2: _f("nonResourceAttributes", "msg", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: _f("namespace"),
        2: _f("verb"),
        3: _f("group"),
        4: _f("version"),
        5: _f("resource"),
        6: _f("subresource"),
        7: _f("name"),
    },
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "Role": {1: _f("metadata", "msg", "ObjectMeta"), 2: _f("rules", "msg", "PolicyRule", True)},
    "ClusterRole": {1: _f("metadata", "msg", "ObjectMeta"), 2: _f("rules", "msg", "PolicyRule", True)},
    "PolicyRule": {
        1: _f("verbs", repeated=True),
        2: _f("apiGroups", repeated=True),
        3: _f("resources", repeated=True),
        4: _f("resourceNames", repeated=True),
        5: _f("nonResourceURLs", repeated=True),
    },
    "RoleBinding": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("subjects", "msg", "Subject", True),
        3: _f("roleRef", "msg", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: _f("metadata", "msg", "ObjectMeta"),
        2: _f("subjects", "msg", "Subject", True),
        3: _f("roleRef", "msg", "RoleRef"),
    },
    "Subject": {1: _f("kind"), 2: _f("apiGroup"), 3: _f("name"), 4: _f("namespace")},
    "RoleRef": {1: _f("apiGroup"), 2: _f("kind"), 3: _f("name")},
    "Job": {1: _f("metadata", "msg", "ObjectMeta"), 2: _f("spec", "msg", "JobSpec"), 3: _f("status", "msg", "Ignored")},
    "JobSpec": {
        1: _f("parallelism", "int", pointer=True),
        2: _f("completions", "int", pointer=True),
        3: _f("activeDeadlineSeconds", "int", pointer=True),
        4: _f("selector", "msg", "LabelSelector"),
        5: _f("manualSelector", "bool", pointer=True),
        6: _f("template", "msg", "PodTemplateSpec"),
        7: _f("backoffLimit", "int", pointer=True),
        8: _f("ttlSecondsAfterFinished", "int", pointer=True),
        9: _f("completionMode", pointer=True),
        10: _f("suspend", "bool", pointer=True),
        14: _f("podReplacementPolicy", pointer=True),
    },
    "LabelSelector": {1: _f("matchLabels", "map"), 2: _f("matchExpressions", "msg", "LabelSelectorRequirement", True)},
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _f("values", repeated=True)},
    "PodTemplateSpec": {1: _f("metadata", "msg", "ObjectMeta"), 2: _f("spec", "msg", "PodSpec")},
    "Pod": {1: _f("metadata", "msg", "ObjectMeta"), 2: _f("spec", "msg", "PodSpec"), 3: _f("status", "msg", "Ignored")},
    "PodSpec": {
        2: _f("containers", "msg", "Container", True),
        3: _f("restartPolicy"),
        4: _f("terminationGracePeriodSeconds", "int", pointer=True),
        5: _f("activeDeadlineSeconds", "int", pointer=True),
        6: _f("dnsPolicy"),
        7: _f("nodeSelector", "map"),
        8: _f("serviceAccountName"),
        9: _f("serviceAccount"),
        10: _f("nodeName"),
        11: _f("hostNetwork", "bool"),
        12: _f("hostPID", "bool"),
        13: _f("hostIPC", "bool"),
        14: _f("securityContext", "msg", "Empty"),
        15: _f("imagePullSecrets", "msg", "LocalObjectReference", True),
        16: _f("hostname"),
        17: _f("subdomain"),
        19: _f("schedulerName"),
        20: _f("initContainers", "msg", "Container", True),
        21: _f("automountServiceAccountToken", "bool", pointer=True),
        25: _f("priority", "int", pointer=True),
        30: _f("enableServiceLinks", "bool", pointer=True),
    },
    "Empty": {},
    "Container": {
        1: _f("name"),
        2: _f("image"),
        3: _f("command", repeated=True),
        4: _f("args", repeated=True),
        5: _f("workingDir"),
        7: _f("env", "msg", "EnvVar", True),
        8: _f("resources", "msg", "Empty"),
        9: _f("volumeMounts", "msg", "VolumeMount", True),
        13: _f("terminationMessagePath"),
        14: _f("imagePullPolicy"),
        16: _f("stdin", "bool"),
        17: _f("stdinOnce", "bool"),
        18: _f("tty", "bool"),
        20: _f("terminationMessagePolicy"),
    },
    "EnvVar": {1: _f("name"), 2: _f("value", pointer=True), 3: _f("valueFrom", "msg", "EnvVarSource")},
    "EnvVarSource": {
        1: _f("fieldRef", "msg", "ObjectFieldSelector"),
        3: _f("configMapKeyRef", "msg", "KeySelector"),
        4: _f("secretKeyRef", "msg", "KeySelector"),
    },
    "ObjectFieldSelector": {1: _f("apiVersion"), 2: _f("fieldPath")},
    "KeySelector": {
        1: _f("localObjectReference", "msg", "LocalObjectReference"),
        2: _f("key"),
        3: _f("optional", "bool", pointer=True),
    },
    "VolumeMount": {1: _f("name"), 2: _f("readOnly", "bool"), 3: _f("mountPath"), 4: _f("subPath")},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    pos = 0
    value: Any
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ApiError(400, "BadRequest", f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_message(data: bytes, schema_name: str) -> JSON:
    schema = SCHEMAS[schema_name]
    out: JSON = {}
    for number, _wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            if schema_name in ("Ignored",) or (isinstance(value, bytes) and not value):
                continue
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"kubesim cannot decode protobuf field {number} of {schema_name}; send JSON instead",
            )
        name, kind, sub, repeated, pointer = field
        if kind == "string":
            decoded: Any = value.decode()
        elif kind == "bytes":
            decoded = bytes(value)
        elif kind == "int":
            decoded = _signed(value)
        elif kind == "bool":
            decoded = bool(value)
        elif kind == "time":
            parts = dict((n, v) for n, _, v in _fields(value))
            seconds = _signed(parts.get(1, 0))
            if not seconds:
                continue
            decoded = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind in ("map", "mapbytes"):
            entry = dict((n, v) for n, _, v in _fields(value))
            raw = entry.get(2, b"")
            mapped = base64.b64encode(raw).decode() if kind == "mapbytes" else raw.decode()
            out.setdefault(name, {})[entry.get(1, b"").decode()] = mapped
            continue
        else:
            assert sub is not None
            decoded = decode_message(value, sub)
        if not pointer and not repeated and decoded in ("", 0, False) and kind != "msg":
            continue
        if repeated:
            out.setdefault(name, []).append(decoded)
        else:
            out[name] = decoded
    if schema_name == "KeySelector" and "localObjectReference" in out:
        out.update(out.pop("localObjectReference"))
    return out


def decode(body: bytes, api_version: str, kind: str) -> JSON:
    """The JSON form of a protobuf-encoded object (``k8s\\0`` + runtime.Unknown envelope)."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "BadRequest", "protobuf body does not start with the k8s magic number")
    envelope = decode_message(body[len(MAGIC) :], "Unknown")
    meta = envelope.get("typeMeta") or {}
    kind = meta.get("kind") or kind
    if kind not in SCHEMAS:
        raise ApiError(
            415, "UnsupportedMediaType", f"kubesim cannot decode protobuf for kind {kind}; send JSON instead"
        )
    obj = decode_message(envelope.get("raw", b""), kind)
    obj["apiVersion"] = meta.get("apiVersion") or api_version
    obj["kind"] = kind
    return obj
