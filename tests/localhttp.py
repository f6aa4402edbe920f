"""A real HTTP server on loopback for tests: an aiohttp app in its own event loop thread, on a
free port, stopped (with a timeout) when the block ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:PORT``)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@contextmanager
def item_pages() -> Iterator[tuple[str, list[str]]]:
    """A server of pages ``/items/N`` answering ``{"n": N}``, except ``/items/404``, a 404; yields
    the base URL and the ``N`` of every request seen (in arrival order)."""
    seen: list[str] = []

    async def item(request: web.Request) -> web.Response:
        seen.append(request.match_info["n"])
        if request.match_info["n"] == "404":
            return web.Response(status=404, text="gone")
        return web.json_response({"n": int(request.match_info["n"])})

    app = web.Application()
    app.router.add_get("/items/{n}", item)
    with serve(app) as base:
        yield base, seen
