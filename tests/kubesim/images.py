"""How container images map onto this machine.

A simulated container runs on the host, so an image is only a recipe: PATH entries, environment,
and the image's default ENTRYPOINT/CMD. Images that no pattern matches behave like images a
registry does not have (``ErrImagePull``/``ImagePullBackOff``).
"""

from __future__ import annotations

import fnmatch
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


def venv_bin() -> str:
    """The bin directory of the interpreter running the simulator (the project's virtualenv)."""
    return str(Path(sys.executable).parent)


def default_images() -> dict[str, Image]:
    py_path = [venv_bin(), *SYSTEM_PATH]
    python = Image(path=py_path, env={"PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}, cmd=["python3"])
    shell = Image(path=py_path, cmd=["sh"])
    return {
        "*flowlib*": Image(path=py_path, env={"PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}),
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
