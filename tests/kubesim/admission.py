"""Per-kind defaulting, validation and side effects of the built-in resources.

What a real API server's registry strategies and admission plugins do for the kinds we serve:
pod defaults and the ServiceAccount admission plugin (the projected ``kube-api-access-*`` volume),
Job defaults and selectors, namespace lifecycle, and the CRD lifecycle (``crds.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any

from . import crds, limits
from .errors import ApiError, forbidden, invalid
from .meta import deep, dig, micro_timestamp, parse_time, random_suffix, timestamp
from .selectors import selector_to_matcher

if TYPE_CHECKING:
    from .core import Api
    from .resources import ResourceType

JSON = dict[str, Any]
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _container_defaults(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = container.get("image", "")
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    container.setdefault("imagePullPolicy", "Always" if tagless or image.endswith(":latest") else "IfNotPresent")
    container.setdefault("resources", {})


def pod_spec_defaults(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(container, dict):
            _container_defaults(container)
            # Probe defaults (SetDefaults_Probe, SetDefaults_HTTPGetAction; the Probe fields in
            # https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#Probe).
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if not isinstance(probe, dict):
                    continue
                for field, value in (
                    ("timeoutSeconds", 1),
                    ("periodSeconds", 10),
                    ("successThreshold", 1),
                    ("failureThreshold", 3),
                ):
                    probe.setdefault(field, value)
                if isinstance(probe.get("httpGet"), dict):
                    probe["httpGet"].setdefault("path", "/")
                    probe["httpGet"].setdefault("scheme", "HTTP")


def _validate_pod_spec(spec: Any, prefix: str) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    if not isinstance(spec, dict):
        return [("FieldValueRequired", prefix, "Required value")]
    containers = spec.get("containers")
    if not containers:
        causes.append(("FieldValueRequired", f"{prefix}.containers", "Required value"))
    names: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            where = f"{prefix}.{kind}[{i}]"
            if not container.get("name"):
                causes.append(("FieldValueRequired", f"{where}.name", "Required value"))
            elif container["name"] in names:
                causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{container["name"]}"'))
            names.add(container.get("name", ""))
            if not container.get("image"):
                causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
            for j, env in enumerate(container.get("env") or []):
                if not env.get("name"):
                    causes.append(("FieldValueRequired", f"{where}.env[{j}].name", "Required value"))
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        causes.append(
            (
                "FieldValueNotSupported",
                f"{prefix}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    vols = {v.get("name") for v in spec.get("volumes") or []}
    for i, container in enumerate(spec.get("containers") or []):
        for j, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("name") not in vols:
                causes.append(
                    (
                        "FieldValueNotFound",
                        f"{prefix}.containers[{i}].volumeMounts[{j}].name",
                        f'Not found: "{mount.get("name")}"',
                    )
                )
    return causes


def _validate_workload(obj: JSON, old: JSON | None) -> list[tuple[str, str, str]]:
    selector = dig(obj, "spec", "selector")
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [("FieldValueRequired", "spec.selector", "Required value")]
    causes = _validate_pod_spec(dig(obj, "spec", "template", "spec"), "spec.template.spec")
    labels = dig(obj, "spec", "template", "metadata", "labels") or {}
    if not selector_to_matcher(selector)({"metadata": {"labels": labels}}):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "Invalid value: `selector` does not match template `labels`",
            )
        )
    policy = dig(obj, "spec", "template", "spec", "restartPolicy")
    if policy not in (None, "Always"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always"',
            )
        )
    if old is not None and dig(old, "spec", "selector") != selector:
        causes.append(("FieldValueInvalid", "spec.selector", "Invalid value: field is immutable"))
    return causes


def validate_builtin(api: Api, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    name = obj["metadata"].get("name", "")
    causes: list[tuple[str, str, str]] = []
    if rt.key == ("", "pods"):
        causes = _validate_pod_spec(obj.get("spec"), "spec")
    elif rt.key == ("batch", "jobs"):
        template = dig(obj, "spec", "template")
        if not isinstance(template, dict):
            causes.append(("FieldValueRequired", "spec.template", "Required value"))
        else:
            causes = _validate_pod_spec(template.get("spec"), "spec.template.spec")
            policy = dig(template, "spec", "restartPolicy")
            if policy not in ("OnFailure", "Never"):
                causes.append(
                    (
                        "FieldValueNotSupported",
                        "spec.template.spec.restartPolicy",
                        f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                    )
                )
        for field in (
            "parallelism",
            "completions",
            "backoffLimit",
            "activeDeadlineSeconds",
            "ttlSecondsAfterFinished",
        ):
            value = dig(obj, "spec", field)
            if value is not None and (
                not isinstance(value, int) or value < (1 if field == "activeDeadlineSeconds" else 0)
            ):
                causes.append(
                    (
                        "FieldValueInvalid",
                        f"spec.{field}",
                        f"Invalid value: {value}: must be greater than or equal to 0",
                    )
                )
        if dig(obj, "spec", "completionMode") == "Indexed" and dig(obj, "spec", "completions") is None:
            causes.append(("FieldValueRequired", "spec.completions", "Required value: when completion mode is Indexed"))
    elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        causes = _validate_workload(obj, old)
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        causes = crds.validate_crd(obj, old)
    elif rt.key == ("", "configmaps") or rt.key == ("", "secrets"):
        for field in ("data", "stringData", "binaryData"):
            value = obj.get(field)
            if value is not None and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                causes.append(("FieldValueInvalid", field, "Invalid value: values must be strings"))
        if not causes:
            causes = _data_limits(rt, obj, old)
    if causes:
        raise invalid(rt.group, rt.kind, name, causes)


def _payload(rt: ResourceType, obj: JSON) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """A ConfigMap's (data, binaryData) or a Secret's (data with stringData merged, {}) as bytes."""
    if rt.key == ("", "configmaps"):
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        binary: dict[str, bytes] = {}
        for key, value in (obj.get("binaryData") or {}).items():
            try:
                binary[key] = base64.b64decode(value, validate=True)
            except ValueError:
                binary[key] = value.encode()
        return data, binary
    data = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value, validate=True)
        except ValueError:
            data[key] = value.encode()
    for key, value in (obj.get("stringData") or {}).items():
        data[key] = value.encode()
    return data, {}


def _data_limits(rt: ResourceType, obj: JSON, old: JSON | None) -> list[tuple[str, str, str]]:
    """ConfigMap and Secret rules of pkg/apis/core/validation: at most 1 MiB of data in all, and
    with ``immutable: true`` neither the data nor ``immutable`` itself may change
    (https://kubernetes.io/docs/concepts/configuration/configmap/#configmap-immutable,
    https://kubernetes.io/docs/concepts/configuration/secret/#secret-immutable)."""
    causes: list[tuple[str, str, str]] = []
    data, binary = _payload(rt, obj)
    total = sum(len(v) for v in data.values()) + sum(len(v) for v in binary.values())
    if total > limits.MAX_DATA_BYTES:
        where = "[]" if rt.key == ("", "configmaps") else "data"
        causes.append(("FieldValueTooLong", where, f"Too long: must have at most {limits.MAX_DATA_BYTES} bytes"))
    if old is not None and old.get("immutable") is True:
        locked = "Forbidden: field is immutable when `immutable` is set"
        if obj.get("immutable") is not True:
            causes.append(("FieldValueForbidden", "immutable", locked))
        old_data, old_binary = _payload(rt, old)
        if data != old_data:
            causes.append(("FieldValueForbidden", "data", locked))
        if binary != old_binary:
            causes.append(("FieldValueForbidden", "binaryData", locked))
    if old is not None and rt.key == ("", "secrets") and obj.get("type", "Opaque") != old.get("type", "Opaque"):
        causes.append(("FieldValueInvalid", "type", "Invalid value: field is immutable"))
    return causes


def admit_create(api: Api, rt: ResourceType, obj: JSON) -> None:
    if rt.key == ("", "pods"):
        _admit_pod(api, obj)
    elif rt.key == ("batch", "jobs"):
        _default_job(obj)
    elif rt.key == ("", "namespaces"):
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif rt.key == ("", "secrets"):
        _default_secret(api, obj)
    elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        _default_workload(obj, rt.plural == "deployments")
    elif rt.key == ("", "services"):
        _default_service(api, obj, None)
    elif rt.key == ("", "events"):
        _normalise_event_times(obj)
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.default_crd(obj)
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if crds.CLEANUP not in finalizers:
            finalizers.append(crds.CLEANUP)
        obj["status"] = crds.status_for(obj)


_EMPTY_STATUS = (("batch", "jobs"), ("apps", "deployments"), ("apps", "replicasets"))
"""Kinds whose create strategy resets status to its empty struct, served as ``status: {}``."""


def empty_status(rt: ResourceType, obj: JSON) -> None:
    if rt.key in _EMPTY_STATUS:
        obj["status"] = {}


def _normalise_event_times(obj: JSON) -> None:
    """Event times come back as the server re-encodes them: ``metav1.Time`` fields to the second
    with ``Z``, ``MicroTime`` ones with six digits (both shapes: core/v1 and events.k8s.io/v1)."""
    for name in ("firstTimestamp", "lastTimestamp", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
        if obj.get(name):
            obj[name] = _reencode(obj[name], name, micro=False)
    if obj.get("eventTime"):
        obj["eventTime"] = _reencode(obj["eventTime"], "eventTime", micro=True)
    series = obj.get("series")
    if isinstance(series, dict) and series.get("lastObservedTime"):
        series["lastObservedTime"] = _reencode(series["lastObservedTime"], "series.lastObservedTime", micro=True)


def _reencode(value: Any, name: str, micro: bool) -> str:
    try:
        moment = parse_time(str(value))
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f'{name}: parsing time "{value}" as RFC 3339 failed') from exc
    if moment.tzinfo is None:
        raise ApiError(400, "BadRequest", f'{name}: parsing time "{value}": missing time zone')
    return micro_timestamp(moment.astimezone(dt.UTC)) if micro else timestamp(moment.astimezone(dt.UTC))


def _default_service(api: Api, obj: JSON, old: JSON | None) -> None:
    """Service defaults (https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/):
    type ClusterIP, an allocated ``clusterIP``/``clusterIPs`` (kept on updates), sessionAffinity
    None, single-stack IPv4, internalTrafficPolicy Cluster, TCP ports whose targetPort is the port,
    and ``status.loadBalancer: {}``."""
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    if kind == "ExternalName":
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
        return
    old_spec = (old or {}).get("spec") or {}
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"], spec["clusterIPs"] = old_spec["clusterIP"], list(old_spec.get("clusterIPs") or [])
    if not spec.get("clusterIP"):
        spec["clusterIP"] = _free_cluster_ip(api)
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _free_cluster_ip(api: Api) -> str:
    """An address of the default service range 10.96.0.0/12 that no Service holds yet."""
    taken = {dig(s, "spec", "clusterIP") for s in api.store.items(("", "services"))}
    for _ in range(1000):
        candidate = f"10.{96 + secrets.randbelow(16)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"
        if candidate not in taken:
            return candidate
    raise ApiError(500, "InternalError", "the service IP range is full")


def _default_workload(obj: JSON, deployment: bool) -> None:
    """apps/v1 defaults (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if deployment:
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )
    pod_spec_defaults(spec.setdefault("template", {}).setdefault("spec", {}))


def _merge_string_data(obj: JSON) -> None:
    """``stringData`` is write-only: merged into ``data`` on every write, never stored."""
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()


def _default_secret(api: Api, obj: JSON) -> None:
    obj.setdefault("type", "Opaque")
    _merge_string_data(obj)
    if obj["type"] == "kubernetes.io/service-account-token":
        issue = api.context.get("legacy_token")
        sa = (obj["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name")
        if issue is not None and sa:
            ns = obj["metadata"]["namespace"]
            data = obj.setdefault("data", {})
            data["token"] = base64.b64encode(issue(ns, sa).encode()).decode()
            data["namespace"] = base64.b64encode(ns.encode()).decode()
            data["ca.crt"] = base64.b64encode(api.context["ca_pem"].encode()).decode()


def _admit_pod(api: Api, pod: JSON) -> None:
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    ns = pod["metadata"]["namespace"]
    sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa_name
    sa = api.store.get(("", "serviceaccounts"), ns, sa_name)
    if sa is None:
        raise forbidden(
            f'pods "{pod["metadata"].get("name")}" is forbidden: error looking up service account '
            f'{ns}/{sa_name}: serviceaccount "{sa_name}" not found'
        )
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken", True)
    if automount:
        # As the ServiceAccount plugin does: reuse a ``kube-api-access-*`` volume the pod already
        # has (so admitting an admitted pod again changes nothing), mount it in every container
        # without a mount at the token path, and add the volume only if some container needed it.
        existing = next(
            (
                v.get("name")
                for v in spec.get("volumes") or []
                if isinstance(v, dict) and str(v.get("name", "")).startswith("kube-api-access-")
            ),
            None,
        )
        volume_name = existing or f"kube-api-access-{random_suffix()}"
        needed = False
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            mounts = container.setdefault("volumeMounts", [])
            if not any(m.get("mountPath") == SA_MOUNT for m in mounts):
                mounts.append({"name": volume_name, "mountPath": SA_MOUNT, "readOnly": True})
                needed = True
        if needed and existing is None:
            spec.setdefault("volumes", []).append(
                {
                    "name": volume_name,
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                }
            )
    # DefaultTolerationSeconds: tolerate not-ready/unreachable nodes for 300 s unless the pod
    # already tolerates them (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#defaulttolerationseconds).
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = spec["tolerations"] = []
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            isinstance(t, dict) and t.get("key") in (None, "", taint) and t.get("effect") in (None, "", "NoExecute")
            for t in tolerations
        ):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    # Priority: priority and preemptionPolicy come from the PriorityClass named by
    # priorityClassName (none and no global default: 0 and PreemptLowerPriority); values that the
    # pod sets itself must agree (https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/,
    # https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#priority).
    pod_name = pod["metadata"].get("name")
    class_name = spec.get("priorityClassName") or ""
    priority, preemption = 0, "PreemptLowerPriority"
    if class_name in ("system-node-critical", "system-cluster-critical"):
        priority = 2000001000 if class_name == "system-node-critical" else 2000000000
    elif class_name:
        found = api.store.get(("scheduling.k8s.io", "priorityclasses"), "", class_name)
        if found is None:
            raise forbidden(f'pods "{pod_name}" is forbidden: no PriorityClass with name {class_name} was found')
        priority = int(found.get("value") or 0)
        preemption = found.get("preemptionPolicy") or preemption
    if spec.get("priority") is not None and spec["priority"] != priority:
        raise forbidden(
            f'pods "{pod_name}" is forbidden: the integer value of priority ({spec["priority"]}) must not be '
            f"provided in pod spec; priority admission controller computed {priority} from the given "
            "PriorityClass name"
        )
    if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != preemption:
        raise forbidden(
            f'pods "{pod_name}" is forbidden: the string value of PreemptionPolicy ({spec["preemptionPolicy"]}) '
            f"must not be provided in pod spec; priority admission controller computed {preemption} from the "
            "given PriorityClass name"
        )
    spec["priority"] = priority
    spec["preemptionPolicy"] = preemption
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _default_job(job: JSON) -> None:
    spec = job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        del spec["manualSelector"]
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    uid = job["metadata"].get("uid")
    template = spec.setdefault("template", {})
    pod_spec_defaults(template.setdefault("spec", {}))
    if uid is not None:
        _label_job(job)


def _label_job(job: JSON) -> None:
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    spec = job["spec"]
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )


def admit_update(api: Api, rt: ResourceType, new: JSON, old: JSON) -> None:
    name = old["metadata"]["name"]
    if rt.key == ("batch", "jobs"):
        _default_job(new)
        for field in ("template", "selector", "completions", "completionMode"):
            if dig(new, "spec", field) != dig(old, "spec", field):
                raise invalid(
                    rt.group,
                    rt.kind,
                    name,
                    [("FieldValueInvalid", f"spec.{field}", "Invalid value: field is immutable")],
                )
    elif rt.key == ("", "pods"):
        pod_spec_defaults(new.setdefault("spec", {}))
        mutable = deep(new["spec"])
        for i, container in enumerate(mutable.get("containers") or []):
            old_containers = dig(old, "spec", "containers") or []
            if i < len(old_containers):
                container["image"] = old_containers[i].get("image")
        for field in ("activeDeadlineSeconds", "tolerations"):
            if field in old["spec"]:
                mutable[field] = old["spec"][field]
            else:
                mutable.pop(field, None)
        if mutable != old["spec"]:
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [
                    (
                        "FieldValueForbidden",
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                        "tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                        "it was previously negative)",
                    )
                ],
            )
    elif rt.key == ("", "namespaces"):
        new["spec"] = deep(old.get("spec", {}))
    elif rt.key == ("", "secrets"):
        new.setdefault("type", old.get("type", "Opaque"))
        _merge_string_data(new)
    elif rt.key == ("", "services"):
        _default_service(api, new, old)
    elif rt.key == ("", "events"):
        _normalise_event_times(new)
    elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
        _default_workload(new, rt.plural == "deployments")
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.default_crd(new)
        if not new["metadata"].get("deletionTimestamp"):
            crds.register(api, new)


def after_create(api: Api, rt: ResourceType, obj: JSON) -> None:
    if rt.key == ("", "namespaces"):
        ns = obj["metadata"]["name"]
        sa_rt = api.resource("", "v1", "serviceaccounts")
        api.create(sa_rt, ns, {"metadata": {"name": "default"}})
        if "ca_pem" in api.context:
            cm = api.resource("", "v1", "configmaps")
            api.create(cm, ns, {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": api.context["ca_pem"]}})
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.register(api, obj)


def removed_by_controller(rt: ResourceType) -> bool:
    """Kinds whose deletion only starts on request and ends when a controller finalizes them
    (namespaces: the namespace controller empties them first)."""
    return rt.key == ("", "namespaces")


def grace_period(api: Api, rt: ResourceType, obj: JSON, requested: Any) -> int:
    """Seconds of graceful termination: only pods that a kubelet may still be running get one."""
    if rt.key != ("", "pods"):
        return 0
    if not dig(obj, "spec", "nodeName") or dig(obj, "status", "phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        if not isinstance(requested, int) or requested < 0:
            raise ApiError(422, "Invalid", "gracePeriodSeconds must be a non-negative integer")
        return requested
    return int(dig(obj, "spec", "terminationGracePeriodSeconds") or 0)


def on_terminating(api: Api, rt: ResourceType, obj: JSON) -> None:
    if rt.key == ("", "namespaces"):
        obj.setdefault("status", {})["phase"] = "Terminating"


def after_delete(api: Api, rt: ResourceType, obj: JSON) -> None:
    if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.unregister(api, obj)
