"""Publishing a run's status to its FlowRun: coalesced, retried, bounded, never losing the end.

While running, status goes out at most once a second (``PeriodicReporter``). Every patch is a JSON
merge patch on ``flowruns/status``; node states and output keys that disappeared since the last
publish are sent as ``null`` so the merge never keeps stale entries, and fields the runner owns but
no longer sets are cleared the same way. Fields the operator owns (``OPERATOR_FIELDS`` of the
contract, which states the ownership rule) are never touched.

The final status is retried for up to ``final_deadline`` seconds (inside the pod's grace period).
If the API still refuses it, it is written to the container's termination message, where the
operator finds it when the Job ends: the final state is not lost even then.

With a ``masker`` (the values of the FlowRun's Secret-sourced env) every status is masked before
its document is built (``PeriodicReporter``), so the conditions and the termination message, made
from that document, are masked too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from flowlib_api.meta import FLOWRUNS, STATUS_SUBRESOURCE
from flowlib_api.resources import (
    FINAL_REASONS,
    RUNNER_FIELDS,
    SUCCEEDED,
    ConditionStatus,
    StatusKey,
    field_key,
    final_condition_status,
    succeeded_condition,
    transition_time,
)
from flowlib_api.runnerpod import TERMINATION_LOG, termination_message
from flowlib_api.runstatus import FINISHED_PHASES, RunStatus
from flowlib_api.text import CONDITION_MESSAGE_CHARS
from flowlib_api.times import rfc3339_millis, run_duration
from flowlib_runner.execution.masking import Masker
from flowlib_runner.execution.reporting.base import ErrorCallback, PeriodicReporter
from flowlib_runner.kube.client import ApiError, KubeClient

log = logging.getLogger("flowlib.runner")
_MAPPINGS = (StatusKey.NODES, StatusKey.OUTPUT, field_key(RunStatus, "output_refs"))
"""Status fields that are maps: keys that disappeared are sent as null so the merge drops them."""


class FlowRunStatusReporter(PeriodicReporter):
    """Writes ``RunStatus`` snapshots to one FlowRun's status subresource."""

    def __init__(
        self,
        client: KubeClient,
        flowrun: dict[str, Any],
        *,
        pod_name: str | None,
        attempt: int,
        flow_name: str,
        interval: float = 1.0,
        final_deadline: float = 20.0,
        on_error: ErrorCallback | None = None,
        termination_log: Path = Path(TERMINATION_LOG),
        masker: Masker | None = None,
    ) -> None:
        super().__init__(interval=interval, on_error=on_error, masker=masker)
        meta = flowrun["metadata"]
        self.client = client
        self.name, self.namespace = meta["name"], meta["namespace"]
        self.generation = meta.get("generation")
        self.pod_name, self.attempt, self.flow_name = pod_name, attempt, flow_name
        self.final_deadline = final_deadline
        self.termination_log = termination_log
        previous = flowrun.get("status") or {}
        # What the FlowRun's status holds now (maybe from an earlier attempt): cleared where stale.
        self._published: dict[str, Any] = {k: previous.get(k) for k in RUNNER_FIELDS if k in previous}
        self.interrupted: str | None = None  # set when the pod is stopped without a cancellation
        self.gone = False  # set when the FlowRun was deleted: nothing left to write to
        self.patches = 0

    def body(self, status: RunStatus, *, final: bool) -> dict[str, Any]:
        """The status document for ``status`` (owned fields only, nulls for what disappeared)."""
        data: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        data[StatusKey.POD_NAME] = self.pod_name
        data[StatusKey.ATTEMPT] = self.attempt
        data[StatusKey.FLOW] = self.flow_name
        phase = data.get(StatusKey.PHASE, "Running")
        condition: tuple[ConditionStatus, str, str]
        if final and self.interrupted is not None:
            # Stopped from outside without a cancellation (eviction, node drain, pod deleted): not a
            # final state. The Job may start another attempt; the operator reports a failure if not.
            phase = data[StatusKey.PHASE] = "Running"
            data[StatusKey.MESSAGE] = self.interrupted
            data.pop(StatusKey.COMPLETION_TIME, None)
            condition = ("Unknown", "RunnerInterrupted", self.interrupted)
        elif phase in FINISHED_PHASES:
            condition = (
                final_condition_status(phase),
                status.reason or FINAL_REASONS[phase],
                data.get(StatusKey.MESSAGE) or f"run {phase.lower()}",
            )
            duration = run_duration(data.get(StatusKey.START_TIME), data.get(StatusKey.COMPLETION_TIME))
            if duration is not None:
                data[StatusKey.DURATION] = duration
        elif phase == "Suspended":
            condition = ("Unknown", "Suspended", data.get(StatusKey.MESSAGE) or "waiting for approval")
        else:
            where = f" on pod {self.pod_name}" if self.pod_name else ""
            condition = ("Unknown", "Running", f"running{where} (attempt {self.attempt})")
        status_value, reason, message = condition
        moment = transition_time(
            self._published.get(StatusKey.CONDITIONS), SUCCEEDED, status_value, rfc3339_millis(time.time()), reason
        )
        data[StatusKey.CONDITIONS] = [
            succeeded_condition(status_value, reason, message[:CONDITION_MESSAGE_CHARS], self.generation, moment)
        ]
        for key in RUNNER_FIELDS:
            data.setdefault(key, None)  # cleared by the merge patch if an earlier publish set it
        for mapping in _MAPPINGS:
            before, now = self._published.get(mapping), data.get(mapping)
            if isinstance(before, dict):
                if now is None:
                    continue
                for stale in before.keys() - now.keys():
                    now[stale] = None
        return data

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        if self.gone:
            return
        body = self.body(status, final=final)
        deadline = time.monotonic() + (self.final_deadline if final else 0.0)
        while True:
            try:
                await self.client.patch(
                    FLOWRUNS, self.name, {"status": body}, self.namespace, subresource=STATUS_SUBRESOURCE
                )
                break
            except ApiError as error:
                if error.not_found:
                    self.gone = True
                    log.info("FlowRun %s/%s is gone; status not written", self.namespace, self.name)
                    return
                if not final or time.monotonic() >= deadline:
                    if final:
                        self._leave_termination_message(body, error)
                    raise
                await asyncio.sleep(1.0)
            except (OSError, TimeoutError) as error:
                if not final or time.monotonic() >= deadline:
                    if final:
                        self._leave_termination_message(body, error)
                    raise
                await asyncio.sleep(1.0)
        self.patches += 1
        self._published = {k: v for k, v in body.items() if v is not None}
        for mapping in _MAPPINGS:
            value = self._published.get(mapping)
            if isinstance(value, dict):
                self._published[mapping] = {k: v for k, v in value.items() if v is not None}

    def _leave_termination_message(self, body: dict[str, Any], error: BaseException) -> None:
        """Last resort: the essentials of the final status, for the operator to apply."""
        text = termination_message(body)
        try:
            self.termination_log.write_text(text, encoding="utf-8")
            log.error("could not write the final status (%s); left it in the termination message", error)
        except OSError as write_error:
            log.error("could not write the final status (%s) nor the termination message (%s)", error, write_error)
