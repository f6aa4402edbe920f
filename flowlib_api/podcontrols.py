"""Pod controls: where a runner pod is placed and what it is given (``spec.pod`` of a FlowRun, of a
Flow, and of a namespace's ``FlowRunDefaults``).

A platform team's nodes are tainted, its registry is private, its batch work has a priority class:
without these a run cannot start at all. The fields are the Kubernetes pod fields of the same
names, restricted to what keeps the pod within the "restricted" Pod Security Standard and away from
what the operator owns:

- ``volumes`` may only be of the kinds the restricted standard allows (``RESTRICTED_VOLUME_KINDS``;
  no hostPath, no NFS...), the CRD's schema refuses any other; their names and mount paths must
  not clash with the runner's own (``RESERVED_VOLUME_NAMES``, ``reserved_mount_problem``). Secret
  and ConfigMap volumes are borrowed like ``spec.env`` references (``flowlib_operator.access``).
- ``labels`` and ``annotations`` of the pod may not use the keys the operator and the Job
  controller set (``reserved_key_problem``), nor the annotations that would weaken the pod's
  security profile.

Three levels set them (``layer``): the namespace's defaults, then the Flow, then the FlowRun. The
maps (``nodeSelector``, ``labels``, ``annotations``) merge key by key and the lists of named entries
(``volumes``, ``volumeMounts`` by path, ``imagePullSecrets``) entry by entry, so a FlowRun adds a
label or a volume without repeating the namespace's; ``tolerations``, ``affinity`` and
``priorityClassName`` are taken whole from the highest level that sets them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from flowlib_api.meta import API_GROUP
from flowlib_api.structural import PRESERVE_UNKNOWN

RESTRICTED_VOLUME_KINDS = (
    "configMap",
    "secret",
    "emptyDir",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "csi",
    "ephemeral",
)
"""The volume sources the restricted Pod Security Standard allows, by their pod-spec field names."""
RESERVED_VOLUME_NAMES = frozenset({"definition", "tmp", "store", "runner-token"})
"""Volumes the runner pod has already (``flowlib_operator.jobspec``)."""
RESERVED_MOUNT_PATHS = ("/tmp", "/etc/flowlib", "/var/run/flowlib", "/var/run/secrets/kubernetes.io")
"""Mount paths the runner uses: nothing may be mounted at or under them, nor over them."""
MAP_FIELDS = ("nodeSelector", "labels", "annotations")
"""Pod controls merged key by key across levels."""
KEYED_LIST_FIELDS = {"volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name"}
"""Pod controls merged entry by entry across levels, by the key given (a higher level's entry of the
same key replaces the lower's). ``tolerations``, ``affinity`` and ``priorityClassName`` are taken
whole from the highest level that sets them."""

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OWNED_KEYS = frozenset(
    {
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/name",
        "app.kubernetes.io/component",
        "kubectl.kubernetes.io/default-container",
        "controller-uid",
        "job-name",
    }
)
_OWNED_PREFIXES = (
    f"{API_GROUP}/",
    "batch.kubernetes.io/",
    # Annotations that set a container's AppArmor or seccomp profile: the pod's own profile stays.
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
)
MAX_ANNOTATIONS_BYTES = 256 * 1024
"""The API server's bound on all of an object's annotations together."""


class _Model(BaseModel):
    # defer_build: validators are built at the first validation, not at import; FlowSpec's own
    # validator includes these models, and the in-cluster runner validates none of them alone.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)


class Toleration(_Model):
    """A Kubernetes Toleration: the pod may be scheduled onto nodes with a matching taint."""

    key: str | None = Field(None, max_length=316, description="Taint key; empty with operator Exists: every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(
        None, description="Equal (the default): key and value must match; Exists: any value of the key."
    )
    value: str | None = Field(None, max_length=63, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty: every effect."
    )
    toleration_seconds: int | None = Field(
        None, description="With effect NoExecute: how long the pod stays on a node once it is tainted."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no value")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies only to effect NoExecute")
        return self


class LocalObjectReference(_Model):
    """An object of the pod's namespace, by name."""

    name: str = Field(min_length=1, max_length=253, description="Name of the object.")


class Volume(_Model):
    """A pod volume of one of the kinds the restricted Pod Security Standard allows.

    Each source keeps the Kubernetes fields of that volume kind (``kubectl explain pod.spec.volumes``).
    """

    name: str = Field(min_length=1, max_length=63, description="Volume name (a DNS label), unique in the pod.")
    config_map: dict[str, Any] | None = Field(
        None,
        description="A ConfigMap's keys as files; borrowed like spec.env configMapKeyRef (see serviceAccountName).",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    secret: dict[str, Any] | None = Field(
        None,
        description="A Secret's keys as files (secretName); borrowed like spec.env secretKeyRef.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    empty_dir: dict[str, Any] | None = Field(
        None, description="Scratch space for the pod's life (medium, sizeLimit).", json_schema_extra=PRESERVE_UNKNOWN
    )
    persistent_volume_claim: dict[str, Any] | None = Field(
        None,
        description="A PersistentVolumeClaim of the namespace (claimName, readOnly); borrowed like spec.store.pvc.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    projected: dict[str, Any] | None = Field(
        None,
        description="Several sources in one directory (secret, configMap, downwardAPI, serviceAccountToken); "
        "its Secrets and ConfigMaps are borrowed.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    downward_api: dict[str, Any] | None = Field(
        None,
        alias="downwardAPI",
        description="Fields of the pod as files.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    csi: dict[str, Any] | None = Field(
        None,
        description="An inline CSI volume (driver, volumeAttributes); a nodePublishSecretRef is borrowed.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    ephemeral: dict[str, Any] | None = Field(
        None,
        description="A claim created for the pod and deleted with it (volumeClaimTemplate); takes what "
        "creating pods takes.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        given = [kind for kind in RESTRICTED_VOLUME_KINDS if getattr(self, _ATTRIBUTES[kind]) is not None]
        if len(given) != 1:
            allowed = ", ".join(RESTRICTED_VOLUME_KINDS)
            raise ValueError(f"volume '{self.name}': set exactly one source of {allowed} (got {len(given)})")
        return self


_ATTRIBUTES = {kind: name for name, info in Volume.model_fields.items() if (kind := info.alias or name) != "name"}
assert set(_ATTRIBUTES) == set(RESTRICTED_VOLUME_KINDS), "every allowed volume kind has a field"


class VolumeMount(_Model):
    """Where one of ``volumes`` appears in the runner container."""

    name: str = Field(min_length=1, max_length=63, description="The volume (one of pod.volumes).")
    mount_path: str = Field(min_length=1, max_length=4096, description="Absolute path in the container.")
    read_only: bool | None = Field(None, description="Mount read-only.")
    sub_path: str | None = Field(
        None, max_length=4096, description="A path inside the volume to mount instead of its root."
    )


class PodControls(_Model):
    """How the runner pod is placed and what it carries besides the runner (Kubernetes pod fields)."""

    node_selector: dict[str, str] | None = Field(
        None, description="Node labels the pod's node must have (pod.spec.nodeSelector)."
    )
    tolerations: list[Toleration] | None = Field(
        None, max_length=64, description="Taints the pod tolerates (pod.spec.tolerations)."
    )
    affinity: dict[str, Any] | None = Field(
        None,
        description="Node affinity, pod affinity and anti-affinity (pod.spec.affinity).",
        json_schema_extra=PRESERVE_UNKNOWN,
    )
    volumes: list[Volume] | None = Field(
        None,
        max_length=64,
        description="Extra volumes of the kinds the restricted Pod Security Standard allows: configMap, secret, "
        "emptyDir, persistentVolumeClaim, projected, downwardAPI, csi, ephemeral. Names definition, tmp, store "
        "and runner-token are the runner's.",
    )
    volume_mounts: list[VolumeMount] | None = Field(
        None,
        max_length=64,
        description="Where the volumes appear in the runner container; not at or under /tmp, /etc/flowlib, "
        "/var/run/flowlib or /var/run/secrets/kubernetes.io (the runner's).",
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        None,
        max_length=16,
        description="Secrets holding registry credentials for the runner image; using one takes what "
        "creating pods takes, or the Secret's flowlib.dev/runner-access=true label.",
    )
    labels: dict[str, str] | None = Field(
        None,
        description="Extra labels of the runner pod; keys under flowlib.dev/ and the app.kubernetes.io/ "
        "labels the operator sets are its own.",
    )
    annotations: dict[str, str] | None = Field(
        None,
        description="Extra annotations of the runner pod; keys under flowlib.dev/ and security-profile "
        "annotations are refused.",
    )
    priority_class_name: str | None = Field(
        None, max_length=253, description="PriorityClass of the runner pod (pod.spec.priorityClassName)."
    )

    @model_validator(mode="after")
    def _within_bounds(self) -> PodControls:
        problems = controls_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return f"key '{key}': its prefix must be a DNS subdomain (lower case, e.g. example.com/)"
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        return f"key '{key}': the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _label_value_problem(key: str, value: str) -> str | None:
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        return (
            f"'{key}': value '{value}' must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending alphanumeric"
        )
    return None


def reserved_key_problem(key: str) -> str | None:
    """Why a pod label or annotation key is the operator's (or the Job controller's), or None."""
    if key in _OWNED_KEYS or key.startswith(_OWNED_PREFIXES):
        return f"key '{key}' is set by the operator or the Job controller (or would change the pod's security profile)"
    return None


def reserved_mount_problem(path: str) -> str | None:
    """Why a mount path clashes with the runner's own mounts, or None."""
    if not path.startswith("/"):
        return f"mountPath '{path}' must be absolute"
    clean = "/" + "/".join(part for part in path.split("/") if part not in ("", "."))
    if ".." in clean.split("/"):
        return f"mountPath '{path}' may not contain '..'"
    for reserved in RESERVED_MOUNT_PATHS:
        if clean == reserved or clean.startswith(reserved + "/") or reserved.startswith(clean.rstrip("/") + "/"):
            return f"mountPath '{path}' is at, under or over {reserved}, which the runner uses"
    return None


def controls_problems(controls: PodControls) -> list[str]:
    """Every problem of one level's pod controls, each naming its field within them (``labels``,
    ``volumes[0].name``); callers put where the controls are in front (``spec.pod.``)."""
    problems: list[str] = []
    for field in MAP_FIELDS:
        values: dict[str, str] = getattr(controls, _SNAKE[field]) or {}
        for key, value in values.items():
            problem = _key_problem(key)
            if problem is None and field != "nodeSelector":
                problem = reserved_key_problem(key)
            if problem is None and field != "annotations":
                problem = _label_value_problem(key, value)
            if problem is not None:
                problems.append(f"{field}: {problem}")
    if controls.annotations and sum(len(k) + len(v) for k, v in controls.annotations.items()) > MAX_ANNOTATIONS_BYTES:
        problems.append(f"annotations: more than {MAX_ANNOTATIONS_BYTES // 1024} KiB together")
    names: set[str] = set()
    for index, volume in enumerate(controls.volumes or []):
        where = f"volumes[{index}].name"
        if not _DNS_LABEL_RE.match(volume.name):
            problems.append(f"{where}: '{volume.name}' must be a DNS label (lower case letters, digits and '-')")
        elif volume.name in RESERVED_VOLUME_NAMES:
            problems.append(f"{where}: '{volume.name}' is one of the runner's own volumes; choose another name")
        elif volume.name in names:
            problems.append(f"{where}: '{volume.name}' is named twice")
        names.add(volume.name)
    paths: set[str] = set()
    for index, mount in enumerate(controls.volume_mounts or []):
        where = f"volumeMounts[{index}]"
        if controls.volumes is not None and mount.name not in names:
            problems.append(f"{where}.name: no volume '{mount.name}' in pod.volumes")
        problem = reserved_mount_problem(mount.mount_path)
        if problem is not None:
            problems.append(f"{where}.mountPath: {problem}")
        elif mount.mount_path in paths:
            problems.append(f"{where}.mountPath: '{mount.mount_path}' is mounted twice")
        paths.add(mount.mount_path)
    if controls.priority_class_name and controls.priority_class_name.startswith("system-"):
        problems.append(
            f"priorityClassName: '{controls.priority_class_name}' is reserved for the kube-system namespace"
        )
    return problems


_SNAKE = {"nodeSelector": "node_selector", "labels": "labels", "annotations": "annotations"}


def layer(*levels: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pod controls of a run from its levels, lowest first (namespace defaults, Flow, FlowRun):
    the maps of ``MAP_FIELDS`` merged key by key, the lists of ``KEYED_LIST_FIELDS`` entry by entry,
    every other field from the highest level that sets it."""
    merged: dict[str, Any] = {}
    for level in levels:
        for field, value in (level or {}).items():
            if value is None:
                continue
            if field in MAP_FIELDS and isinstance(value, Mapping):
                merged[field] = {**merged.get(field, {}), **value}
            elif field in KEYED_LIST_FIELDS and isinstance(value, list):
                key = KEYED_LIST_FIELDS[field]
                entries = {entry.get(key): entry for entry in merged.get(field, []) if isinstance(entry, Mapping)}
                entries.update({entry.get(key): entry for entry in value if isinstance(entry, Mapping)})
                merged[field] = list(entries.values())
            else:
                merged[field] = value
    return merged


def validation_problems(error: ValidationError, prefix: str = "") -> list[str]:
    """One problem per error of a model's validation, each led by its field's path (after
    ``prefix``, e.g. ``spec.``), without pydantic's "Value error, " preamble."""
    problems = []
    for detail in error.errors():
        path = ".".join(str(part) for part in detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        problems.append(f"{prefix}{path}: {message}" if path else message)
    return problems


def layered_problems(controls: Mapping[str, Any]) -> list[str]:
    """Problems that only the merged controls show: a mount of a volume another level declares is
    fine, one of a volume no level declares is not (each level alone is checked by its model)."""
    names = {v.get("name") for v in controls.get("volumes") or [] if isinstance(v, Mapping)}
    return [
        f"volumeMounts[{index}].name: no volume '{mount.get('name')}' in pod.volumes of the run, its Flow "
        "or the namespace's defaults"
        for index, mount in enumerate(controls.get("volumeMounts") or [])
        if isinstance(mount, Mapping) and mount.get("name") not in names
    ]


def pod_problems(value: object) -> list[str]:
    """Why ``value`` (one level's ``pod`` as written) is not valid pod controls, each problem naming
    its field within them; empty when it is."""
    if value is None:
        return []
    try:
        PodControls.model_validate(value)
    except ValidationError as error:
        return validation_problems(error)
    return []
