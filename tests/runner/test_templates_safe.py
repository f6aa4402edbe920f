"""Safe templates (issue 12, point 4): shell strings quote their values, error messages show the
template source instead of the rendered string, http JSON keeps types, and ``env`` reads the
run's declared environment."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from flowlib_runner.definition.runkinds.http import HttpError
from flowlib_runner.definition.runkinds.shell import ShellError
from flowlib_runner.definition.templates import TemplateError, declared_environment

from tests.localhttp import serve
from tests.runner.loader.helpers import messages, run

TOKEN = "tok-4f9a1c7e"  # what must never show in an error message


# -- shell quoting ----------------------------------------------------------------------------------


def test_a_param_cannot_inject_a_shell_command() -> None:
    _, shared = run("nodes: {a: {run: {shell: 'echo hello {{ params.name }}'}}}", name="bob; echo INJECTED")
    assert shared["a"] == "hello bob; echo INJECTED"


def test_every_value_is_one_word_and_literal_text_is_left_alone() -> None:
    text = """
    nodes:
      a: {run: {shell: "printf '<%s>' {{ params.words }} $(echo two words)"}}
    """
    _, shared = run(text, words="a  b $HOME `id` 'q'")
    assert shared["a"] == "<a  b $HOME `id` 'q'><two><words>"


def test_unquoted_opts_out_and_lint_warns_about_it() -> None:
    text = "nodes: {a: {run: {shell: 'printf \"<%s>\" {{ params.args | unquoted }}'}}}"
    _, shared = run(text, args="x y")
    assert shared["a"] == "<x><y>"
    [warning] = messages(text)
    assert warning.startswith("nodes.a.run.shell: warning: '| unquoted' renders a value into the command line")


def test_lint_warns_about_an_expression_inside_quotes_only() -> None:
    assert [
        m.split(": warning: ")[1][:40] for m in messages("nodes: {a: {run: {shell: \"echo '{{ params.x }}'\"}}}")
    ] == ["an expression is written inside quotes, "]
    assert messages("nodes: {a: {run: {shell: \"echo {{ params.x }} 'it''s' # '{{ params.y }}\"}}}") == []
    assert messages("nodes: {a: {run: {command: [echo, \"'{{ params.x }}'\"]}}}") == []


def test_shquote_quotes_anywhere_and_command_stays_argv() -> None:
    text = """
    nodes:
      a: {run: {command: [sh, -c, "printf '<%s>' {{ params.x | shquote }}"]}, next: {default: b}}
      b: {run: {command: [printf, "<%s>", "{{ params.x }}"]}}
    """
    _, shared = run(text, x="a b; echo no")
    assert shared["a"] == "<a b; echo no>"
    assert shared["b"] == "<a b; echo no>"


# -- error messages: the source, never the rendering -------------------------------------------------


def test_failing_command_shows_its_source_not_the_token() -> None:
    with pytest.raises(ShellError) as caught:
        run('nodes: {x: {run: {command: ["false", "--token={{ params.token }}"]}}}', token=TOKEN)
    message = str(caught.value)
    assert TOKEN not in message
    assert message.startswith("nodes.x.run.command: command `false --token={{ params.token }}` exited with status 1")


def test_failing_shell_line_shows_its_source_not_the_password() -> None:
    text = "nodes: {x: {run: {shell: 'echo denied >&2; test admin:{{ shared.pw }} = ok'}}}"
    with pytest.raises(ShellError) as caught:
        run(text, {"pw": TOKEN})
    message = str(caught.value)
    assert TOKEN not in message
    assert message == (
        "nodes.x.run.shell: command `echo denied >&2; test admin:{{ shared.pw }} = ok` exited with status 1: denied"
    )


def test_a_long_source_is_cut_and_names_the_values_it_reads() -> None:
    text = "nodes: {x: {run: {shell: 'exit 3; : " + "x" * 300 + " {{ params.token }}'}}}"
    with pytest.raises(ShellError) as caught:
        run(text, token=TOKEN)
    message = str(caught.value)
    assert TOKEN not in message
    assert "x …` (uses params.token) exited with status 3: (no stderr)" in message


def test_a_program_that_cannot_start_does_not_name_the_rendered_path() -> None:
    with pytest.raises(ShellError) as caught:
        run('nodes: {x: {run: {command: ["/nonexistent/{{ params.token }}"]}}}', token=TOKEN)
    assert TOKEN not in str(caught.value)
    assert "command `/nonexistent/{{ params.token }}` could not start: No such file or directory" in str(caught.value)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.path == "/missing":
            return web.Response(status=404, text="no such thing")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    with serve(app) as base:
        yield base, seen


def test_http_status_error_shows_the_url_source_not_the_token(server: Any) -> None:
    base, _ = server
    with pytest.raises(HttpError) as caught:
        run(f"nodes: {{x: {{run: {{http: {{url: '{base}/missing?token={{{{ params.token }}}}'}}}}}}}}", token=TOKEN)
    message = str(caught.value)
    assert TOKEN not in message
    assert message == (
        f"nodes.x.run.http: GET {base}/missing?token={{{{ params.token }}}} answered 404 Not Found: no such thing"
    )


def test_http_connection_error_shows_the_url_source_not_the_token() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpError) as caught:
        run(
            f"nodes: {{x: {{run: {{http: {{url: 'http://127.0.0.1:{port}/?t={{{{ params.token }}}}'}}}}}}}}",
            token=TOKEN,
        )
    message = str(caught.value)
    assert TOKEN not in message
    assert message.startswith(f"nodes.x.run.http: GET http://127.0.0.1:{port}/?t={{{{ params.token }}}} failed: ")


# -- http JSON keeps types ----------------------------------------------------------------------------


def test_a_json_string_that_is_one_expression_renders_to_its_value(server: Any) -> None:
    base, seen = server
    text = f"""
    nodes:
      x:
        run:
          http:
            method: POST
            url: "{base}/items"
            json:
              count: "{{{{ params.n }}}}"
              flag: "{{{{ params.n > 2 }}}}"
              rows: "{{{{ shared.rows }}}}"
              nothing: "{{{{ shared.none }}}}"
              nested: {{deep: ["{{{{ shared.rows | length }}}}"]}}
              text: "id-{{{{ params.n }}}}"
              spaced: " {{{{ params.n }}}}"
    """
    run(text, {"rows": [1, {"a": 2}], "none": None}, n=3)
    assert json.loads(seen[-1]["body"]) == {
        "count": 3,
        "flag": True,
        "rows": [1, {"a": 2}],
        "nothing": None,
        "nested": {"deep": [2]},
        "text": "id-3",
        "spaced": " 3",
    }


def test_an_undefined_value_in_a_json_expression_still_fails(server: Any) -> None:
    base, _ = server
    text = f"nodes: {{x: {{run: {{http: {{method: POST, url: '{base}/i', json: {{a: '{{{{ shared.nope }}}}'}}}}}}}}}}"
    with pytest.raises(TemplateError, match=r"nodes.x.run.http.json.a: 'dict object' has no attribute 'nope'"):
        run(text)


# -- env: the run's declared environment --------------------------------------------------------------


def test_an_http_node_takes_a_credential_from_the_declared_env(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    base, seen = server
    monkeypatch.setenv("API_TOKEN", TOKEN)
    headers = "{Authorization: 'Bearer {{ env.API_TOKEN }}'}"
    text = f"nodes: {{x: {{run: {{http: {{url: '{base}/me', headers: {headers}}}}}}}}}"
    assert messages(text) == []  # lint knows env
    with declared_environment(["API_TOKEN"]):
        _, shared = run(text)
    assert shared["x"] == {"ok": True}
    assert seen[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_an_undeclared_env_name_fails_naming_the_field_and_the_declared_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOT_DECLARED", "x")
    with declared_environment(["API_TOKEN", "REGION"]), pytest.raises(TemplateError) as caught:
        run("nodes: {x: {run: {shell: 'echo {{ env.NOT_DECLARED }}'}}}")
    assert str(caught.value) == (
        "nodes.x.run.shell: env.NOT_DECLARED is not declared; templates see only the variables the FlowRun's "
        "spec.env or the node's run.env declare (API_TOKEN, REGION): add NOT_DECLARED to the FlowRun's spec.env"
    )


def test_a_node_reads_its_own_run_env_and_a_declared_unset_name_takes_a_default() -> None:
    text = """
    nodes:
      x:
        run:
          shell: "echo {{ env.GREETING }} {{ env.OPTIONAL | default('none') }}"
          env: {GREETING: "hi {{ params.who }}"}
    """
    with declared_environment(["OPTIONAL"]):
        _, shared = run(text, who="there")
    assert shared["x"] == "hi there none"


def test_without_a_declaration_every_process_variable_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWCTL_LOCAL_VAR", "local value")
    _, shared = run('nodes: {x: {action: \'{{ env.FLOWCTL_LOCAL_VAR | replace(" ", "-") }}\'}}')
    assert shared == {}
    action, _ = run('nodes: {x: {action: \'{{ env.FLOWCTL_LOCAL_VAR | replace(" ", "-") }}\'}}')
    assert action == "local-value"


def test_the_declared_environment_follows_the_run_into_tasks() -> None:
    async def read_in_task() -> str:
        from flowlib_runner.definition.templates import run_environment

        return repr(await asyncio.create_task(asyncio.sleep(0, result=run_environment())))

    with declared_environment([]):
        assert asyncio.run(read_in_task()) == "<env >"
