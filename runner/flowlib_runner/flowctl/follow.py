"""Print a run's logs, and with `follow` keep printing across pod retries until the run ends.

Why not just `kubectl logs -f`: it follows one pod. A FlowRun may run in several pods (the Job
starts a new one when a runner crashes or is evicted, up to `spec.retries`), the pod may not exist
yet when the user asks, it may sit in Pending for a reason only the FlowRun's status explains, and
the run may end -- cancelled, timed out, failed before starting -- without any pod writing a line.
The follower therefore drives from the FlowRun: it streams each attempt's pod in order, says what
it is waiting for meanwhile, and returns the FlowRun once its phase is final, so that the command
can exit with the run's result.

When no runner pod is left (its Job was deleted: by hand, by the TTL, or by a cancel whose runner
did not stop within the operator's grace), it
prints the log each attempt archived in the run's store instead (`execution.logarchive`), read with
the user's own credentials (`archived`), each attempt under a `==> attempt N (...) <==` line.

Lines go to `emit` (stdout: the log itself, pipeable), everything the follower says about the wait
goes to `note` (stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_runner.execution.logarchive import archived_attempts, read_log
from flowlib_runner.flowctl.archived import how_read, open_cluster_store, reading, store_location
from flowlib_runner.flowctl.clusterapi import ClusterApi, ClusterError, LogNotReady


def _container_state(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state: dict[str, Any] = (statuses[0].get("state") or {}) if statuses else {}
    return state


def has_started(pod: dict[str, Any]) -> bool:
    """Whether the runner container has started, so the pod has a log to read."""
    state = _container_state(pod)
    if "running" in state or "terminated" in state:
        return True
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")


def in_attempt_order(pods: list[dict[str, Any]], current: str | None) -> list[dict[str, Any]]:
    """The run's pods, one per attempt, oldest first.

    Creation times have whole seconds only, and a pod killed early is replaced within the same
    second, so among pods created in the same second an ended pod comes before one still going,
    then the pod the run's status names (the latest attempt to say so) comes last; the name breaks
    what is left.
    """

    def order(pod: dict[str, Any]) -> tuple[str, bool, bool, str]:
        name = pod["metadata"]["name"]
        return (pod["metadata"].get("creationTimestamp") or "", not is_over(pod), name == current, name)

    return sorted(pods, key=order)


def is_over(pod: dict[str, Any]) -> bool:
    """Whether the pod will write no more: finished, its container terminated, or being deleted."""
    if pod["metadata"].get("deletionTimestamp"):
        return True
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return True
    return "terminated" in _container_state(pod)


def waiting_reason(pod: dict[str, Any]) -> str:
    """Why a pod has not started, as `kubectl get pods` shows it (ContainerCreating, ImagePullBackOff...)."""
    waiting = _container_state(pod).get("waiting") or {}
    if waiting.get("reason"):
        return str(waiting["reason"])
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason") or "Unschedulable")
    return str((pod.get("status") or {}).get("phase") or "Pending")


@dataclass
class LogFollower:
    """Streams the runner pods of FlowRun `run`, oldest attempt first; see the module docstring."""

    api: ClusterApi
    run: str
    emit: Callable[[str], None]
    note: Callable[[str], None]
    poll: float = 0.5
    """Seconds between looks at the FlowRun and its pods while waiting."""
    drain: float = 10.0
    """Once the run is final, how long a still-running pod may take to write its last lines and exit."""
    printed: dict[str, int] = field(default_factory=dict)
    """Lines printed per pod: a dropped stream resumes after them instead of repeating them."""
    finished_pods: set[str] = field(default_factory=set)
    _said: set[str] = field(default_factory=set)

    # -- one-shot (`flowctl logs RUN`) ------------------------------------------------------------

    async def print_logs(self) -> dict[str, Any]:
        """Print what every started attempt has logged so far; return the FlowRun."""
        flowrun = await self.api.get_run(self.run)
        pods = in_attempt_order(await self.api.run_pods(self.run), (flowrun.get("status") or {}).get("podName"))
        started = [p for p in pods if has_started(p)]
        if not started:
            status = flowrun.get("status") or {}
            if status.get("podName") and await self.print_archive(flowrun):
                return flowrun  # the pods are gone; their attempts' logs were archived in the run's store
            self._say(self._waiting_text(status, pods, ended=status.get("phase") in FINISHED_PHASES))
        for pod in started:
            await self._stream(pod, pods, follow=False, announce=len(started) > 1)
        return flowrun

    # -- following (`flowctl logs -f RUN`, `submit --follow`) -----------------------------------

    async def follow(self) -> dict[str, Any]:
        """Stream every attempt until the FlowRun's phase is final; return the final FlowRun."""
        while True:
            flowrun = await self.api.get_run(self.run)
            status = flowrun.get("status") or {}
            pods = in_attempt_order(await self.api.run_pods(self.run), status.get("podName"))
            todo = [p for p in pods if p["metadata"]["name"] not in self.finished_pods]
            started = [p for p in todo if has_started(p)]
            if status.get("phase") in FINISHED_PHASES:
                for pod in started:  # the last lines of pods that were still flushing when the run ended
                    await self._bounded(self._stream(pod, pods, follow=True), self.drain)
                if not self.printed and not (status.get("podName") and await self.print_archive(flowrun)):
                    self._say(self._waiting_text(status, pods, ended=True))
                return flowrun
            waiting = status.get("suspended") if status.get("phase") == "Suspended" else None
            if waiting and all(is_over(p) for p in todo):
                # Stopped at an approval node, its pod ended: nothing more comes until someone decides.
                for pod in started:
                    await self._bounded(self._stream(pod, pods, follow=True), self.drain)
                actions = "|".join(waiting.get("actions") or []) or "default"
                self._say(
                    f"{self.run} is Suspended at {waiting.get('node')}: {waiting.get('message') or 'waiting'}; "
                    f"decide with `flowctl approve {self.run} --action {actions}`"
                )
                return flowrun
            if started:
                await self._stream_while_running(started[0], pods)
                continue
            self._say(self._waiting_text(status, todo, ended=False))
            await asyncio.sleep(self.poll)

    async def _stream_while_running(self, pod: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """Follow one pod; stop when it ends, or shortly after the FlowRun turns final without it ending."""
        task = asyncio.ensure_future(self._stream(pod, pods, follow=True))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=max(self.poll * 2, 0.5))
                if done:
                    task.result()
                    return
                status = (await self.api.get_run(self.run)).get("status") or {}
                if status.get("phase") in FINISHED_PHASES:
                    done, _ = await asyncio.wait({task}, timeout=self.drain)
                    if done:
                        task.result()
                    else:
                        self.finished_pods.add(pod["metadata"]["name"])  # it outlived its run; stop reading
                    return
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _bounded(self, work: Any, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work, seconds)

    async def _stream(
        self, pod: dict[str, Any], pods: list[dict[str, Any]], *, follow: bool, announce: bool = False
    ) -> None:
        """Print the pod's log (following it when asked) until its container is over.

        Marks the pod finished when it will write nothing more; a stream dropped while the
        container still runs is resumed, skipping the lines already printed.
        """
        name = pod["metadata"]["name"]
        if name not in self.printed:
            attempt = next((i for i, p in enumerate(pods, 1) if p["metadata"]["name"] == name), len(pods))
            if announce or self.printed or attempt > 1:
                self._say(f"attempt {attempt}: pod {name}")
            self.printed[name] = 0
        while True:
            skip, seen = self.printed[name], 0
            try:
                async for line in self.api.pod_log(name, follow=follow):
                    seen += 1
                    if seen > skip:
                        self.emit(line)
                        self.printed[name] = seen
            except LogNotReady:
                current = await self.api.get_pod(name)
                if current is None or is_over(current):
                    self.finished_pods.add(name)  # it ended without ever starting: no log will come
                elif follow:
                    await asyncio.sleep(self.poll)  # listed as started a moment too early: look again soon
                return
            if not follow:
                return
            current = await self.api.get_pod(name)
            if current is None or is_over(current):
                self.finished_pods.add(name)
                return
            await asyncio.sleep(self.poll)  # the stream ended but the container runs on: resume

    # -- the log archive (the pods are gone) ------------------------------------------------------

    async def print_archive(self, flowrun: dict[str, Any]) -> bool:
        """Print every attempt's log archived in the run's store, each under a header line; whether
        there was any. One that cannot be read is said (why, and what would let it be read)."""
        location = store_location(flowrun)
        if location is None:
            return False
        try:
            store = open_cluster_store(self.api, flowrun, location)
            attempts = await reading(location, archived_attempts(store), namespace=self.api.namespace)
            if not attempts:
                return False
            self._say(f"the runner pods are gone; printing the log archived in the run's store ({how_read(location)})")
            for attempt in attempts:
                text = await reading(location, read_log(store, attempt), namespace=self.api.namespace)
                self.emit(f"==> attempt {attempt} (archived in {location.description}) <==")
                for line in (text or "").splitlines():
                    self.emit(line)
                self.printed[f"archive/{attempt}"] = 1
        except ClusterError as error:
            self._say(f"the run's log archive cannot be read: {error.format_message()}")
            return bool(self.printed)
        return True

    # -- what we are waiting for ------------------------------------------------------------------

    def _waiting_text(self, status: dict[str, Any], pods: list[dict[str, Any]], *, ended: bool) -> str:
        phase = status.get("phase") or "Pending"
        message = status.get("message")
        if ended and not pods and status.get("podName"):
            text = f"the run ended ({phase}) and its runner pods are gone (deleted with its Job): no log is left"
        elif ended:
            text = f"the run ended ({phase}) before any runner pod wrote a line"
        elif pods:
            pod = pods[-1]
            text = f"waiting for runner pod {pod['metadata']['name']} to start ({waiting_reason(pod)})"
        else:
            text = f"waiting for the runner pod (run phase {phase})"
        return f"{text}: {message}" if message else text

    def _say(self, text: str) -> None:
        """Each distinct note once: a pod flapping between ErrImagePull and ImagePullBackOff is no news."""
        if text not in self._said:
            self._said.add(text)
            self.note(text)
