"""Host paths that bind mounts need, shared safely between simulators.

A bind mount needs an existing target, so the kubelet creates missing ones (e.g. ``/etc/app``) on
the host and removes them when no pod uses them any more. Several simulators may run at once (test
processes, a developer's ``python -m tests.kubesim``), and unlinking a path that another mount
namespace still mounts on would detach that mount, so the reference counts live in one registry per
machine under ``/run``, guarded by ``flock``. Paths that existed before are never removed; a
simulator killed with SIGKILL leaves its empty placeholders behind.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REGISTRY = Path("/run/kubesim/mountpoints.json")


@contextmanager
def _locked() -> Iterator[dict[str, Any]]:
    REGISTRY.parent.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = json.loads(REGISTRY.read_text()) if REGISTRY.exists() else {}
        yield state
        tmp = REGISTRY.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, REGISTRY)


def acquire(target: str, is_file: bool) -> str:
    """Make ``target`` exist for a bind mount and count one user of it; returns ``target``."""
    with _locked() as state:
        entry = state.get(target)
        if entry is not None and Path(target).exists():
            entry["refs"] += 1
            return target
        path = Path(target)
        created: list[str] = []
        missing = []
        parent = path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir()
            created.append(str(directory))
        if not path.exists():
            if is_file:
                path.touch()
            else:
                path.mkdir()
            created.append(target)
        if created:
            state[target] = {"refs": 1, "created": created}
        return target


def release(target: str) -> None:
    """Drop one user of ``target``; the last one removes the (empty) paths that were created for it."""
    with _locked() as state:
        entry = state.get(target)
        if entry is None:
            return
        entry["refs"] -= 1
        if entry["refs"] > 0:
            return
        del state[target]
        for created in reversed(entry["created"]):
            if any(t == created or t.startswith(created + "/") for t in state):
                continue
            path = Path(created)
            if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()
