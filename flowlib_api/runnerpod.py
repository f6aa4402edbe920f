"""What the operator hands a runner pod, and what a runner pod hands back besides status.

The operator writes, the runner reads (one writer and one reader for each):

- environment variables naming the FlowRun, its namespace, the pod and the definition's path;
- for a run under a borrowed service account, the run's own API token: a file in a Secret volume
  (``RUNNER_TOKEN_PATH``, named by ``ENV_RUNNER_TOKEN_FILE``) that the runner authenticates with
  instead of the pod's service account, re-read when the operator refreshes it;
- the definition snapshot: the Flow (or inline flow) and every sub-flow it reaches, frozen into one
  gzip-compressed JSON document in an immutable ConfigMap mounted at ``SNAPSHOT_MOUNT``, so a later
  edit of a Flow never changes a running run. Compressed, because Kubernetes caps a ConfigMap's data
  at 1 MiB while a Flow may be up to about 1.5 MiB: the JSON of a definition compresses 5-20 times,
  so any Flow the API accepts fits, and one that does not is refused with ``snapshot_size_problem``.

The runner writes, the operator reads:

- its exit code (``EXIT_*``), which the Job's failure policy acts on;
- as a last resort, the final status in the container's termination message, when the API refused
  the status patch.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowlib_api.meta import GROUP_VERSION, KIND_FLOW
from flowlib_api.runstatus import FINISHED_PHASES

ENV_FLOWRUN = "FLOWLIB_FLOWRUN"
"""The FlowRun's name."""
ENV_NAMESPACE = "FLOWLIB_NAMESPACE"
"""The FlowRun's namespace (the pod's own, from the downward API)."""
ENV_POD_NAME = "FLOWLIB_POD_NAME"
"""The runner pod's name (downward API): status ``podName`` and Events' ``reportingInstance``."""
ENV_DEFINITION = "FLOWLIB_DEFINITION"
"""Path of the snapshot file inside the pod."""
ENV_LOG_FORMAT = "FLOWLIB_LOG_FORMAT"
"""``text`` (default) or ``json``: the format of the run log on stdout."""
ENV_STORE = "FLOWLIB_STORE"
"""The run's store (``storespec.StoreLocation`` as JSON); unset: the run keeps no checkpoints."""
ENV_RESUME_FROM = "FLOWLIB_RESUME_FROM"
"""A retry's source store (``StoreLocation`` JSON, from the source run's ``status.store``): the run
starts from that store's last checkpoint (``spec.retryOf``)."""
ENV_RESUME_MODE = "FLOWLIB_RESUME_MODE"
"""How a retry reuses its source: ``retry`` (rerun failed nodes and items) or ``resubmit`` (start over)."""
ENV_RUNNER_TOKEN_FILE = "FLOWLIB_RUNNER_TOKEN_FILE"
"""Path of the file holding the run's own service-account token; unset: the runner authenticates as
the pod's service account. Set when the pod runs under a borrowed account (``spec.serviceAccountName``),
whose token reaches other runs' pods as well."""

RUNNER_TOKEN_KEY = "token"
"""The token's key in the run's runner-token Secret (so also the mounted file's name)."""
RUNNER_TOKEN_MOUNT = "/var/run/secrets/flowlib.dev/runner"
RUNNER_TOKEN_PATH = f"{RUNNER_TOKEN_MOUNT}/{RUNNER_TOKEN_KEY}"

SNAPSHOT_KEY = "definition.json.gz"
"""The snapshot's key in the ConfigMap's ``binaryData`` (so also the mounted file's name)."""
SNAPSHOT_LIMIT_BYTES = 1024 * 1024
"""Kubernetes' limit on a ConfigMap's data (``MaxSecretSize``, counted over the decoded values)."""
SNAPSHOT_MOUNT = "/etc/flowlib"
SNAPSHOT_PATH = f"{SNAPSHOT_MOUNT}/{SNAPSHOT_KEY}"

RUNNER_CONTAINER = "runner"
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096
"""Bytes Kubernetes keeps of a termination message."""
_TERMINATION_FIELDS = ("phase", "message", "completionTime", "startTime", "duration")

EXIT_DONE = 0
"""The run reached a final phase and it was recorded (a failed flow is no reason to start again)."""
EXIT_BROKEN = 1
"""The runner could not work at all (no FlowRun, unreadable snapshot): the Job's failure handling applies."""
EXIT_INTERRUPTED = 143
"""The pod was stopped from outside before the run ended: the Job may start another attempt."""


@dataclass
class Snapshot:
    """A run's frozen definition: the main flow's manifest and its sub-flows' specs by name."""

    name: str
    spec: Mapping[str, Any]
    library: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The main flow as a Flow manifest, as the loader reads it."""
        return {
            "apiVersion": GROUP_VERSION,
            "kind": KIND_FLOW,
            "metadata": {"name": self.name},
            "spec": dict(self.spec),
        }

    def to_json(self) -> str:
        """The ConfigMap's text: stable (sorted keys), so equal definitions give equal snapshots."""
        document = {**self.manifest(), "library": {n: dict(lib) for n, lib in sorted(self.library.items())}}
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def to_bytes(self) -> bytes:
        """The compressed snapshot, as the ConfigMap holds it (``mtime=0``: equal in, equal out)."""
        return gzip.compress(self.to_json().encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Read a compressed snapshot (or a plain JSON one, as written before compression)."""
        try:
            text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            return cls.from_json(text.decode("utf-8"))
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise ValueError(f"the snapshot is not readable: {error}") from error

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Read a snapshot; raises ``ValueError`` (JSON errors included) when it is not one."""
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("the snapshot is not a JSON object")
        metadata = document.get("metadata") or {}
        library = document.get("library") or {}
        if not isinstance(metadata, dict) or not isinstance(library, dict):
            raise ValueError("the snapshot's metadata and library must be objects")
        return cls(name=str(metadata.get("name") or "inline"), spec=document.get("spec") or {}, library=library)


def snapshot_size_problem(snapshot: bytes) -> str | None:
    """Why a snapshot cannot be stored in a ConfigMap, or None when it fits."""
    if len(snapshot) <= SNAPSHOT_LIMIT_BYTES:
        return None
    return (
        f"the definition, with its sub-flows, is {len(snapshot) / 1024:.0f} KiB even compressed, over the "
        f"{SNAPSHOT_LIMIT_BYTES // 1024} KiB a run's snapshot ConfigMap may hold; make it smaller (move "
        "large inline code or data into the runner image, a ConfigMap the code reads, or the run's input)"
    )


def termination_message(status: Mapping[str, Any]) -> str:
    """The essentials of a final status, within what Kubernetes keeps of a termination message."""
    essentials = {k: status.get(k) for k in _TERMINATION_FIELDS if status.get(k) is not None}
    text = json.dumps(essentials, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_LIMIT:
        essentials["message"] = str(essentials.get("message", ""))[:1000]
        text = json.dumps(essentials, separators=(",", ":"))
    return text


def read_termination_message(text: str | None) -> dict[str, Any] | None:
    """The final status a runner left in its termination message, or None if it left none."""
    try:
        data = json.loads(text or "")
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(data, dict) and data.get("phase") in FINISHED_PHASES:
        return data
    return None
