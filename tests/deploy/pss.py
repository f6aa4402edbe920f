"""The Kubernetes Pod Security Standards, "restricted" profile (which includes "baseline"), as data checks.

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version
v1.32, Linux pods). ``restricted_violations`` returns one message per control a pod spec breaks, in
the words of that page, so a failing test says which control and which field. The cluster's Pod
Security Admission does the same at admission time; checking here catches a regression before any
cluster sees it, for the operator's Deployment and for every Job the operator generates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Baseline "Capabilities": what may be added beyond the runtime's default set.
BASELINE_ADDABLE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# Restricted "Volume Types": the only volume sources allowed.
RESTRICTED_VOLUME_SOURCES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(spec.get(field) or []):
            yield f"spec.{field}[{index}]", container


def _baseline(spec: dict[str, Any], annotations: dict[str, str]) -> Iterator[str]:
    pod_sc = spec.get("securityContext") or {}
    # HostProcess
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        yield "HostProcess: spec.securityContext.windowsOptions.hostProcess must be unset or false"
    # Host Namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"Host Namespaces: spec.{field} must be unset or false"
    # HostPath Volumes
    for index, volume in enumerate(spec.get("volumes") or []):
        if "hostPath" in volume:
            yield f"HostPath Volumes: spec.volumes[{index}].hostPath is forbidden"
    # AppArmor (field and annotations), SELinux, Seccomp and Sysctls at the pod level
    if (pod_sc.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in APPARMOR_ALLOWED:
        yield "AppArmor: spec.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost"
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and value != "runtime/default" and not value.startswith("localhost/"):
            yield f"AppArmor: annotation {key} must be runtime/default or localhost/*"
    yield from _selinux(pod_sc.get("seLinuxOptions"), "spec.securityContext")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield "Seccomp: spec.securityContext.seccompProfile.type must not be Unconfined"
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"Sysctls: {sysctl.get('name')} is not in the safe set"
    for where, container in _containers(spec):
        sc = container.get("securityContext") or {}
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            yield f"HostProcess: {where}.securityContext.windowsOptions.hostProcess must be unset or false"
        if sc.get("privileged"):
            yield f"Privileged Containers: {where}.securityContext.privileged must be unset or false"
        for capability in (sc.get("capabilities") or {}).get("add") or []:
            if capability not in BASELINE_ADDABLE_CAPABILITIES:
                yield f"Capabilities: {where} adds {capability}, beyond the baseline set"
        for port_index, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                yield f"Host Ports: {where}.ports[{port_index}].hostPort must be unset or 0"
        if (sc.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in APPARMOR_ALLOWED:
            yield f"AppArmor: {where}.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost"
        yield from _selinux(sc.get("seLinuxOptions"), f"{where}.securityContext")
        if sc.get("procMount", "Default") != "Default":
            yield f"/proc Mount Type: {where}.securityContext.procMount must be Default"
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield f"Seccomp: {where}.securityContext.seccompProfile.type must not be Unconfined"


def _selinux(options: dict[str, Any] | None, where: str) -> Iterator[str]:
    if not options:
        return
    if options.get("type", "") not in SELINUX_TYPES:
        yield f"SELinux: {where}.seLinuxOptions.type {options['type']!r} is not allowed"
    for field in ("user", "role"):
        if options.get(field):
            yield f"SELinux: {where}.seLinuxOptions.{field} must be unset"


def _restricted(spec: dict[str, Any]) -> Iterator[str]:
    pod_sc = spec.get("securityContext") or {}
    # Volume Types
    for index, volume in enumerate(spec.get("volumes") or []):
        sources = set(volume) - {"name"}
        for source in sorted(sources - RESTRICTED_VOLUME_SOURCES):
            yield f"Volume Types: spec.volumes[{index}].{source} is not an allowed volume type"
    pod_non_root = pod_sc.get("runAsNonRoot")
    if pod_non_root is False:
        yield "Running as Non-root: spec.securityContext.runAsNonRoot must not be false"
    if pod_sc.get("runAsUser") == 0:
        yield "Running as Non-root user: spec.securityContext.runAsUser must not be 0"
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_ALLOWED:
        yield "Seccomp: spec.securityContext.seccompProfile.type must be RuntimeDefault or Localhost"
    for where, container in _containers(spec):
        sc = container.get("securityContext") or {}
        # Privilege Escalation: must be set to false explicitly.
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"Privilege Escalation: {where}.securityContext.allowPrivilegeEscalation must be false"
        # Running as Non-root: true on the pod, or on every container; never false on a container.
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            yield f"Running as Non-root: {where} must run with runAsNonRoot true (pod or container)"
        if sc.get("runAsUser") == 0:
            yield f"Running as Non-root user: {where}.securityContext.runAsUser must not be 0"
        # Seccomp: RuntimeDefault or Localhost on the pod, or on every container.
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_ALLOWED:
            yield f"Seccomp: {where}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost"
        elif seccomp is None and pod_seccomp is None:
            yield f"Seccomp: {where} has no seccompProfile and neither has the pod"
        # Capabilities: drop ALL, add at most NET_BIND_SERVICE.
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"Capabilities: {where}.securityContext.capabilities.drop must include ALL"
        for capability in capabilities.get("add") or []:
            if capability != "NET_BIND_SERVICE":
                yield f"Capabilities: {where} may add only NET_BIND_SERVICE, not {capability}"


def restricted_violations(pod_template: dict[str, Any]) -> list[str]:
    """Every control of the restricted profile that ``pod_template`` ({metadata, spec}) breaks."""
    spec = pod_template.get("spec") or {}
    annotations = (pod_template.get("metadata") or {}).get("annotations") or {}
    return [*_baseline(spec, annotations), *_restricted(spec)]


def pod_template_of(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment/Job/StatefulSet/DaemonSet/ReplicaSet, or a CronJob's job's, or a Pod."""
    if workload["kind"] == "Pod":
        return {"metadata": workload.get("metadata") or {}, "spec": workload["spec"]}
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"])
    return dict(workload["spec"]["template"])


WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"})
