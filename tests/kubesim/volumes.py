"""What a container sees: environment variables and volume contents.

Follows https://kubernetes.io/docs/tasks/inject-data-application/ (env, envFrom, valueFrom with
fieldRef/secretKeyRef/configMapKeyRef, ``$(VAR)`` expansion) and
https://kubernetes.io/docs/concepts/storage/volumes/ (configMap, secret, projected, downwardAPI,
emptyDir, hostPath). Missing references raise ``NotReady`` with the message the kubelet reports.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

from .store import Store

JSON = dict[str, Any]


class NotReady(Exception):
    """The container cannot be configured yet (e.g. a referenced ConfigMap does not exist)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def field_ref(pod: JSON, path: str) -> str:
    m = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if m:
        return str((pod["metadata"].get(m.group(1)) or {}).get(m.group(2), ""))
    values = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in values:
        raise NotReady("CreateContainerConfigError", f"unsupported fieldRef path {path!r}")
    return str(values[path])


def _source(store: Store, ns: str, kind: str, name: str, optional: bool) -> dict[str, str] | None:
    key = ("", "configmaps") if kind == "configmap" else ("", "secrets")
    obj = store.get(key, ns, name)
    if obj is None:
        if optional:
            return None
        raise NotReady("CreateContainerConfigError", f'{kind} "{name}" not found')
    if kind == "secret":
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as they are, ``$$`` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


def container_env(store: Store, pod: JSON, container: JSON, base: dict[str, str]) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref_key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(ref_key)
            if ref:
                data = _source(store, ns, kind, ref["name"], bool(ref.get("optional"))) or {}
                env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        ref = var["valueFrom"]
        if "fieldRef" in ref:
            env[name] = field_ref(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[name] = "0"
        else:
            kind, sel = (
                ("configmap", ref["configMapKeyRef"]) if "configMapKeyRef" in ref else ("secret", ref["secretKeyRef"])
            )
            selected = _source(store, ns, kind, sel["name"], bool(sel.get("optional")))
            if selected is None:
                continue
            if sel["key"] not in selected:
                if sel.get("optional"):
                    continue
                label = "ConfigMap" if kind == "configmap" else "Secret"
                raise NotReady(
                    "CreateContainerConfigError",
                    f"couldn't find key {sel['key']} in {label} {ns}/{sel['name']}",
                )
            env[name] = selected[sel["key"]]
    return env


def _write(directory: Path, files: dict[str, bytes], mode: int) -> None:
    for rel, data in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, mode)


def _items(data: dict[str, bytes], src: JSON, kind: str, volume: str) -> dict[str, bytes]:
    """The files of a configMap or secret source: every key, or the ``items`` it lists. A listed key
    that is missing fails the mount unless the source is optional (pkg/volume/secret and configmap)."""
    items = src.get("items")
    if not items:
        return data
    missing = next((item["key"] for item in items if item["key"] not in data), None)
    if missing is not None and not src.get("optional"):
        what = (
            "references non-existent secret key" if kind == "secret" else "configmap references non-existent config key"
        )
        raise NotReady("ContainerCreating", f'MountVolume.SetUp failed for volume "{volume}" : {what}: {missing}')
    return {str(item.get("path", item["key"])): data[item["key"]] for item in items if item["key"] in data}


def _data(store: Store, ns: str, kind: str, name: str, optional: bool, volume: str) -> dict[str, bytes]:
    key = ("", "configmaps") if kind == "configmap" else ("", "secrets")
    obj = store.get(key, ns, name)
    if obj is None:
        if optional:
            return {}
        raise NotReady(
            "ContainerCreating", f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{name}" not found'
        )
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def materialize(store: Store, pod: JSON, volume: JSON, directory: Path, token: str) -> Path:
    """Write a volume's content under ``directory``; returns the path to bind-mount."""
    mode = int(volume.get("defaultMode", 0o644)) if isinstance(volume.get("defaultMode"), int) else 0o644
    if "hostPath" in volume:
        return Path(volume["hostPath"]["path"])
    directory.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        os.chmod(directory, 0o777)  # as the kubelet creates emptyDir volumes
        return directory
    if "downwardAPI" in volume:
        _write(directory, _downward(pod, volume["downwardAPI"].get("items") or []), mode)
        return directory
    files, file_mode = _contents(store, pod, volume, token)
    _write(directory, files, file_mode)
    return directory


def _contents(store: Store, pod: JSON, volume: JSON, token: str) -> tuple[dict[str, bytes], int]:
    """The files of a configMap, secret or projected volume and their mode; ``NotReady`` when a
    source it needs is missing or the volume is of a type kubesim does not serve."""
    ns = pod["metadata"]["namespace"]
    name = volume["name"]
    files: dict[str, bytes]
    if "configMap" in volume:
        src = volume["configMap"]
        files = _items(
            _data(store, ns, "configmap", src["name"], bool(src.get("optional")), name), src, "configmap", name
        )
        return files, int(src.get("defaultMode", 0o644))
    if "secret" in volume:
        src = volume["secret"]
        data = _data(store, ns, "secret", src["secretName"], bool(src.get("optional")), name)
        files = _items(data, src, "secret", name)
        return files, int(src.get("defaultMode", 0o644))
    if "projected" in volume:
        proj = volume["projected"]
        files = {}
        for source in proj.get("sources") or []:
            if "serviceAccountToken" in source:
                files[source["serviceAccountToken"].get("path", "token")] = token.encode()
            elif "configMap" in source:
                src = source["configMap"]
                files.update(
                    _items(
                        _data(store, ns, "configmap", src["name"], bool(src.get("optional")), name),
                        src,
                        "configmap",
                        name,
                    )
                )
            elif "secret" in source:
                src = source["secret"]
                files.update(
                    _items(
                        _data(store, ns, "secret", src["name"], bool(src.get("optional")), name),
                        src,
                        "secret",
                        name,
                    )
                )
            elif "downwardAPI" in source:
                files.update(_downward(pod, source["downwardAPI"].get("items") or []))
        return files, int(proj.get("defaultMode", 0o644))
    raise NotReady("ContainerCreating", f'volume "{name}": unsupported volume type in kubesim')


def sources(volume: JSON) -> set[tuple[str, str]]:
    """The ConfigMaps and Secrets whose content a volume shows, as (``configmap`` or ``secret``, name)."""
    found: set[tuple[str, str]] = set()
    if "configMap" in volume:
        found.add(("configmap", volume["configMap"]["name"]))
    if "secret" in volume:
        found.add(("secret", volume["secret"]["secretName"]))
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "configMap" in source:
            found.add(("configmap", source["configMap"]["name"]))
        if "secret" in source:
            found.add(("secret", source["secret"]["name"]))
    return found


def refresh(store: Store, pod: JSON, volume: JSON, directory: Path, token: str) -> bool:
    """Bring a mounted configMap, secret or projected volume in step with its sources, as the kubelet
    does for a running pod (https://kubernetes.io/docs/concepts/configuration/secret/#mounted-secrets-are-updated-automatically,
    and the same for ConfigMaps): changed keys are rewritten, new ones appear, removed ones go. Each
    file is replaced by a rename, never written in place, so a ``subPath`` mount of one file (bound
    to the old file) keeps what it had, as ``subPath`` mounts never receive updates. A source that is
    gone leaves the volume as it was (the kubelet keeps the last content it could read). True when
    something changed."""
    try:
        files, mode = _contents(store, pod, volume, token)
    except NotReady:
        return False
    changed = False
    for rel, data in files.items():
        target = directory / rel
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f"..{target.name}.tmp")
        staged.write_bytes(data)
        os.chmod(staged, mode)
        os.replace(staged, target)
        changed = True
    wanted = {directory / rel for rel in files}
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
            changed = True
    return changed


def _downward(pod: JSON, items: list[JSON]) -> dict[str, bytes]:
    files = {}
    for item in items:
        if "fieldRef" in item:
            path = item["fieldRef"]["fieldPath"]
            if path in ("metadata.labels", "metadata.annotations"):
                data = pod["metadata"].get(path.split(".")[1]) or {}
                files[item["path"]] = "\n".join(f'{k}="{v}"' for k, v in sorted(data.items())).encode()
            else:
                files[item["path"]] = field_ref(pod, path).encode()
    return files
