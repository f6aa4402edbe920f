"""How container images map onto this machine.

A simulated container runs on the host, so an image is only a recipe: PATH entries, environment,
and the image's default ENTRYPOINT/CMD. Images that no pattern matches behave like images a
registry does not have (``ErrImagePull``/``ImagePullBackOff``).
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]


@dataclass
class Image:
    """``entrypoint``/``cmd`` are the image's ENTRYPOINT and CMD (used as Kubernetes does when the
    container leaves ``command``/``args`` unset)."""

    path: list[str] = field(default_factory=lambda: list(SYSTEM_PATH))
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: int = 0  # the image's USER (numeric); securityContext.runAsUser overrides it
    group: int = 0
    # Host paths this image "ships": the launcher makes them reachable for any user, as files in a
    # real image are, even when a parent directory on this machine is private (a pyenv Python
    # under /root, mode 700). Nothing else of that parent becomes visible.
    ships: list[str] = field(default_factory=list)


def venv_bin() -> str:
    """The bin directory of the interpreter running the simulator (the project's virtualenv)."""
    return str(Path(sys.executable).parent)


def python_install() -> list[str]:
    """Where the simulator's own interpreter lives: what a Python image would ship."""
    return sorted({sys.base_prefix, sys.prefix})


def project_root() -> str:
    """This checkout: the flowlib image's code. With an editable install the packages resolve to the
    source tree rather than to site-packages, so the image must ship it (a real image installs a
    wheel instead, inside the image's own filesystem)."""
    return str(Path(__file__).resolve().parents[2])


def project_packages() -> list[str]:
    """Where this checkout's packages live (``flowlib``, ``flowlib_api`` at the root; the runner and
    the operator in their folders): the image runs this tree's code, even when the virtualenv's
    editable install points at another checkout (a copy of an older commit, run for comparison)."""
    root = Path(project_root())
    return [str(root), str(root / "runner"), str(root / "operator")]


def default_images() -> dict[str, Image]:
    py_path = [venv_bin(), *SYSTEM_PATH]
    ships = python_install()
    python = Image(path=py_path, env={"PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}, cmd=["python3"], ships=ships)
    shell = Image(path=py_path, cmd=["sh"], ships=ships)
    return {
        "*flowlib*": Image(
            path=py_path,
            env={"PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(project_packages())},
            ships=[*ships, project_root()],
        ),
        "python": python,
        "python:*": python,
        "busybox": shell,
        "busybox:*": shell,
        "alpine:*": shell,
        "ubuntu:*": shell,
        "debian:*": shell,
    }


def resolve(images: dict[str, Image], reference: str) -> Image | None:
    """The first pattern matching the full reference or its last path component."""
    short = reference.rsplit("/", 1)[-1]
    for pattern, image in images.items():
        if fnmatch.fnmatchcase(reference, pattern) or fnmatch.fnmatchcase(short, pattern):
            return image
    return None
