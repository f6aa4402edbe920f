"""``run: {shell: "line"}`` (via /bin/sh) or ``run: {command: [argv...]}`` (no shell).

Every string is a Jinja2 template rendered per call (with ``item`` in batch nodes). The process
runs as an asyncio subprocess in its own process group, so a cancelled or timed-out node stops it:
SIGTERM to the group, then SIGKILL after a grace period. The result is stdout without its trailing
newlines (like ``$(...)`` in a shell), parsed as JSON with ``parse: json``. A non-zero exit fails
the node with the exit status and the end of stderr in the message. Every line of stdout and
stderr also goes to the run log as it is printed, attributed to the node (see ``streams``).

Values rendered into ``shell`` are shell-quoted (``templates``: ``| unquoted`` opts out, which lint
warns about); ``command`` elements are argv and stay as they are. ``run.env`` values are rendered
first and then readable as ``env.NAME`` in the other strings. Error messages show the command's
template source, never the rendered command line, which may hold a secret (``describe_source``);
stderr and stdout in them are masked, like all the runner writes, by the execution layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from flowlib_api.flowspec import RunSpec

from ..problems import Problem, join_path
from ..templates import (
    Template,
    check_template,
    compile_value,
    describe_source,
    render_value,
    run_environment,
    shell_quoting_warnings,
)
from . import Code, NodeRuntime
from .streams import communicate

TERM_GRACE_SECONDS = 5.0
STDERR_TAIL = 2000


class ShellError(RuntimeError):
    """A command exited non-zero, or its output could not be parsed."""


class ShellKind:
    name = "shell"

    def validate(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        problems: list[Problem] = []
        strings: list[tuple[str, str]] = []
        if run.shell is not None:
            if not run.shell.strip():
                problems.append(Problem(join_path(path, "shell"), "the command line is empty; write a command"))
            strings.append((join_path(path, "shell"), run.shell))
        if run.command is not None:
            if not run.command:
                problems.append(Problem(join_path(path, "command"), "the command is empty; write [program, arg...]"))
            strings.extend((f"{join_path(path, 'command')}[{i}]", s) for i, s in enumerate(run.command))
        strings.extend((join_path(path, "env", k), v) for k, v in (run.env or {}).items())
        if run.working_dir is not None:
            strings.append((join_path(path, "workingDir"), run.working_dir))
        for where, text in strings:
            message = check_template(text)
            if message:
                problems.append(Problem(where, message))
        if run.shell is not None and not problems:
            where = join_path(path, "shell")
            problems.extend(Problem(where, m, severity="warning") for m in shell_quoting_warnings(run.shell))
        return problems

    def build(self, run: RunSpec, *, node: str, batch: bool) -> Code:
        return ShellCode(run, node=node, batch=batch)


class ShellCode(Code):
    has_exec = True

    def __init__(self, run: RunSpec, *, node: str, batch: bool) -> None:
        where = f"nodes.{node}.run"
        self._line = Template(run.shell, f"{where}.shell", kind="shell") if run.shell is not None else None
        self._argv = compile_value(list(run.command or []), f"{where}.command")
        self._env = compile_value(dict(run.env or {}), f"{where}.env")
        self._cwd = Template(run.working_dir, f"{where}.workingDir") if run.working_dir else None
        self._parse = run.parse or "text"
        self._batch = batch
        field = f"{where}.shell" if self._line is not None else f"{where}.command"
        source = self._line.text if self._line is not None else " ".join(t.text for t in self._argv)
        self._shown = f"{field}: command {describe_source(source)}"  # never the rendered line

    def _context(self, node: NodeRuntime, payload: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """The template context, and the node's own variables (``run.env``), which it can read as ``env``."""
        context = node.template_context(item=payload if self._batch else None)
        own: dict[str, str] = render_value(self._env, context) if self._env else {}
        if own:
            context["env"] = context.get("env", run_environment()).including(own)
        return context, own

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        context, own = self._context(node, payload)
        common: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "env": {**os.environ, **own} if own else None,
            "cwd": self._cwd.render(context) if self._cwd else None,
            "start_new_session": True,
        }
        proc = await self._start(context, common)
        try:
            out, err = await communicate(proc, stderr_tail=4 * STDERR_TAIL + 8)  # bytes for the chars
        except BaseException:
            await _stop(proc)
            raise
        if proc.returncode != 0:
            tail = err.decode("utf-8", errors="replace").strip()[-STDERR_TAIL:] or "(no stderr)"
            raise ShellError(f"{self._shown} exited with status {proc.returncode}: {tail}")
        result = out.decode("utf-8", errors="replace").rstrip("\n")
        if self._parse == "json":
            try:
                return json.loads(result)
            except json.JSONDecodeError as exc:
                raise ShellError(f"{self._shown} did not print JSON ({exc}): {result[:200]!r}") from exc
        return result

    async def _start(self, context: dict[str, Any], options: dict[str, Any]) -> asyncio.subprocess.Process:
        """Start the process; one that cannot start (no such program or directory) fails the node
        with the source and the OS's reason only (its message would name the rendered path)."""
        try:
            if self._line is not None:
                return await asyncio.create_subprocess_shell(self._line.render(context), **options)
            return await asyncio.create_subprocess_exec(*render_value(self._argv, context), **options)
        except OSError as exc:
            raise ShellError(f"{self._shown} could not start: {exc.strerror or type(exc).__name__}") from exc


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate the command's process group, kill it if it lingers; never leaves a zombie."""
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.shield(asyncio.wait_for(proc.wait(), TERM_GRACE_SECONDS))
    except (TimeoutError, asyncio.CancelledError):
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(proc.wait())


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
