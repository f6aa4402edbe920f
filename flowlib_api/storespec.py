"""Where a run keeps its checkpoints, big outputs and log: the FlowRun's ``spec.store``, and the
resolved location the operator hands the runner.

Three kinds, chosen per FlowRun with an operator-wide default:

- ``configmap`` (the default, nothing to set up): compressed blobs in ConfigMaps named
  ``<run>-store-<i>`` (i < ``CONFIGMAP_CHUNKS``), owned by the FlowRun and collected with it. Bound:
  about ``CONFIGMAP_CHUNKS`` MiB of compressed data per run; past it the run goes on without
  checkpoints and says so.
- ``s3``: any S3-compatible object store (AWS, MinIO, Ceph). Each run writes under
  ``<prefix>/<namespace>/<run>-<uid>/``. Credentials come from a Secret (``secretName``, keys
  ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_SESSION_TOKEN``), or without one
  from the pod's default credentials (IRSA, instance profile). Objects outlive the FlowRun: expire
  them with a bucket lifecycle rule.
- ``pvc``: a mounted PersistentVolumeClaim; each run writes under ``<namespace>/<run>-<uid>/``.
  Files outlive the FlowRun.

``StoreLocation`` is the contract between the two sides: the operator resolves a spec into one
(``resolve``) and passes it to the runner as JSON (``runnerpod.ENV_STORE``); the runner opens it;
the FlowRun's ``status.store`` shows it, and a retry (``spec.retryOf``) reads its source's
location from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

StoreType = Literal["configmap", "s3", "pvc"]
STORE_TYPES: tuple[StoreType, ...] = ("configmap", "s3", "pvc")
DEFAULT_STORE_TYPE: StoreType = "configmap"

CONFIGMAP_CHUNKS = 8
"""How many ConfigMaps a run's configmap store may use (each holds up to about 1 MiB)."""
CONFIGMAP_CHUNK_BYTES = 1000 * 1024
"""The data one store ConfigMap holds at most (Kubernetes refuses a ConfigMap over 1 MiB in all)."""
STORE_MOUNT = "/var/lib/flowlib/store"
"""Where a ``pvc`` store's claim is mounted in the runner pod."""
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
"""The keys a ``s3.secretName`` Secret may hold; the runner reads them as environment variables."""


class _Model(BaseModel):
    # defer_build: validators are built at the first validation, not at import; the in-cluster
    # runner imports these models (for their wire names) but validates none before its first node.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, defer_build=True
    )


class S3StoreSpec(_Model):
    """An S3-compatible bucket."""

    bucket: str = Field(min_length=3, max_length=63, description="The bucket (it must exist).")
    prefix: str = Field("", max_length=512, description="Key prefix under which runs write, e.g. flowlib/runs.")
    endpoint: str | None = Field(
        None,
        description="Endpoint URL for a store other than AWS S3, e.g. https://minio.storage:9000.",
        json_schema_extra={"pattern": r"^https?://"},
    )
    region: str | None = Field(None, description="The bucket's region (AWS), e.g. eu-west-1.")
    secret_name: str | None = Field(
        None,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN). "
        "Without it the pod's default credentials are used (IRSA, instance profile). Reading the Secret "
        "follows the rule of spec.env: a namespace admin labelled it flowlib.dev/runner-access=true or, with "
        "the admission webhook, you may get it yourself.",
    )


class PvcStoreSpec(_Model):
    """A PersistentVolumeClaim mounted into the runner pod."""

    claim_name: str = Field(
        min_length=1,
        max_length=253,
        description="The claim (it must exist, ReadWriteMany when runs of several nodes share it). Mounting it "
        "follows the rule of spec.serviceAccountName: a namespace admin labelled it flowlib.dev/runner-access=true "
        "or, with the admission webhook, you may create pods in the namespace.",
    )


class StoreSpec(_Model):
    """Where the run keeps its checkpoints."""

    type: StoreType = Field(
        DEFAULT_STORE_TYPE,
        description="configmap (default: ConfigMaps owned by the FlowRun, up to about 8 MiB compressed), "
        "s3 (an S3-compatible bucket) or pvc (a mounted PersistentVolumeClaim).",
    )
    s3: S3StoreSpec | None = Field(None, description="Settings of type s3 (required for it).")
    pvc: PvcStoreSpec | None = Field(None, description="Settings of type pvc (required for it).")
    checkpoint_items: int = Field(
        200,
        ge=1,
        le=1_000_000,
        description="Inside a batch, record finished items after this many (or after checkpointSeconds).",
    )
    checkpoint_seconds: float = Field(
        2.0, gt=0, le=3600, description="Inside a batch, record finished items at least this often."
    )
    enabled: bool = Field(
        True,
        description="false: no checkpoints, no resume, no retry from this run.",
    )

    @model_validator(mode="after")
    def _settings_match_type(self) -> StoreSpec:
        if self.type == "s3" and self.s3 is None:
            raise ValueError(
                "spec.store.type is s3: set spec.store.s3.bucket (and endpoint for a store other than AWS)"
            )
        if self.type == "pvc" and self.pvc is None:
            raise ValueError("spec.store.type is pvc: set spec.store.pvc.claimName")
        for kind in STORE_TYPES:
            if kind != self.type and getattr(self, kind, None) is not None:
                raise ValueError(f"spec.store.{kind} is set but spec.store.type is {self.type}: remove one of them")
        return self


@dataclass(frozen=True)
class StoreLocation:
    """One run's store, resolved: what the runner opens. ``root`` is the ConfigMap name prefix
    (configmap), the key prefix ending in ``/`` (s3) or the directory (pvc, or a local store)."""

    type: StoreType | Literal["directory"]
    root: str
    namespace: str | None = None
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    secret_name: str | None = None
    claim_name: str | None = None
    checkpoint_items: int = 200
    checkpoint_seconds: float = 2.0

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StoreLocation:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise ValueError(f"not a store location: {error}") from error

    @property
    def description(self) -> str:
        """For people (status.store.location, log lines)."""
        if self.type == "configmap":
            return f"configmap {self.namespace}/{self.root}-*"
        if self.type == "s3":
            return f"s3://{self.bucket}/{self.root}"
        return self.root

    def status(self) -> dict[str, Any]:
        """The run's ``status.store``: where to find it again (a retry reads it)."""
        return {"type": self.type, "location": self.description, "ref": self.to_json()}


def run_directory(namespace: str, run: str, uid: str) -> str:
    """A run's own folder name inside a bucket prefix or a claim: ``<namespace>/<run>-<uid8>``."""
    return f"{namespace}/{run}-{uid[:8]}"


def resolve(spec: StoreSpec, *, namespace: str, run: str, uid: str) -> StoreLocation:
    """The location of run ``namespace/run`` (uid ``uid``) for ``spec``."""
    common: dict[str, Any] = {"checkpoint_items": spec.checkpoint_items, "checkpoint_seconds": spec.checkpoint_seconds}
    if spec.type == "s3":
        assert spec.s3 is not None
        prefix = spec.s3.prefix.strip("/")
        root = f"{prefix + '/' if prefix else ''}{run_directory(namespace, run, uid)}/"
        return StoreLocation(
            "s3",
            root,
            namespace=namespace,
            bucket=spec.s3.bucket,
            endpoint=spec.s3.endpoint,
            region=spec.s3.region,
            secret_name=spec.s3.secret_name,
            **common,
        )
    if spec.type == "pvc":
        assert spec.pvc is not None
        root = f"{STORE_MOUNT}/{run_directory(namespace, run, uid)}"
        return StoreLocation("pvc", root, namespace=namespace, claim_name=spec.pvc.claim_name, **common)
    return StoreLocation("configmap", configmap_root(run), namespace=namespace, **common)


MAX_CONFIGMAP_NAME = 253


def configmap_root(run: str) -> str:
    """``<run>-store``; for a name so long that ``<root>-<i>`` would pass a ConfigMap name's 253
    characters, its start and a digest of it instead (still unique per run name)."""
    root = f"{run}-store"
    if len(root) + len(f"-{CONFIGMAP_CHUNKS - 1}") <= MAX_CONFIGMAP_NAME:
        return root
    digest = hashlib.sha256(run.encode()).hexdigest()[:8]
    keep = MAX_CONFIGMAP_NAME - len(f"-{digest}-store-{CONFIGMAP_CHUNKS - 1}")
    return f"{run[:keep].rstrip('-.')}-{digest}-store"


def configmap_chunk_names(root: str) -> list[str]:
    """The names of a configmap store's ConfigMaps (the per-run Role names each of them)."""
    return [f"{root}-{i}" for i in range(CONFIGMAP_CHUNKS)]
