"""Pod Security "restricted" for every pod this project creates: the operator's (each overlay) and the
runner Jobs the operator generates. The negative tests show the checker catches each control."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.manifests import KUSTOMIZATIONS, render, runner_jobs
from tests.deploy.pss import WORKLOAD_KINDS, pod_template_of, restricted_violations


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_rendered_workload_is_restricted(directory: str) -> None:
    workloads = [o for o in render(directory) if o["kind"] in WORKLOAD_KINDS]
    assert workloads
    for workload in workloads:
        assert restricted_violations(pod_template_of(workload)) == [], workload["metadata"]["name"]


def test_every_generated_runner_job_is_restricted() -> None:
    for job in runner_jobs():
        assert restricted_violations(pod_template_of(job)) == [], job["metadata"]["name"]


def test_runner_job_and_operator_run_as_the_image_user() -> None:
    """The image's user (Dockerfile: 65532) is the one both pods ask for, and root stays read-only."""
    from flowlib_operator.jobspec import RUNNER_UID

    assert RUNNER_UID == 65532
    operator = pod_template_of(next(o for o in render("deploy") if o["kind"] == "Deployment"))
    for template in [operator, *(pod_template_of(job) for job in runner_jobs())]:
        assert template["spec"]["securityContext"]["runAsUser"] == RUNNER_UID
        for container in template["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


# -- the checker itself ----------------------------------------------------------------------------


def _compliant() -> dict[str, Any]:
    return {
        "metadata": {},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets ``value`` at a dotted path under the pod; ``c.`` means the first container."""

    def mutate(pod: dict[str, Any]) -> None:
        parts = path.split(".")
        node = _container(pod) if parts[0] == "c" else pod["spec"]
        for part in parts[1 if parts[0] == "c" else 0 : -1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(pod: dict[str, Any]) -> None:
        parts = path.split(".")
        node = _container(pod) if parts[0] == "c" else pod["spec"]
        for part in parts[1 if parts[0] == "c" else 0 : -1]:
            node = node[part]
        del node[parts[-1]]

    return mutate


def _add_init_container(pod: dict[str, Any]) -> None:
    pod["spec"]["initContainers"] = [{"name": "init", "image": "x"}]


def _apparmor_annotation(pod: dict[str, Any]) -> None:
    pod["metadata"]["annotations"] = {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}


VIOLATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "host network": (_set("hostNetwork", True), "Host Namespaces"),
    "host pid": (_set("hostPID", True), "Host Namespaces"),
    "host ipc": (_set("hostIPC", True), "Host Namespaces"),
    "privileged": (_set("c.securityContext.privileged", True), "Privileged Containers"),
    "baseline capability": (_set("c.securityContext.capabilities.add", ["SYS_ADMIN"]), "Capabilities"),
    "restricted capability": (_set("c.securityContext.capabilities.add", ["CHOWN"]), "Capabilities"),
    "drop not ALL": (_set("c.securityContext.capabilities.drop", ["NET_RAW"]), "Capabilities"),
    "host path": (_set("volumes", [{"name": "h", "hostPath": {"path": "/"}}]), "HostPath Volumes"),
    "nfs volume": (_set("volumes", [{"name": "n", "nfs": {"server": "s", "path": "/"}}]), "Volume Types"),
    "host port": (_set("c.ports", [{"containerPort": 80, "hostPort": 80}]), "Host Ports"),
    "apparmor field": (_set("securityContext.appArmorProfile", {"type": "Unconfined"}), "AppArmor"),
    "apparmor annotation": (_apparmor_annotation, "AppArmor"),
    "selinux type": (_set("c.securityContext.seLinuxOptions", {"type": "spc_t"}), "SELinux"),
    "selinux user": (_set("securityContext.seLinuxOptions", {"user": "system_u"}), "SELinux"),
    "proc mount": (_set("c.securityContext.procMount", "Unmasked"), "/proc Mount Type"),
    "seccomp unconfined": (_set("c.securityContext.seccompProfile", {"type": "Unconfined"}), "Seccomp"),
    "seccomp missing": (_delete("securityContext.seccompProfile"), "Seccomp"),
    "unsafe sysctl": (_set("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]), "Sysctls"),
    "escalation allowed": (_set("c.securityContext.allowPrivilegeEscalation", True), "Privilege Escalation"),
    "escalation unset": (_delete("c.securityContext.allowPrivilegeEscalation"), "Privilege Escalation"),
    "root allowed on pod": (_delete("securityContext.runAsNonRoot"), "Running as Non-root"),
    "root allowed on container": (_set("c.securityContext.runAsNonRoot", False), "Running as Non-root"),
    "uid 0": (_set("c.securityContext.runAsUser", 0), "Running as Non-root user"),
    "pod uid 0": (_set("securityContext.runAsUser", 0), "Running as Non-root user"),
    "host process": (_set("c.securityContext.windowsOptions", {"hostProcess": True}), "HostProcess"),
    "unchecked init container": (_add_init_container, "Privilege Escalation"),
}


def test_the_compliant_pod_passes() -> None:
    assert restricted_violations(_compliant()) == []


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_checker_catches(case: str) -> None:
    mutate, control = VIOLATIONS[case]
    pod = copy.deepcopy(_compliant())
    mutate(pod)
    found = restricted_violations(pod)
    assert any(v.startswith(control + ":") for v in found), found


def test_container_level_settings_may_replace_pod_level_ones() -> None:
    """runAsNonRoot and seccomp may be set on every container instead of the pod (the page allows it)."""
    pod = _compliant()
    del pod["spec"]["securityContext"]
    _container(pod)["securityContext"].update({"runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}})
    assert restricted_violations(pod) == []
    _container(pod)["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert restricted_violations(pod) == []


def test_a_runner_job_with_a_weakened_pod_fails() -> None:
    job = runner_jobs()[0]
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert restricted_violations(pod_template_of(job))
