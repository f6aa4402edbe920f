"""The shell and http run kinds against real processes and a local aiohttp server (127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.runkinds.http import HttpError
from flowlib_runner.definition.runkinds.shell import ShellError

from tests.localhttp import serve

from .helpers import definition, run


def test_shell_result_is_stdout_without_trailing_newlines() -> None:
    _, shared = run("nodes: {a: {run: {shell: 'printf \"a\\nb\\n\\n\"'}}}")
    assert shared["a"] == "a\nb"


def test_shell_templates_env_working_dir_and_json(tmp_path: Path) -> None:
    text = f"""
    params: {{name: world}}
    nodes:
      a:
        run:
          shell: 'echo "{{\\"greet\\": \\"$GREETING {{{{ params.name }}}}\\", \\"dir\\": \\"$(pwd)\\"}}"'
          parse: json
          env: {{GREETING: "{{{{ 'hel' ~ 'lo' }}}}"}}
          workingDir: {tmp_path}
    """
    _, shared = run(text)
    assert shared["a"] == {"greet": "hello world", "dir": str(tmp_path)}


def test_command_argv_is_not_interpreted_by_a_shell() -> None:
    text = """
    nodes:
      a: {type: batch, batch: {items: words}, run: {command: [printf, "%s", "{{ item }} $HOME;"]}}
    """
    _, shared = run(text, {"words": ["x", "y"]})
    assert shared["a"] == ["x $HOME;", "y $HOME;"]


def test_non_zero_exit_fails_with_stderr() -> None:
    with pytest.raises(ShellError, match=r"command `echo oops >&2; exit 3` exited with status 3: oops"):
        run("nodes: {a: {run: {shell: 'echo oops >&2; exit 3'}}}")


def test_non_json_output_with_parse_json_fails() -> None:
    with pytest.raises(ShellError, match="did not print JSON"):
        run("nodes: {a: {run: {shell: 'echo nope', parse: json}}}")


def test_stderr_of_a_successful_command_is_passed_on(capfd: pytest.CaptureFixture[str]) -> None:
    run("nodes: {a: {run: {shell: 'echo warn >&2; echo ok'}}}")
    assert "warn" in capfd.readouterr().err


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_timed_out_command_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = f"""
    nodes:
      slow:
        timeout: 200ms
        run: {{shell: "echo $$ > {pidfile}; exec sleep 30"}}
        next: {{error: after}}
      after: {{}}
    """
    _, shared = run(text)
    assert shared["error"]["type"] == "NodeTimeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)


def test_cancelling_the_run_kills_a_command_that_ignores_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowlib_runner.definition.runkinds import shell

    monkeypatch.setattr(shell, "TERM_GRACE_SECONDS", 0.2)
    pidfile = tmp_path / "pid"
    flow = build_flow(
        definition(
            f"nodes: {{a: {{run: {{shell: \"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.05; done\"}}}}}}"
        )
    )

    async def main() -> None:
        task = asyncio.create_task(flow.run_async({}))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)


# -- http ---------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Any:
    """A local aiohttp server in its own loop thread; yields its base URL and the requests seen."""
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if request.path == "/text":
            return web.Response(text="plain words")
        if request.path == "/missing":
            return web.Response(status=404, text="no such thing")
        if request.path == "/created":
            return web.json_response({"id": 7}, status=201)
        return web.json_response({"method": request.method, "query": dict(request.query), "body": body})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    with serve(app) as base:
        yield base, seen


def test_http_get_returns_parsed_json(server: Any) -> None:
    base, _ = server
    _, shared = run(
        f"nodes: {{a: {{run: {{http: {{url: '{base}/items', query: {{q: '{{{{ params.q }}}}'}}}}}}}}}}",
        q="x y",
    )
    assert shared["a"] == {"method": "GET", "query": {"q": "x y"}, "body": ""}


def test_http_post_json_with_templated_headers(server: Any) -> None:
    base, seen = server
    text = f"""
    nodes:
      a:
        run:
          http:
            method: post
            url: "{base}/items"
            headers: {{X-Token: "{{{{ shared.token }}}}"}}
            json: {{name: "{{{{ shared.name }}}}", 'n': 3, tags: ["{{{{ shared.name }}}}"]}}  # n unquoted: false
    """
    _, shared = run(text, {"token": "t0k", "name": "widget"})
    assert shared["a"]["method"] == "POST"
    import json

    assert json.loads(shared["a"]["body"]) == {"name": "widget", "n": 3, "tags": ["widget"]}
    assert seen[-1]["headers"]["X-Token"] == "t0k"


def test_http_text_body_and_text_response(server: Any) -> None:
    base, seen = server
    _, shared = run(
        f"nodes: {{a: {{run: {{http: {{method: PUT, url: '{base}/text', body: 'raw {{{{ 1 + 1 }}}}'}}}}}}}}"
    )
    assert shared["a"] == "plain words"
    assert seen[-1]["body"] == "raw 2" and seen[-1]["method"] == "PUT"


def test_http_unexpected_status_fails_with_status_and_body(server: Any) -> None:
    base, _ = server
    with pytest.raises(HttpError, match=r"GET .*/missing answered 404 Not Found: no such thing"):
        run(f"nodes: {{a: {{run: {{http: {{url: '{base}/missing'}}}}}}}}")
    with pytest.raises(HttpError, match="answered 201"):
        run(f"nodes: {{a: {{run: {{http: {{url: '{base}/created', expectedStatus: [200]}}}}}}}}")
    _, shared = run(f"nodes: {{a: {{run: {{http: {{url: '{base}/missing', expectedStatus: [404]}}}}}}}}")
    assert shared["a"] == "no such thing"


def test_http_per_item_in_a_worker_pool(server: Any) -> None:
    base, seen = server
    text = f"""
    nodes:
      a:
        type: worker_pool
        batch: {{items: ids, maxParallel: 2}}
        run: {{http: {{url: "{base}/items/{{{{ item }}}}"}}}}
    """
    _, shared = run(text, {"ids": [1, 2, 3]})
    assert [r["method"] for r in shared["a"]] == ["GET"] * 3
    assert sorted(r["path"] for r in seen) == ["/items/1", "/items/2", "/items/3"]
