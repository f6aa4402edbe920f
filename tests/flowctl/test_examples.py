"""Every example in examples/ runs with `flowctl run --json` and produces the documented output."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.flowctl.conftest import EXAMPLES, run_json


def test_every_example_is_covered_here() -> None:
    tested = {
        "hello",
        "retry-fallback",
        "map-reduce",
        "agent-loop",
        "subflow",
        "http",
        "shell",
        "partial-failures",
        "finally",
    }
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == tested


def test_hello() -> None:
    code, status, logs = run_json(EXAMPLES / "hello.yaml", "-p", "name=Ada")
    assert code == 0 and status["phase"] == "Succeeded"
    assert status["output"] == {"greet": "Hello, Ada!", "shout": "HELLO, ADA!"}
    assert status["progress"] == "2/2"
    assert "[greet#1] started (YamlNode)" in logs and "[run] run finished" in logs


def test_retry_fallback() -> None:
    code, status, logs = run_json(EXAMPLES / "retry-fallback.yaml")
    assert code == 0 and status["phase"] == "Succeeded"
    out = status["output"]
    assert out["flaky"] == "ok after 3 calls"
    assert out["quote"]["text"] == "cached quote" and out["quote"]["reason"] == "quote service unreachable"
    assert out["error"] == {"node": "charge", "type": "RuntimeError", "message": "card declined"}
    assert out["refund"] == "refunded after charge: card declined"
    nodes = status["nodes"]
    assert nodes["flaky"]["attempts"] == 3 and nodes["quote"]["attempts"] == 2
    assert nodes["charge"]["action"] == "error" and nodes["refund"]["phase"] == "Succeeded"
    assert "[flaky#1] attempt 1 failed: ConnectionError: service busy (call 1)" in logs
    assert "[flaky#3] finished" in logs


def test_retry_fallback_fails_when_retries_run_out() -> None:
    code, status, _ = run_json(EXAMPLES / "retry-fallback.yaml", "-p", "failures=5")
    assert code == 1 and status["phase"] == "Failed"
    assert status["message"] == "ConnectionError: service busy (call 3)"
    assert status["nodes"]["flaky"]["phase"] == "Failed" and "quote" not in status["nodes"]


def test_map_reduce_big_and_small_branches() -> None:
    code, status, _ = run_json(EXAMPLES / "map-reduce.yaml")
    assert code == 0
    assert status["output"]["counts"] == [4, 2, 3] and status["output"]["verdict"] == "big corpus: 9 words"
    assert status["nodes"]["count"]["kind"] == "worker_pool"
    assert status["nodes"]["count"]["items"] == {"total": 3, "done": 3, "failed": 0}
    assert status["nodes"]["total"]["action"] == "big" and "small" not in status["nodes"]
    code, status, _ = run_json(EXAMPLES / "map-reduce.yaml", "--input", '{"docs": ["a b", "c"]}', "--output", "verdict")
    assert code == 0 and status["output"] == {"verdict": "small corpus: 3 words"}


def test_agent_loop_branches_until_done() -> None:
    code, status, _ = run_json(EXAMPLES / "agent-loop.yaml", "-p", "needed=4", "-p", "question=capital of France")
    assert code == 0
    assert status["output"]["decisions"] == ["search"] * 4 + ["answer"]
    assert status["output"]["answer"] == "Answer to 'capital of France': Paris (from 4 notes)"
    assert status["nodes"]["decide"]["visits"] == 5 and status["nodes"]["search"]["visits"] == 4


def test_agent_loop_hits_its_step_guard() -> None:
    code, status, _ = run_json(EXAMPLES / "agent-loop.yaml", "-p", "needed=1000")
    assert code == 1 and status["phase"] == "Failed"
    assert "MaxStepsExceeded" in status["message"] and "50" in status["message"]


def test_subflow_runs_per_item() -> None:
    code, status, _ = run_json(EXAMPLES / "subflow.yaml")
    assert code == 0
    assert status["output"]["line_totals"] == [1.5, 1.5]  # one result per line, in item order
    assert status["output"]["total"] == 3.0
    assert status["nodes"]["price_each"]["kind"] == "flow"
    assert status["nodes"]["price_each/lookup"]["visits"] == 2


def test_shell() -> None:
    code, status, _ = run_json(EXAMPLES / "shell.yaml", "-p", "who=the operator")
    assert code == 0
    assert status["output"] == {"banner": "HELLO THE OPERATOR", "facts": {"words": 3}}


@pytest.fixture
def todo_server() -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving /todo/{id}; yields its base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def todo(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"]), "title": "write tests", "completed": True})

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/todo/{id}", todo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=10)
    started.wait(10)
    yield f"http://127.0.0.1:{state['port']}"
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_http_against_a_local_server(todo_server: str) -> None:
    code, status, _ = run_json(EXAMPLES / "http.yaml", "-p", f"url={todo_server}/todo/7")
    assert code == 0, status
    assert status["output"]["todo"] == {"id": 7, "title": "write tests", "completed": True}
    assert status["output"]["summary"] == "write tests (done)"


def test_http_error_status_fails_the_run(todo_server: str) -> None:
    code, status, _ = run_json(EXAMPLES / "http.yaml", "-p", f"url={todo_server}/missing")
    assert code == 1 and status["phase"] == "Failed"
    assert status["nodes"]["fetch"]["attempts"] == 3 and "404" in status["message"]


def test_partial_failures_run_every_item_and_record_the_failed_ones() -> None:
    code, status, _ = run_json(EXAMPLES / "partial-failures.yaml")
    assert code == 0 and status["phase"] == "Succeeded"
    assert status["output"]["prices"] == [0.5, 0.75, None, 0.3, None]
    assert [e["item"] for e in status["output"]["price_errors"]] == ["durian", "quince"]
    assert status["output"]["report"] == "3 priced, 2 failed"
    assert status["nodes"]["price"]["items"] == {"total": 5, "done": 5, "failed": 2}


def test_finally_runs_after_success_and_after_failure() -> None:
    code, status, _ = run_json(EXAMPLES / "finally.yaml")
    assert code == 0 and status["output"]["release"] == "released scratch-42 after Succeeded"
    code, status, _ = run_json(EXAMPLES / "finally.yaml", "-p", "fail=true")
    assert code == 1 and status["phase"] == "Failed" and "the build broke" in status["message"]
    assert status["output"]["release"] == "released scratch-42 after Failed (RuntimeError: the build broke)"
