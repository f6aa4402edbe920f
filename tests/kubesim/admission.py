"""Per-kind defaulting, validation and side effects of the built-in resources.

What a real API server's registry strategies and admission plugins do for the kinds we serve:
pod defaults and the ServiceAccount admission plugin (the projected ``kube-api-access-*`` volume),
Job defaults and selectors, namespace lifecycle, and the CRD lifecycle (``crds.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import crds
from .errors import ApiError, forbidden, invalid
from .meta import deep, dig, random_suffix
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
    if causes:
        raise invalid(rt.group, rt.kind, name, causes)


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
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.default_crd(obj)
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if crds.CLEANUP not in finalizers:
            finalizers.append(crds.CLEANUP)
        obj["status"] = crds.status_for(obj)


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


def _default_secret(api: Api, obj: JSON) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        import base64

        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
    if obj["type"] == "kubernetes.io/service-account-token":
        issue = api.context.get("legacy_token")
        sa = (obj["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name")
        if issue is not None and sa:
            import base64

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
        volume_name = f"kube-api-access-{random_suffix()}"
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
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            mounts = container.setdefault("volumeMounts", [])
            if not any(m.get("mountPath") == SA_MOUNT for m in mounts):
                mounts.append({"name": volume_name, "mountPath": SA_MOUNT, "readOnly": True})
    spec.setdefault(
        "tolerations",
        [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    )
    spec.setdefault("priority", 0)
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
