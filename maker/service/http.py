"""The HTTP face of ``maker serve`` (aiohttp).

    POST   /runs               submit a job (a JobSpec as JSON); 201 with its record
    GET    /runs               every job's record
    GET    /runs/{id}          one job's record and live numbers
    DELETE /runs/{id}          cancel it, as Ctrl-C does; submitting its name again resumes it
    GET    /runs/{id}/events   server-sent events: ``job`` (the job's view, on every change, at most once
                               a second) and the run's discrete events as they happen: ``chain_started``,
                               ``chain_finished``, ``chain_reset``, ``red_flag`` (with the reply),
                               ``contested_step`` (a step that took more than one round)
    GET    /runs/{id}/journal  the journal, as a download
    GET    /runs/{id}/page     the live page: the job's numbers as they change (plain HTML, one script)

Every error is a JSON ``{"error": message}`` with a 4xx status that says whose it is: 400 bad input,
401 token, 404 no such job, 409 a job in the wrong state, 413 a body over 64 KiB. Anything else is
a 500 that names no internals (the service's log has the traceback). With a token, every request
needs it, as ``Authorization: Bearer TOKEN`` or (for the browser's event stream) ``?token=TOKEN``;
the token never appears in a response or a log line, and there is no access log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from maker.errors import ConfigError, TaskError
from maker.service.jobs import UNFINISHED, JobConflict, JobNotFound, JobService
from maker.service.live import LiveView

log = logging.getLogger("maker")
MAX_BODY = 64 * 1024
EVENT_INTERVAL = 1.0  # seconds between two views of one stream, at least: a page redrawn more often costs the run CPU
HEARTBEAT = 15.0  # seconds of quiet after which a stream sends a comment, so proxies keep it open
SERVICE_KEY = web.AppKey("service", JobService)
PAGE = Path(__file__).with_name("page.html")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(service: JobService, *, token: str | None = None) -> web.Application:
    """The service's application; it starts the job service (resuming unfinished jobs) and stops it."""
    app = web.Application(middlewares=[_errors, _token_check(token)], client_max_size=MAX_BODY)
    app[SERVICE_KEY] = service
    app.router.add_post("/runs", _submit)
    app.router.add_get("/runs", _list)
    app.router.add_get("/runs/{id}", _show)
    app.router.add_delete("/runs/{id}", _cancel)
    app.router.add_get("/runs/{id}/events", _events)
    app.router.add_get("/runs/{id}/journal", _journal)
    app.router.add_get("/runs/{id}/page", _page)

    async def start(app: web.Application) -> None:
        await service.start()

    async def stop(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the request body is over {MAX_BODY // 1024} KiB")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except JobNotFound as exc:
        return _error(404, str(exc))
    except JobConflict as exc:
        return _error(409, str(exc))
    except (ConfigError, TaskError) as exc:
        return _error(400, str(exc))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error (the service's log has the details)")


def _token_check(token: str | None) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "missing or wrong token: send the header 'Authorization: Bearer TOKEN'")
        return await handler(request)

    return check


async def _submit(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ConfigError(f"the request body is not JSON: {exc}") from None
    job = request.app[SERVICE_KEY].submit(body)
    return web.json_response(job.record(), status=201, headers={"Location": f"/runs/{job.id}"})


async def _list(request: web.Request) -> web.Response:
    return web.json_response([job.record() for job in request.app[SERVICE_KEY].jobs.values()])


async def _show(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].get(request.match_info["id"]).view())


async def _cancel(request: web.Request) -> web.Response:
    job = request.app[SERVICE_KEY].cancel(request.match_info["id"])
    if job.runner is not None:
        await asyncio.wait([job.runner], timeout=5.0)  # it stops within a second; answer with its final state
    return web.json_response(job.record())


async def _events(request: web.Request) -> web.StreamResponse:
    job = request.app[SERVICE_KEY].get(request.match_info["id"])
    return await stream_views(request, job.view, job.live, lambda: job.state not in UNFINISHED)


async def stream_views(request: web.Request, view: Callable[[], dict[str, Any]], live: LiveView,
                       ended: Callable[[], bool]) -> web.StreamResponse:
    """Server-sent events: ``view()`` now and after every change (at most every ``EVENT_INTERVAL``),
    each time after the discrete events that came since (``LiveView.events``), until ``ended()``;
    then an ``end`` event."""
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await stream.prepare(request)
    loop = asyncio.get_running_loop()
    seen = 0
    while True:
        sent = loop.time()
        news = live.events_after(seen)
        if news:
            seen = news[-1][0]
        lines = [f"id: {number}\nevent: {kind}\ndata: {json.dumps(data)}\n\n" for number, kind, data in news]
        await stream.write(("".join(lines) + f"event: job\ndata: {json.dumps(view())}\n\n").encode())
        if ended():
            break
        await live.wait(HEARTBEAT)
        if loop.time() - sent >= HEARTBEAT:
            await stream.write(b": still running\n\n")
        await asyncio.sleep(max(0.0, EVENT_INTERVAL - (loop.time() - sent)))
    await stream.write(b"event: end\ndata: {}\n\n")
    return stream


async def watch_server(view: Callable[[], dict[str, Any]], live: LiveView, ended: Callable[[], bool],
                       port: int) -> web.AppRunner:
    """The live page of one run in this process (``maker run --watch``), on 127.0.0.1:``port``:
    ``/`` leads to ``/runs/run/page``. Stop it with ``await runner.cleanup()``."""
    app = web.Application()

    async def page(request: web.Request) -> web.StreamResponse:
        return page_response()

    async def events(request: web.Request) -> web.StreamResponse:
        return await stream_views(request, view, live, ended)

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/runs/run/page")

    app.router.add_get("/", home)
    app.router.add_get("/runs/run/page", page)
    app.router.add_get("/runs/run/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"--watch {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    return runner


async def _page(request: web.Request) -> web.StreamResponse:
    request.app[SERVICE_KEY].get(request.match_info["id"])  # a 404 for an unknown job, before any page
    return page_response()


def page_response() -> web.Response:
    """The live page; it follows the event stream beside it (``events``)."""
    return web.Response(text=PAGE.read_text(), content_type="text/html")


async def _journal(request: web.Request) -> web.StreamResponse:
    job = request.app[SERVICE_KEY].get(request.match_info["id"])
    if not job.journal.exists():
        raise JobNotFound(f"job {job.id!r} has no journal yet")
    return web.FileResponse(job.journal, headers={"Content-Disposition": f'attachment; filename="{job.id}-{job.journal.name}"'})
