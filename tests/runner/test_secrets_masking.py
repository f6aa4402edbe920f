"""Masking (issue 12, point 3): values from Kubernetes Secrets never reach the status, Events or
logs the runner writes; user output and shell output included."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import logging
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aiohttp import web
from flowlib_runner.definition.loader import load_text
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.execution.masking import (
    MASK,
    Masker,
    MaskingStream,
    mask_status,
    masked_streams,
    secret_env_names,
)
from flowlib_runner.incluster import main as incluster
from flowlib_runner.incluster.reporter import FlowRunStatusReporter

from flowlib_api.runnerpod import ENV_DEFINITION, ENV_FLOWRUN, ENV_NAMESPACE, ENV_POD_NAME, EXIT_DONE, Snapshot
from flowlib_api.runstatus import RunStatus
from tests.localhttp import serve

SECRET = 'pa"ss\\W0rd-7f3e'  # a quote and a backslash: JSON escapes both
ESCAPED = json.dumps(SECRET)[1:-1]

# A python node printing, logging and raising with the secret; a shell node echoing it.
PRINTS_AND_FAILS = """
nodes:
  talk:
    run:
      python: |
        import logging, os, sys
        def exec(prep_res):
            token = os.environ["TOKEN"]
            print("printed", token)
            print("to stderr", token, file=sys.stderr)
            logging.getLogger("user").warning("logged %s", token)
            return "ok"
    next: {default: shell}
  shell:
    run: {shell: 'echo said {{ env.TOKEN }}; echo "denied for $TOKEN" >&2; exit 7'}
"""

RAISES = """
nodes:
  boom:
    run:
      python: |
        import os
        def exec(prep_res):
            raise RuntimeError("bad token " + os.environ["TOKEN"])
"""


# -- the Masker ------------------------------------------------------------------------------------


def test_masks_the_value_its_lines_and_common_encodings_but_not_short_values() -> None:
    key = "-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----"
    masker = Masker(["abc", "hunter22", "hunter22xyz", key, "a b/c"])
    assert masker.mask("pw=hunter22 long=hunter22xyz abc") == "pw=*** long=*** abc"
    assert masker.mask("line: AAAAsecretline") == "line: ***"
    assert masker.mask("basic " + base64.b64encode(b"hunter22").decode()) == "basic ***"
    assert masker.mask("q=a%20b%2Fc") == "q=***"
    assert Masker([SECRET]).mask(json.dumps({"m": SECRET})) == '{"m": "***"}'


def test_without_secrets_nothing_is_done() -> None:
    text = "nothing to hide"
    assert Masker([]).mask(text) is text
    assert not Masker(["abc"])  # too short to mask: no secrets at all
    status = RunStatus.model_validate({"phase": "Failed", "message": text})
    assert mask_status(status, None) is status
    assert mask_status(status, Masker([])) is status


def test_mask_data_masks_every_string_keys_included() -> None:
    masker = Masker([SECRET])
    assert masker.mask_data({"a": [SECRET, 1, None, {SECRET: f"x{SECRET}"}]}) == {
        "a": ["***", 1, None, {"***": "x***"}]
    }


def test_secret_env_names_are_the_secret_key_refs() -> None:
    env: list[dict[str, Any]] = [
        {"name": "PLAIN", "value": "x"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        {"name": "CONF", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ]
    assert secret_env_names(env) == ["TOKEN"]
    assert Masker.from_environment(["TOKEN", "UNSET"], {"TOKEN": SECRET}).mask(SECRET) == MASK


def test_a_masking_stream_masks_a_secret_written_in_pieces() -> None:
    out = io.StringIO()
    stream = MaskingStream(out, Masker([SECRET]))
    stream.write(SECRET[:3])
    stream.write(SECRET[3:] + " end\nnext ")
    assert out.getvalue() == "*** end\n"
    stream.write(SECRET)
    stream.flush()
    assert out.getvalue() == "*** end\nnext ***"


def test_masked_streams_wraps_stdout_stderr_and_their_logging_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with masked_streams(Masker([SECRET])):
            print("out", SECRET)
            print("err", SECRET, file=sys.stderr)
            logging.getLogger("runner").warning("log %s", SECRET)
        assert handler.stream is sys.stderr  # given back
    finally:
        root.removeHandler(handler)
    out, err = capsys.readouterr()
    assert (out, err) == ("out ***\n", "err ***\nlog ***\n")


# -- the run log -------------------------------------------------------------------------------------


def _definition(text: str) -> Any:
    result = load_text(textwrap.dedent(text))
    assert result.ok and result.definition is not None, [str(p) for p in result.problems]
    return result.definition


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_log_line_is_masked(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", SECRET)
    out = io.StringIO()
    log = RunLogger(stream_sink(out), fmt, masker=Masker([SECRET]))  # type: ignore[arg-type]
    status = asyncio.run(execute_async(_definition(PRINTS_AND_FAILS), log=log))
    text = out.getvalue()
    assert SECRET not in text and ESCAPED not in text
    for line in ("printed ***", "to stderr ***", "logged ***", "said ***", "denied for ***"):
        assert line in text, f"{line!r} missing from:\n{text}"
    assert status.phase == "Failed"
    assert SECRET in (status.message or "")  # the status itself is masked by its reporters


def test_python_node_failure_is_masked_in_status_and_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flowlib_runner.execution.reporting import JsonFileReporter

    monkeypatch.setenv("TOKEN", SECRET)
    out = io.StringIO()
    masker = Masker([SECRET])
    reporter = JsonFileReporter(tmp_path / "status.json", masker=masker)
    log = RunLogger(stream_sink(out), masker=masker)
    asyncio.run(execute_async(_definition(RAISES), log=log, reporters=[reporter]))
    written = (tmp_path / "status.json").read_text()
    assert SECRET not in written and ESCAPED not in written and SECRET not in out.getvalue()
    status = json.loads(written)
    assert status["message"] == "RuntimeError: bad token ***"
    assert status["nodes"]["boom"]["message"] == "RuntimeError: bad token ***"
    assert "failed after" in out.getvalue() and "RuntimeError: bad token ***" in out.getvalue()


# -- the in-cluster runner: status, Events, termination message, pod log -------------------------------


class FakeKube:
    """Just enough of KubeClient for the runner: the FlowRun, status patches and Events, recorded."""

    def __init__(self, flowrun: dict[str, Any]) -> None:
        self.flowrun = flowrun
        self.patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> FakeKube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_or_none(self, ref: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        return copy.deepcopy(self.flowrun)

    async def patch(self, ref: Any, name: str, body: dict[str, Any], namespace: str | None = None, **_: Any) -> Any:
        self.patches.append(copy.deepcopy(body))
        return body

    async def create(self, ref: Any, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.events.append(body)
        return body


def _assert_no_secret_written(fake: Any, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Neither the status patches and Events the runner sent nor what it printed hold the secret;
    returns what it printed (stdout, stderr) for the test's own checks."""
    out, err = capsys.readouterr()
    written = json.dumps([fake.patches, fake.events]) + out + err
    assert SECRET not in written and ESCAPED not in written
    return out, err


def _in_cluster(
    flow: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, log_format: str = "text"
) -> tuple[int, FakeKube]:
    """Run `flow` with the in-cluster runner against FakeKube; its FlowRun has TOKEN from a Secret."""
    snapshot = Snapshot(name="leaky", spec=yaml.safe_load(textwrap.dedent(flow)))
    path = tmp_path / "snapshot.json"
    path.write_text(snapshot.to_json())
    flowrun = {
        "metadata": {"name": "run-1", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {
            "flowRef": "leaky",
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {"name": "REGION", "value": "eu"},
            ],
        },
    }
    fake = FakeKube(flowrun)
    for name, value in {
        ENV_FLOWRUN: "run-1",
        ENV_NAMESPACE: "ns",
        ENV_POD_NAME: "run-1-pod",
        ENV_DEFINITION: str(path),
        "TOKEN": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(incluster, "load_config", lambda: SimpleNamespace(default_namespace="ns"))
    monkeypatch.setattr(incluster, "KubeClient", lambda config, user_agent: fake)
    code = asyncio.run(incluster.run(log_format))  # type: ignore[arg-type]
    return code, fake


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_in_cluster_status_events_and_pod_log_hold_no_secret(
    log_format: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    basic_config = logging.StreamHandler(sys.stderr)  # what main()'s logging.basicConfig installs
    logging.getLogger().addHandler(basic_config)
    try:
        code, fake = _in_cluster(PRINTS_AND_FAILS, monkeypatch, tmp_path, log_format)
    finally:
        logging.getLogger().removeHandler(basic_config)
    assert code == EXIT_DONE
    out, _err = _assert_no_secret_written(fake, capsys)
    final = fake.patches[-1]["status"]
    assert final["phase"] == "Failed"
    assert final["message"].startswith("ShellError: nodes.shell.run.shell: command `echo said {{ env.TOKEN }};")
    assert final["message"].endswith("exited with status 7: denied for ***")
    assert final["nodes"]["shell"]["message"] == final["message"]
    assert final["conditions"][0]["message"] == final["message"]
    [failed] = [e for e in fake.events if e["reason"] == "Failed"]
    assert failed["type"] == "Warning" and failed["message"] == final["message"]
    for line in ("printed ***", "to stderr ***", "logged ***", "said ***", "denied for ***"):
        assert line in out, f"{line!r} missing from the pod log:\n{out}"


def test_in_cluster_templates_see_only_the_declared_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", "/root")
    _, fake = _in_cluster("nodes: {x: {run: {shell: 'echo {{ env.HOME }}'}}}", monkeypatch, tmp_path)
    assert fake.patches[-1]["status"]["message"] == (
        "TemplateError: nodes.x.run.shell: env.HOME is not declared; templates see only the variables the "
        "FlowRun's spec.env or the node's run.env declare (REGION, TOKEN): add HOME to the FlowRun's spec.env"
    )


def test_the_termination_message_is_masked(tmp_path: Path) -> None:
    class Refusing(FakeKube):
        async def patch(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("the API is down")

    flowrun = {"metadata": {"name": "run-1", "namespace": "ns"}}
    reporter = FlowRunStatusReporter(
        Refusing(flowrun),  # type: ignore[arg-type]
        flowrun,
        pod_name="p",
        attempt=1,
        flow_name="f",
        final_deadline=0,
        termination_log=tmp_path / "termination-log",
        masker=Masker([SECRET]),
    )
    status = RunStatus.model_validate({"phase": "Failed", "message": f"ShellError: denied for {SECRET}"})
    with pytest.raises(OSError, match="the API is down"):
        asyncio.run(reporter.finish(status))
    left = json.loads((tmp_path / "termination-log").read_text())
    assert left["message"] == "ShellError: denied for ***"


def test_a_secret_echoed_in_an_http_error_body_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API that repeats the credential it refused ("invalid token ...") puts it in the body
    snippet of the HttpError: status, Events and the pod log must still show only ***."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, text="invalid token " + request.headers.get("Authorization", ""))

    app = web.Application()
    app.router.add_get("/me", refuse)
    with serve(app) as base:
        flow = (
            f"nodes: {{x: {{run: {{http: {{url: '{base}/me', headers: {{Authorization: '{{{{ env.TOKEN }}}}'}}}}}}}}}}"
        )
        code, fake = _in_cluster(flow, monkeypatch, tmp_path)
    assert code == EXIT_DONE
    out, err = _assert_no_secret_written(fake, capsys)
    final = fake.patches[-1]["status"]
    assert final["phase"] == "Failed"
    assert (
        final["message"] == f"HttpError: nodes.x.run.http: GET {base}/me answered 401 Unauthorized: invalid token ***"
    )
    [failed] = [e for e in fake.events if e["reason"] == "Failed"]
    assert failed["message"] == final["message"]
    assert "invalid token ***" in out + err
