"""A loopback OpenAI-compatible server that misbehaves on purpose, for backend and engine tests.

It serves ``/v1/completions`` and ``/v1/chat/completions`` on 127.0.0.1 (a free port), answers
each choice with ``reply(seen)``, and injects faults from a schedule:

>>> async with fault_server(reply=lambda seen: "move = [1, 0, 2]") as server:
...     server.set_faults(["http500", None, "reset"])  # the next three requests
...     server.set_faults(rate=0.2, seed=1)             # or: a fifth of all requests, at random
...     backend = OpenAIBackend(server.base_url, "test-model")

``threaded_fault_server`` runs the same server on its own loop in a thread, for code that calls
``asyncio.run`` itself (``maker.run``). Tokens are whitespace-separated words: a reply longer
than ``max_tokens`` words is cut there and finishes with "length". Like vLLM, the server reports
only ``usage.completion_tokens`` unless the request asks for logprobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aiohttp import web

FaultKind = Literal[
    "delay",  # answer only after delay_s (past a client's timeout)
    "reset",  # drop the connection without answering
    "http429",
    "http500",
    "http503",
    "malformed",  # 200 with a truncated JSON body
    "no_choices",  # 200 with a JSON body that has no "choices"
    "too_many_choices",  # 200 with one choice more than asked for
    "restart",  # drop every connection, stop listening for down_s, then listen again
]
FAULTS: tuple[FaultKind, ...] = get_args(FaultKind)
# The faults a random schedule draws from by default: every one a retrying client must survive.
TRANSIENT: tuple[FaultKind, ...] = ("delay", "reset", "http429", "http500", "http503", "malformed", "no_choices")


@dataclass(frozen=True)
class SeenRequest:
    """One request the server received, and the fault it was given (None: served normally)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    fault: FaultKind | None

    @property
    def prompt(self) -> str:
        if "messages" in self.body:
            return str(self.body["messages"][-1]["content"])
        return str(self.body.get("prompt", ""))


Reply = Callable[[SeenRequest], str]


class FaultServer:
    """The server's state; start it with ``fault_server`` or ``threaded_fault_server``."""

    def __init__(
        self,
        reply: Reply = lambda seen: "ok",
        *,
        max_n: int | None = None,  # answer at most this many choices (1: a server that ignores n)
        api_key: str | None = None,  # when set, other bearer keys get 401
        delay_s: float = 0.5,
        down_s: float = 0.05,
        latency_s: float = 0.0,  # every answer takes this long (a model's decode time)
        max_concurrent: int | None = None,  # requests served at once; the rest queue (a server's batch limit)
    ) -> None:
        self.reply = reply
        self.max_n = max_n
        self.api_key = api_key
        self.delay_s = delay_s
        self.down_s = down_s
        self.latency_s = latency_s
        self.max_concurrent = max_concurrent
        self._serving: asyncio.Semaphore | None = None
        self.requests_seen: list[SeenRequest] = []
        self.faults_injected: Counter[str] = Counter()
        self.restarts = 0
        self.port = 0
        # set_faults may be called from another thread than the server's (threaded_fault_server).
        self._lock = threading.Lock()
        self._script: list[FaultKind | None] = []
        self._rate = 0.0
        self._kinds: tuple[FaultKind, ...] = TRANSIENT
        self._rng = random.Random(0)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._stopping: asyncio.Event | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._down = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set_faults(
        self,
        script: Sequence[FaultKind | None] = (),
        *,
        rate: float = 0.0,
        kinds: Sequence[FaultKind] = TRANSIENT,
        seed: int = 0,
    ) -> None:
        """Replace the fault schedule. The next requests get ``script``'s faults in order; a None
        entry, and every request after the script, gets a fault from ``kinds`` with probability
        ``rate`` (so with rate 0 a None entry is a normal answer)."""
        unknown = [k for k in [*script, *kinds] if k is not None and k not in FAULTS]
        if unknown or not 0.0 <= rate <= 1.0:
            raise ValueError(f"unknown faults {unknown} or rate {rate} outside [0, 1]; faults are {FAULTS}")
        with self._lock:
            self._script = list(script)
            self._rate, self._kinds, self._rng = rate, tuple(kinds), random.Random(seed)

    def _next_fault(self) -> FaultKind | None:
        with self._lock:
            scripted = self._script.pop(0) if self._script else None
            if scripted is not None:
                return scripted
            if self._rate and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
            return None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self._handle)
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        self._serving = asyncio.Semaphore(self.max_concurrent) if self.max_concurrent else None
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()  # wakes delayed handlers so shutdown does not wait for them
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._runner.cleanup()

    async def restart(self, down_s: float | None = None) -> None:
        """Drop every connection, refuse new ones for ``down_s`` seconds, then serve again.

        Call it from the server's loop; with ``threaded_fault_server`` schedule a "restart" fault.
        """
        assert self._runner is not None and self._runner.server is not None and self._site is not None
        if self._down:  # a request that was in flight when the restart began: already dropped
            return
        self._down = True
        self.restarts += 1
        try:
            await self._site.stop()
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()
            await asyncio.sleep(self.down_s if down_s is None else down_s)
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await self._site.start()
        finally:
            self._down = False

    async def settle(self) -> None:
        """Wait until restarts under way are over (call from the server's own loop)."""
        await asyncio.gather(*self._background, return_exceptions=True)

    # --- serving ------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "test-model", "object": "model"}]})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._serving is None:
            return await self._answer(request)
        async with self._serving:
            return await self._answer(request)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        body = await request.json()
        authorized = self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        seen = SeenRequest(request.path, body, dict(request.headers), self._next_fault() if authorized else None)
        self.requests_seen.append(seen)
        if not authorized:
            return web.json_response({"error": {"message": "invalid api key", "type": "auth"}}, status=401)
        fault = seen.fault
        if fault is not None:
            self.faults_injected[fault] += 1
        if fault in ("reset", "restart"):
            assert request.transport is not None
            request.transport.abort()
            if fault == "restart":
                task = asyncio.create_task(self.restart())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            return web.Response()  # never sent: aiohttp drops it quietly on the closed transport
        if fault == "delay":
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay_s)
        if fault in ("http429", "http500", "http503"):
            status = int(fault[4:])
            headers = {"Retry-After": "0"} if status == 429 else None
            return web.json_response(
                {"error": {"message": f"injected {status}", "type": "fault"}}, status=status, headers=headers
            )
        if fault == "malformed":
            return web.Response(text='{"choices": [{"text": "move = [1, 0', content_type="application/json")
        if fault == "no_choices":
            return web.json_response(
                {"id": "cmpl-fault", "object": "text_completion", "usage": {"completion_tokens": 0}}
            )
        n = int(body.get("n", 1))
        count = n + 1 if fault == "too_many_choices" else min(n, self.max_n or n)
        return web.json_response(self._completion(seen, count))

    def _completion(self, seen: SeenRequest, count: int) -> dict[str, Any]:
        chat = seen.path.endswith("chat/completions")
        limit = int(seen.body.get("max_tokens", 16))
        choices, total = [], 0
        for index in range(count):
            words = self.reply(seen).split(" ")
            finish = "length" if len(words) > limit else "stop"
            words = words[:limit]
            text = " ".join(words)
            total += len(words)
            choice: dict[str, Any] = {"index": index, "finish_reason": finish, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
                if seen.body.get("logprobs"):
                    choice["logprobs"] = {"content": [{"token": w, "logprob": 0.0} for w in words]}
            else:
                choice["text"] = text
                if seen.body.get("logprobs") is not None:
                    choice["logprobs"] = {"tokens": words, "token_logprobs": [0.0] * len(words)}
            choices.append(choice)
        return {
            "id": f"cmpl-{len(self.requests_seen)}",
            "object": "chat.completion" if chat else "text_completion",
            "model": seen.body.get("model"),
            "choices": choices,
            "usage": {"prompt_tokens": len(seen.prompt.split()), "completion_tokens": total},
        }


def oracle_replies(task: Any) -> Reply:
    """A reply function that answers every prompt of ``task``'s oracle trajectory correctly (a fake model
    that never errs); anything else gets "I do not know"."""
    state, table = task.initial_state(), {}
    while not task.is_done(state):
        candidate = task.oracle(state)
        table[task.prompt(state)] = task.format_reply(state, candidate)
        state = task.apply(state, candidate)
    return lambda seen: table.get(seen.prompt, "I do not know")


@contextlib.asynccontextmanager
async def fault_server(reply: Reply = lambda seen: "ok", **options: Any) -> AsyncIterator[FaultServer]:
    """A running ``FaultServer`` on the current event loop (options: see ``FaultServer``)."""
    server = FaultServer(reply, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.contextmanager
def threaded_fault_server(reply: Reply = lambda seen: "ok", **options: Any) -> Iterator[FaultServer]:
    """A running ``FaultServer`` on its own event loop in a thread, for synchronous callers."""
    server = FaultServer(reply, **options)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
