"""Which store a run gets, and what a retry takes from the run it retries (pure: tested as data).

Every run's store is decided by the operator before its Job exists, from two sources:

- the operator-wide default (``--default-store``, a ``StoreSpec`` as JSON or YAML; out of the box
  ``{"type": "configmap"}``), set by whoever runs the operator;
- the FlowRun's ``spec.store``, which wins. With ``type`` it is used as written; without ``type``
  its fields are laid over the default's (so ``{checkpointItems: 50}`` tunes the default store,
  whatever its type). ``enabled: false`` means no store at all; a ``spec.store`` that leaves
  ``enabled`` out asks for one even when the default is disabled.

The result is resolved into a ``StoreLocation`` (``storespec.resolve``), shown in ``status.store``
and handed to the runner (``runnerpod.ENV_STORE``); what reaching it takes (a Secret's keys in the
environment, a mounted claim) is ``jobspec``'s, what the run's Role allows is ``identity``'s. A
Secret or claim that the *default* names is lent to every run by the operator's administrator;
one that a FlowRun's ``spec.store`` names is borrowed by the run's author and checked like
``spec.env`` (``access``).

A retry (``spec.retryOf``) resumes from its source's ``status.store.ref``: ``plan_resume`` decides
whether the source can be retried at all (it exists, has finished, kept a store) and
``store_conflict`` whether one pod can reach both stores (one set of S3 credentials, one claim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from flowlib_api.storespec import STORE_MOUNT, StoreLocation, StoreSpec, resolve
from flowlib_api.views import FlowRunView

DEFAULT_STORE_TEXT = '{"type": "configmap"}'
"""The operator's default store when ``--default-store`` is not given."""
INVALID_STORE_REASON = "InvalidStore"
RETRY_SOURCE_NOT_FOUND = "RetrySourceNotFound"
RETRY_SOURCE_NOT_FINISHED = "RetrySourceNotFinished"
NOTHING_TO_RETRY = "NothingToRetry"

ResumeMode = Literal["retry", "resubmit"]


class StoreProblem(ValueError):
    """A store spec that cannot be used; the message names the field and what to do."""


def _validated(data: Mapping[str, Any], where: str) -> StoreSpec:
    try:
        return StoreSpec.model_validate(dict(data))
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            path = ".".join(str(part) for part in detail["loc"])
            message = str(detail["msg"]).removeprefix("Value error, ").replace("spec.store", where)
            problems.append(f"{where}.{path}: {message}" if path else message)
        raise StoreProblem("; ".join(problems)) from error


def parse_store_spec(text: str, where: str = "--default-store") -> StoreSpec:
    """A ``StoreSpec`` from JSON or YAML text (JSON is YAML); ``StoreProblem`` saying what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise StoreProblem(f"{where} is neither JSON nor YAML: {' '.join(str(error).split())}") from error
    if not isinstance(data, Mapping):
        raise StoreProblem(
            f'{where} must be a store spec, e.g. {{"type": "configmap"}} or {{"type": "s3", "s3": {{"bucket": '
            f'"runs"}}}}; got {text!r}'
        )
    return _validated(data, where)


def laid_over(default: StoreSpec, written: Mapping[str, Any], where: str) -> StoreSpec:
    """``written`` as a store spec: as written when it names a type, else laid over ``default``."""
    if "type" in written:
        return _validated(dict(written), where)
    inherited = default.model_dump(by_alias=True, exclude_none=True, exclude={"enabled"})
    return _validated({**inherited, **written}, where)


def effective_store(default: StoreSpec, written: object) -> StoreSpec | None:
    """The store a run with ``spec.store`` = ``written`` gets (None: it keeps none); ``StoreProblem``
    when the result is not a valid store."""
    if written is None:
        return default if default.enabled else None
    if not isinstance(written, Mapping):
        raise StoreProblem(f"spec.store must be an object such as {{type: configmap}}, got {type(written).__name__}")
    if written.get("enabled") is False:
        return None
    if "type" in written:
        data = dict(written)
    else:
        inherited = default.model_dump(by_alias=True, exclude_none=True, exclude={"enabled"})
        data = {**inherited, **written}
    spec = _validated(data, "spec.store")
    return spec if spec.enabled else None


def store_location(default: StoreSpec, run: FlowRunView) -> StoreLocation | None:
    """Where ``run`` keeps its store (None: it keeps none); ``StoreProblem`` for an unusable spec.store."""
    spec = effective_store(default, run.spec.get("store"))
    if spec is None:
        return None
    return resolve(spec, namespace=run.namespace, run=run.name, uid=run.uid or "")


def store_problems(default: StoreSpec, run: FlowRunView) -> list[str]:
    """What is wrong with the run's ``spec.store`` (the admission webhook's and the operator's check)."""
    try:
        effective_store(default, run.spec.get("store"))
    except StoreProblem as problem:
        return [str(problem)]
    return []


# -- retries --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a run cannot start: the ``Succeeded`` condition's reason and the message for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class Resume:
    """What a retry takes from its source: the store it resumes from, and how."""

    source: str
    """The source FlowRun's name."""
    source_uid: str
    ref: str
    """The source's ``status.store.ref``, verbatim (the runner's ``ENV_RESUME_FROM``)."""
    location: StoreLocation
    mode: ResumeMode
    flow_name: str | None
    """The source's ``status.flow``: the retry runs the same flow when it names none of its own."""


def plan_resume(run: FlowRunView, source: Mapping[str, Any] | None) -> Resume | Refusal:
    """Whether ``run`` (with ``spec.retryOf``) can resume from ``source`` (the FlowRun it names, as
    read from the API; None when there is none), and from what."""
    name, namespace = run.retry_of or "", run.namespace
    field = f"spec.retryOf: FlowRun '{name}'"
    if name == run.name:
        return Refusal(
            NOTHING_TO_RETRY, "spec.retryOf: a FlowRun cannot retry itself; name the finished FlowRun to retry"
        )
    origin = FlowRunView(source) if source is not None else None
    if origin is None or origin.meta.get("deletionTimestamp"):
        gone = "does not exist" if origin is None else "is being deleted"
        return Refusal(
            RETRY_SOURCE_NOT_FOUND,
            f"{field} {gone} in namespace '{namespace}'; name a finished FlowRun of this namespace "
            f"(kubectl get flowruns -n {namespace})",
        )
    if not origin.finished:
        return Refusal(
            RETRY_SOURCE_NOT_FINISHED,
            f"{field} has not finished (phase {origin.phase or 'Pending'}): a run is retried once it ended; wait "
            f"for it (kubectl wait flowrun/{name} -n {namespace} --for=jsonpath='{{.status.completionTime}}') or "
            "cancel it (spec.cancel: true), then delete this FlowRun and create it again",
        )
    ref = origin.store_ref
    if ref is None:
        return Refusal(
            NOTHING_TO_RETRY,
            f"{field} ran without a store (its status.store is empty: it had spec.store.enabled false, or it "
            "ended before a runner started), so it has no checkpoint to retry or resubmit from; create a new "
            "FlowRun with its flowRef or flow and input instead",
        )
    try:
        location = StoreLocation.from_json(ref)
    except ValueError as error:
        return Refusal(
            NOTHING_TO_RETRY,
            f"{field} has a status.store.ref that is {error}; it cannot be retried: create a new FlowRun instead",
        )
    return Resume(
        source=name,
        source_uid=origin.uid or "",
        ref=ref,
        location=location,
        mode="resubmit" if run.resubmit else "retry",
        flow_name=origin.flow,
    )


def store_conflict(own: StoreLocation | None, resume: Resume) -> str | None:
    """Why one runner pod cannot reach both its own store and its source's, or None.

    A pod mounts one store claim (at ``STORE_MOUNT``, where both locations' directories lie) and
    holds one set of S3 credentials (the AWS SDK reads them from the environment).
    """
    source = resume.location
    field = f"spec.retryOf: FlowRun '{resume.source}'"
    if own is not None and own.type == "pvc" and source.type == "pvc" and own.claim_name != source.claim_name:
        return (
            f"{field} keeps its store on claim '{source.claim_name}' and this run's store is on claim "
            f"'{own.claim_name}', but a runner pod mounts one store claim (at {STORE_MOUNT}); set this run's "
            f"spec.store to {{type: pvc, pvc: {{claimName: {source.claim_name}}}}}, or to another type"
        )
    if (
        own is not None
        and own.type == "s3"
        and source.type == "s3"
        and source.secret_name
        and own.secret_name != source.secret_name
    ):
        return (
            f"{field} keeps its store in S3 with the credentials of Secret '{source.secret_name}' and this run's "
            f"store would use {f'Secret {own.secret_name!r}' if own.secret_name else 'the pod default credentials'}, "
            "but a runner pod holds one set of S3 credentials; set this run's spec.store.s3.secretName to "
            f"'{source.secret_name}', or use another store type"
        )
    return None


def credentials_secret(own: StoreLocation | None, resume: Resume | None) -> str | None:
    """The Secret whose S3 keys the pod's environment holds: its own store's, else its source's."""
    if own is not None and own.type == "s3":
        return own.secret_name
    if resume is not None and resume.location.type == "s3":
        return resume.location.secret_name
    return None


def store_claim(own: StoreLocation | None, resume: Resume | None) -> tuple[str, bool] | None:
    """The claim mounted at ``STORE_MOUNT`` and whether read-only: its own store's (read-write), else
    its source's, read-only (a retry reads its source's checkpoints and never changes them)."""
    if own is not None and own.type == "pvc" and own.claim_name:
        return own.claim_name, False
    if resume is not None and resume.location.type == "pvc" and resume.location.claim_name:
        return resume.location.claim_name, True
    return None
