"""Container entry point, run by the kubelet as ``python -S launcher.py SPEC``.

It enters a private mount namespace, bind-mounts the pod's volumes (service-account token,
ConfigMaps, Secrets, termination-message file) at their container paths, then ``exec``s the
container command, so the process id the kubelet holds is the container's. Only the standard
library is used, so that it starts fast without site-packages.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    for mount in spec["mounts"]:
        src, dst = mount["source"].encode(), mount["target"].encode()
        _check(libc.mount(src, dst, None, MS_BIND | MS_REC, None), f"bind {mount['source']} -> {mount['target']}")
        if mount.get("readOnly"):
            _check(
                libc.mount(b"none", dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None),
                f"read-only {mount['target']}",
            )
    if spec.get("workingDir"):
        os.makedirs(spec["workingDir"], exist_ok=True)
        os.chdir(spec["workingDir"])
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        with open(spec["startErrorFile"], "w") as fh:
            fh.write(f'exec: "{argv[0]}": {exc.strerror}: unknown')
        sys.exit(128)


if __name__ == "__main__":
    main()
