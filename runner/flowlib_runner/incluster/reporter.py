"""Publishing a run's status to its FlowRun: coalesced, retried, bounded, never losing the end.

While running, status goes out at most once a second (``PeriodicReporter``). Every patch is a JSON
merge patch on ``flowruns/status``; node states and output keys that disappeared since the last
publish are sent as ``null`` so the merge never keeps stale entries, and fields the runner owns but
no longer sets are cleared the same way. Fields owned by the operator (``jobName``,
``observedGeneration``) are never touched.

The final status is retried for up to ``final_deadline`` seconds (inside the pod's grace period).
If the API still refuses it, it is written to the container's termination message, where the
operator finds it when the Job ends: the final state is not lost even then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from flowlib_runner.kube.client import FLOWRUNS, ApiError, KubeClient
from flowlib_runner.reporting.base import ErrorCallback, PeriodicReporter
from flowlib_runner.resources import human_duration, parse_time
from flowlib_runner.status import RunStatus, rfc3339

log = logging.getLogger("flowlib.runner")

RUNNER_FIELDS = (
    "phase",
    "startTime",
    "completionTime",
    "currentNode",
    "progress",
    "nodes",
    "output",
    "message",
    "notes",
    "podName",
    "attempt",
    "duration",
    "conditions",
    "flow",
)
TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LIMIT = 4096  # bytes Kubernetes keeps of a termination message


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
        termination_log: Path = TERMINATION_LOG,
    ) -> None:
        super().__init__(interval=interval, on_error=on_error)
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
        data["podName"] = self.pod_name
        data["attempt"] = self.attempt
        data["flow"] = self.flow_name
        moment = time.time()
        phase = data.get("phase", "Running")
        if final and self.interrupted is not None:
            # Stopped from outside without a cancellation (eviction, node drain, pod deleted): not a
            # final state. The Job may start another attempt; the operator reports a failure if not.
            phase = data["phase"] = "Running"
            data["message"] = self.interrupted
            data.pop("completionTime", None)
            condition = ("Unknown", "RunnerInterrupted", self.interrupted)
        elif phase in ("Succeeded", "Failed", "Cancelled"):
            reason = {"Succeeded": "Succeeded", "Failed": "FlowFailed", "Cancelled": "Cancelled"}[phase]
            condition = (
                "True" if phase == "Succeeded" else "False",
                reason,
                data.get("message") or f"run {phase.lower()}",
            )
            started, ended = parse_time(data.get("startTime")), parse_time(data.get("completionTime"))
            if started is not None and ended is not None:
                data["duration"] = human_duration(max(0.0, (ended - started).total_seconds()))
        else:
            where = f" on pod {self.pod_name}" if self.pod_name else ""
            condition = ("Unknown", "Running", f"running{where} (attempt {self.attempt})")
        data["conditions"] = [
            {
                "type": "Succeeded",
                "status": condition[0],
                "reason": condition[1],
                "message": condition[2][:1024],
                "observedGeneration": self.generation,
                "lastTransitionTime": self._transition_time(condition[0], condition[1], moment),
            }
        ]
        for key in RUNNER_FIELDS:
            data.setdefault(key, None)  # cleared by the merge patch if an earlier publish set it
        for mapping in ("nodes", "output"):
            before, now = self._published.get(mapping), data.get(mapping)
            if isinstance(before, dict):
                if now is None:
                    continue
                for stale in before.keys() - now.keys():
                    now[stale] = None
        return data

    def _transition_time(self, status: str, reason: str, moment: float) -> str:
        for condition in self._published.get("conditions") or []:
            if condition.get("status") == status and condition.get("reason") == reason:
                return str(condition.get("lastTransitionTime") or rfc3339(moment))
        return rfc3339(moment)

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        if self.gone:
            return
        body = self.body(status, final=final)
        deadline = time.monotonic() + (self.final_deadline if final else 0.0)
        while True:
            try:
                await self.client.patch(FLOWRUNS, self.name, {"status": body}, self.namespace, subresource="status")
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
        for mapping in ("nodes", "output"):
            value = self._published.get(mapping)
            if isinstance(value, dict):
                self._published[mapping] = {k: v for k, v in value.items() if v is not None}

    def _leave_termination_message(self, body: dict[str, Any], error: BaseException) -> None:
        """Last resort: the essentials of the final status, for the operator to apply."""
        essentials = {k: body.get(k) for k in ("phase", "message", "completionTime", "startTime", "duration")}
        essentials = {k: v for k, v in essentials.items() if v is not None}
        text = json.dumps(essentials, separators=(",", ":"))
        if len(text.encode()) > TERMINATION_LIMIT:
            essentials["message"] = str(essentials.get("message", ""))[:1000]
            text = json.dumps(essentials, separators=(",", ":"))
        try:
            self.termination_log.write_text(text, encoding="utf-8")
            log.error("could not write the final status (%s); left it in the termination message", error)
        except OSError as write_error:
            log.error("could not write the final status (%s) nor the termination message (%s)", error, write_error)
