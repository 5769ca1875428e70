"""``OpenAIBackend``, for any OpenAI-compatible server (vLLM, llama.cpp, ...), spoken to over aiohttp.

One ``sample`` call is one POST to ``{base_url}/completions`` (or ``/chat/completions``) asking for
``n`` choices. Every aiohttp, asyncio and JSON error becomes a ``BackendError`` subclass whose
message says what went wrong and where, and never contains the API key.

Servers that return fewer choices than asked (some ignore ``n``) get the rest asked for again, one
request per missing choice, each with a seed derived from the request's (so a seeded request does
not get the same sample back). ``max_n`` splits a request up front for servers that refuse ``n``
above some limit (llama.cpp: ``max_n=1``).

Tokens per sample (``token_counts``), best source first:
1. the choice's own token list, when the server returned logprobs (``extra={"logprobs": 0}`` on
   /completions, ``{"logprobs": True}`` on /chat/completions): exact;
2. ``usage.completion_tokens`` when the response holds one choice: exact;
3. ``usage.completion_tokens`` over several choices: one cut off by length took ``max_tokens``; the
   rest is shared in proportion to text length (an estimate whose sum is exact);
4. no usage at all: about four characters a token.
An estimate never counts a reply that stopped by itself as reaching ``max_tokens`` (the generation
cap, by default one past the red-flag limit): only an exact count may make the engine red-flag a
reply as too long.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr
from yarl import URL

from maker.backends.base import Backend, FinishReason, Sample, SampleRequest
from maker.errors import BackendConnectionError, BackendHTTPError, BackendResponseError, BackendTimeout, ConfigError

Api = Literal["completions", "chat"]
_PATHS: dict[str, str] = {"completions": "completions", "chat": "chat/completions"}
# Fields this backend sets itself; ``stream`` is here because a streamed answer is not one JSON body.
_RESERVED = frozenset({"model", "prompt", "messages", "n", "temperature", "max_tokens", "seed", "stream"})
# Finish reasons meaning the text was cut off, so the engine must discard it as truncated.
_CUT_OFF = frozenset({"length", "max_tokens", "content_filter", "abort"})
_CHARS_PER_TOKEN = 4


class OpenAIBackend(Backend):
    """Samples from an OpenAI-compatible HTTP server.

    >>> backend = OpenAIBackend("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-0.5B-Instruct")
    >>> backend.describe()["api"]
    'completions'

    Use it as ``async with backend:`` or call ``aclose()``; a session left open is closed anyway
    when its event loop is shut down by ``asyncio.run``.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api: Api = "completions", api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0, max_connections: int = 64,
                 max_n: int | None = None, extra: Mapping[str, Any] | None = None,
                 agents: Mapping[str, str] | None = None) -> None:
        url = URL(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            got = _shown(url) if url.absolute else "a URL without scheme or host"  # may hold a password: not echoed
            raise ConfigError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {got!r}")
        if api not in _PATHS:
            raise ConfigError(f"api must be 'completions' or 'chat', got {api!r}")
        if not timeout > 0 or max_connections < 1 or (max_n is not None and max_n < 1):
            raise ConfigError(f"need timeout > 0, max_connections >= 1, max_n >= 1 "
                              f"(got {timeout}, {max_connections}, {max_n})")
        if clash := sorted(_RESERVED.intersection(extra or {})):
            raise ConfigError(f"extra request fields may not set {clash}: the backend sets them itself")
        self.model = model
        # agent -> served model name (vLLM picks a LoRA adapter by it); other agents get `model`
        self.agents = dict(agents or {})
        self.api: Api = api
        self.timeout, self.max_connections, self.max_n = float(timeout), max_connections, max_n
        self.extra = dict(extra or {})
        self._url = (url / _PATHS[api]).with_query(url.query)  # a query (api-version=...) is kept
        self._models_url = (url / "models").with_query(url.query)
        # What messages, repr and describe() show: no user, password, query or fragment.
        self.base_url = _shown(url)
        self.url = _shown(self._url)
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        if key and (url.user is not None or url.password is not None):  # aiohttp refuses both at once
            raise ConfigError(f"base_url holds credentials (user:password@) and an API key is set too: give one of "
                              f"them (the key through {api_key_env} or api_key); got {_shown(url)!r}")
        # SecretStr so that the key reads '**********' in any repr, vars() dump or debugger.
        self._api_key = SecretStr(key) if key else None
        # Loop-bound: made on first use inside the running loop (see _client).
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api={self.api!r})"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "simulated": False, "base_url": self.base_url, "model": self.model,
                "agents": self.agents, "api": self.api, "timeout": self.timeout, "max_n": self.max_n,
                "extra": self.extra}

    # --- sampling -----------------------------------------------------------------------------
    async def sample(self, request: SampleRequest) -> list[Sample]:
        if request.temperature == 0.0 and request.n > 1:
            # Greedy decoding gives one answer; vLLM refuses n > 1 at temperature 0, so ask once.
            return (await self.sample(request._replace(n=1))) * request.n
        size = request.n if self.max_n is None else self.max_n
        chunks = [min(size, request.n - start) for start in range(0, request.n, size)]
        samples = await self._exchange_all(request, chunks)
        if missing := request.n - len(samples):  # the server ignored n (or capped it): ask for the rest one at a time
            samples += await self._exchange_all(request, [1] * missing, first=len(chunks))
        return samples

    async def _exchange_all(self, request: SampleRequest, sizes: Sequence[int], first: int = 0) -> list[Sample]:
        """``sizes[i]`` choices from the request's HTTP request ``first + i`` (seeded by ``_seed``), all at once;
        their samples in order. The first error cancels the rest and is raised as itself, not as a group."""
        calls = [self._exchange(request, n, _seed(request.seed, first + i)) for i, n in enumerate(sizes)]
        if len(calls) == 1:
            return await calls[0]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(c) for c in calls]
        except BaseExceptionGroup as errors:
            error = errors.exceptions[0]
            raise error from error.__cause__  # keep the chain to the aiohttp error
        return [s for t in tasks for s in t.result()]

    async def _exchange(self, request: SampleRequest, n: int, seed: int | None) -> list[Sample]:
        body = await self._post(self._payload(request, n, seed))
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise BackendResponseError(f"POST {self.url}: the answer has no choices (keys: {sorted(body)[:10]})")
        if len(choices) > n:
            raise BackendResponseError(f"POST {self.url}: asked for {n} choices, got {len(choices)}")
        texts, finishes, counts = zip(*(self._read_choice(choice, i) for i, choice in enumerate(choices)), strict=True)
        usage = body.get("usage")
        total = usage.get("completion_tokens") if isinstance(usage, dict) else None
        tokens = token_counts(texts, finishes, counts, total if isinstance(total, int) else None, request.max_tokens)
        return [Sample(t, k, f) for t, k, f in zip(texts, tokens, finishes, strict=True)]

    def _payload(self, request: SampleRequest, n: int, seed: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.agents.get(request.agent or "", self.model), **self.extra}
        if self.api == "chat":
            payload["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            payload["prompt"] = request.prompt
        payload.update(n=n, temperature=request.temperature, max_tokens=request.max_tokens)
        if request.stop:  # with any the server's extra settings name
            extra = payload.get("stop") or []
            payload["stop"] = [*([extra] if isinstance(extra, str) else extra), *request.stop]
        if seed is not None:
            payload["seed"] = seed
        return payload

    def _read_choice(self, choice: Any, i: int) -> tuple[str, FinishReason, int | None]:
        """One choice's text, finish reason and exact token count (None when not given)."""
        where = f"POST {self.url}: choice {i}"
        if not isinstance(choice, dict):
            raise BackendResponseError(f"{where} is not an object")
        if self.api == "chat":
            message = choice.get("message")
            if not isinstance(message, dict):
                raise BackendResponseError(f"{where} has no message")
            # A null content is an empty reply, for the task's parser to reject.
            text = "" if message.get("content") is None else message["content"]
        else:
            text = choice.get("text")
        if not isinstance(text, str):
            raise BackendResponseError(f"{where} has no text")
        logprobs = choice.get("logprobs")
        listed = logprobs.get("content" if self.api == "chat" else "tokens") if isinstance(logprobs, dict) else None
        return text, finish_reason(choice.get("finish_reason")), len(listed) if isinstance(listed, list) else None

    async def probe(self) -> bool:
        """Whether the server is up (an ``EndpointPool``'s health check): it answers ``GET /models`` with
        anything but 429 or 5xx (a server or proxy without that route still answers 404)."""
        session, _ = await self._client()
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"} if self._api_key else None
        try:
            async with session.get(self._models_url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status != 429 and response.status < 500
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return False

    # --- HTTP ---------------------------------------------------------------------------------
    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        session, slots = await self._client()
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"} if self._api_key else None
        where = f"POST {self.url}"
        # Waiting for a free connection slot does not count against the timeout (the semaphore is
        # taken before aiohttp's clock starts), so a busy run does not time out in its own queue.
        async with slots:
            try:
                async with session.post(self._url, json=payload, headers=headers) as response:
                    status, reason = response.status, response.reason or ""
                    raw = await response.read()
            except TimeoutError as exc:  # also aiohttp's ServerTimeoutError family
                raise BackendTimeout(f"{where}: no complete answer within {self.timeout:g} s") from exc
            except aiohttp.ClientResponseError as exc:
                detail = f"HTTP {exc.status}: {self._scrub(exc.message)}"
                raise BackendHTTPError(f"{where}: {detail}", status=exc.status) from exc
            except (aiohttp.ClientError, OSError) as exc:
                detail = self._scrub(str(exc)) or "connection closed"
                raise BackendConnectionError(f"{where}: {type(exc).__name__}: {detail}") from exc
        if not 200 <= status < 300:
            detail = f"HTTP {status} {reason}: {self._scrub(_snippet(raw))}".rstrip(": ")
            raise BackendHTTPError(f"{where}: {detail}", status=status)
        try:
            body = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            detail = f"the answer is not JSON ({exc}); it begins {self._scrub(_snippet(raw))!r}"
            raise BackendResponseError(f"{where}: {detail}") from exc
        if not isinstance(body, dict):
            raise BackendResponseError(f"{where}: the answer is JSON but not an object: {self._scrub(_snippet(raw))!r}")
        return body

    async def _client(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        """This loop's session and connection slots, made on first use in each event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_connections),
                                            timeout=aiohttp.ClientTimeout(total=self.timeout))
            guard, slots = _close_with_loop(session), asyncio.Semaphore(self.max_connections)
            self._session, self._slots, self._loop, self._guard = session, slots, loop, guard
            # asyncio.run() closes every live async generator before it closes its loop; parking
            # one on the session's close means a run that never calls aclose() leaks nothing.
            await guard.__anext__()
        assert self._slots is not None
        return self._session, self._slots

    async def aclose(self) -> None:
        guard, loop = self._guard, self._loop
        self._session = self._slots = self._loop = self._guard = None
        # A session made in another (finished) loop was closed when that loop shut down.
        if guard is not None and loop is asyncio.get_running_loop():
            await guard.aclose()

    def _scrub(self, text: str) -> str:
        """``text`` without the API key or base_url's password and query (servers may echo them)."""
        key = self._api_key.get_secret_value() if self._api_key else None
        for secret in (key, self._url.password, self._url.raw_query_string, self._url.query_string):
            if secret:
                text = text.replace(secret, "***")
        return text


def finish_reason(reported: Any) -> FinishReason:
    """Map a server's finish reason to "length" (the text was cut off) or "stop" (it ended)."""
    return "length" if reported in _CUT_OFF else "stop"


def token_counts(texts: Sequence[str], finishes: Sequence[FinishReason], exact: Sequence[int | None],
                 total: int | None, max_tokens: int) -> list[int]:
    """Tokens of each choice of one response, from the best source available (module docstring)."""
    if all(c is not None for c in exact):
        return [c for c in exact if c is not None]
    if total is not None and len(texts) == 1:
        return [total]
    counts = [max_tokens if f == "length" else 0 for f in finishes]
    open_ = [i for i, f in enumerate(finishes) if f != "length"]
    if total is not None:
        share = _split(max(0, total - sum(counts)), [len(texts[i]) + 1 for i in open_])
    else:
        share = [-(-len(texts[i]) // _CHARS_PER_TOKEN) for i in open_]
    for i, tokens in zip(open_, share, strict=True):
        counts[i] = min(tokens, max_tokens - 1)
    return counts


def _split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, rounded so that the parts add up to it."""
    if not weights:
        return []
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _seed(seed: int | None, index: int) -> int | None:
    """The seed of a request's ``index``-th HTTP request: its own first, then well-mixed ones.

    Hashed rather than ``seed + index`` because the engine gives a step's requests consecutive
    seeds, and two HTTP requests with the same seed and prompt return the same sample.
    """
    if seed is None or index == 0:
        return seed
    return zlib.crc32(f"{seed}:{index}".encode()) & 0x7FFFFFFF


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


def _shown(url: URL) -> str:
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
