"""``run: {http: {method, url, headers, query, json | body, timeout, expectedStatus}}`` with aiohttp.

Strings (url, header and query values, strings inside ``json``, ``body``) are Jinja2 templates
rendered per call; a string of ``json`` that is exactly one ``{{ expression }}`` becomes its value
(``{n: "{{ params.count }}"}`` sends a number, not a string). Credentials come from ``env``
(``Authorization: "Bearer {{ env.API_TOKEN }}"``, the variable declared in the FlowRun's
``spec.env``, typically from a Secret). The result is the response body, parsed when the server
says it is JSON, text otherwise. A status outside ``expectedStatus`` (default: any 2xx) fails the
node with the status and the start of the body, so retries and the ``error`` edge apply.

Error messages show the url's template source, never the rendered URL (a token in its query would
reach status, Events and logs); the body snippet in them is masked by the execution layer, like
everything the runner writes. A request that cannot be sent fails with the client's error type and
message, except an invalid URL, whose message would be the URL itself.
"""

from __future__ import annotations

import json
from typing import Any

from flowlib_api.flowspec import RunSpec
from flowlib_api.times import parse_duration

from ..problems import Problem, join_path
from ..templates import check_template, compile_value, describe_source, render_value, template_strings
from . import Code, NodeRuntime

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_TIMEOUT = parse_duration("5m")
BODY_SNIPPET = 500


class HttpError(RuntimeError):
    """The server answered with a status the node does not accept."""


class HttpKind:
    name = "http"

    def validate(self, run: RunSpec, path: str, *, batch: bool) -> list[Problem]:
        spec = run.http
        if spec is None:
            return []
        where = join_path(path, "http")
        problems: list[Problem] = []
        if spec.method.upper() not in METHODS:
            problems.append(
                Problem(
                    join_path(where, "method"),
                    f"unknown method '{spec.method}'; use one of {', '.join(METHODS)}",
                )
            )
        if spec.json_body is not None and spec.body is not None:
            problems.append(Problem(join_path(where, "body"), "set either json or body, not both"))
        if not spec.url.strip():
            problems.append(Problem(join_path(where, "url"), "the url is empty; write http(s)://host/path"))
        for status in spec.expected_status or []:
            if not 100 <= status <= 599:
                problems.append(
                    Problem(join_path(where, "expectedStatus"), f"{status} is not an HTTP status (100-599)")
                )
        strings = [(join_path(where, "url"), spec.url)]
        strings += template_strings(spec.headers, join_path(where, "headers"))
        strings += template_strings(spec.query, join_path(where, "query"))
        strings += template_strings(spec.json_body, join_path(where, "json"))
        if spec.body is not None:
            strings.append((join_path(where, "body"), spec.body))
        for at, text in strings:
            message = check_template(text)
            if message:
                problems.append(Problem(at, message))
        return problems

    def build(self, run: RunSpec, *, node: str, batch: bool) -> Code:
        return HttpCode(run, node=node, batch=batch)


class HttpCode(Code):
    has_exec = True

    def __init__(self, run: RunSpec, *, node: str, batch: bool) -> None:
        assert run.http is not None
        spec = run.http
        where = f"nodes.{node}.run.http"
        self._method = spec.method.upper()
        self._url = compile_value(spec.url, f"{where}.url")
        self._headers = compile_value(dict(spec.headers), f"{where}.headers")
        self._query = compile_value(dict(spec.query), f"{where}.query")
        self._json = compile_value(spec.json_body, f"{where}.json", kind="native")
        self._body = compile_value(spec.body, f"{where}.body")
        self._timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT
        self._expected = set(spec.expected_status or [])
        self._batch = batch
        self._shown = f"{where}: {self._method} {describe_source(spec.url, backticks=False)}"  # never the rendered URL

    def _accepts(self, status: int) -> bool:
        return status in self._expected if self._expected else 200 <= status < 300

    async def exec(self, node: NodeRuntime, payload: Any) -> Any:
        import aiohttp

        context = node.template_context(item=payload if self._batch else None)
        url = render_value(self._url, context)
        kwargs: dict[str, Any] = {
            "headers": render_value(self._headers, context),
            "params": render_value(self._query, context),
        }
        if self._json is not None:
            kwargs["json"] = render_value(self._json, context)
        elif self._body is not None:
            kwargs["data"] = render_value(self._body, context).encode("utf-8")
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(self._method, url, **kwargs) as response,
            ):
                text = await response.text(errors="replace")
                status, reason, content_type = response.status, response.reason, response.content_type
        except aiohttp.ClientError as exc:
            raise HttpError(f"{self._shown} failed: {_client_error(exc)}") from exc
        except TimeoutError as exc:
            raise HttpError(f"{self._shown} timed out after {self._timeout:g}s") from exc
        return self._result(status, reason, content_type, text)

    def _result(self, status: int, reason: str | None, content_type: str | None, text: str) -> Any:
        """The response body as the node's result, or HttpError for a status it does not accept."""
        if not self._accepts(status):
            answer = f"{status} {reason or ''}".rstrip()
            raise HttpError(f"{self._shown} answered {answer}: {text[:BODY_SNIPPET]}")
        if "json" in (content_type or ""):
            try:
                return json.loads(text) if text else None
            except json.JSONDecodeError as exc:
                raise HttpError(f"{self._shown} sent invalid JSON ({exc}): {text[:BODY_SNIPPET]}") from exc
        return text


def _client_error(exc: Exception) -> str:
    """What went wrong sending a request, without the URL some client errors put in their message."""
    import aiohttp

    if isinstance(exc, aiohttp.InvalidURL):
        return f"{type(exc).__name__}: the rendered URL is not valid"
    if isinstance(exc, aiohttp.ClientResponseError):  # its str() ends with url='...'
        return f"{type(exc).__name__}: {exc.status} {exc.message}".rstrip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
