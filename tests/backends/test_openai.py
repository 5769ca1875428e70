"""OpenAIBackend against a real loopback server: request bodies, keys, errors, choices, tokens."""

from __future__ import annotations

import asyncio
import gc
import itertools
import socket

import pytest

from maker.backends.base import SampleRequest
from maker.backends.openai import Api, OpenAIBackend, finish_reason, token_counts
from maker.errors import (
    BackendConnectionError,
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    BackendTimeout,
    ConfigError,
)
from tests.backends.fault_server import FaultKind, fault_server, threaded_fault_server

KEY = "sk-test-7f3a9c1e5b2d4680"


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text) and KEY not in repr(text)


async def test_completions_request_body_and_key_header() -> None:
    async with (
        fault_server(reply=lambda seen: "move = [1, 0, 2]") as server,
        OpenAIBackend(server.base_url, "my-model", api_key=KEY) as backend,
    ):
        samples = await backend.sample(SampleRequest("the prompt", n=3, temperature=0.7, max_tokens=50, seed=11))
    [seen] = server.requests_seen
    assert seen.path == "/v1/completions"
    assert seen.body == {
        "model": "my-model",
        "prompt": "the prompt",
        "n": 3,
        "temperature": 0.7,
        "max_tokens": 50,
        "seed": 11,
    }
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert [s.text for s in samples] == ["move = [1, 0, 2]"] * 3
    assert {s.finish_reason for s in samples} == {"stop"}


async def test_chat_request_body_extra_fields_and_no_seed() -> None:
    async with (
        fault_server(reply=lambda seen: "hi there") as server,
        OpenAIBackend(
            server.base_url, "chat-model", api="chat", api_key=KEY, extra={"top_p": 0.9, "stop": ["\n\n"]}
        ) as backend,
    ):
        [sample] = await backend.sample(SampleRequest("hello?", n=1, temperature=0.0, max_tokens=20))
    [seen] = server.requests_seen
    assert seen.path == "/v1/chat/completions"
    assert seen.body == {
        "model": "chat-model",
        "messages": [{"role": "user", "content": "hello?"}],
        "n": 1,
        "temperature": 0.0,
        "max_tokens": 20,
        "top_p": 0.9,
        "stop": ["\n\n"],
    }  # no "seed": the request had none
    assert (sample.text, sample.tokens, sample.finish_reason) == ("hi there", 2, "stop")


async def test_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("MY_SERVER_KEY", "sk-other")
    async with fault_server() as server:
        for backend in (
            OpenAIBackend(server.base_url, "m"),
            OpenAIBackend(server.base_url, "m", api_key_env="MY_SERVER_KEY"),
            OpenAIBackend(server.base_url, "m", api_key_env="UNSET_VARIABLE_FOR_TEST"),
        ):
            async with backend:
                await backend.sample(SampleRequest("p"))
    headers = [seen.headers.get("Authorization") for seen in server.requests_seen]
    assert headers == [f"Bearer {KEY}", "Bearer sk-other", None]


def test_credentials_in_the_url_beside_a_key_are_a_clear_config_error_that_shows_neither(capsys, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="holds credentials") as caught:
        OpenAIBackend("http://user:s3cret-pw@127.0.0.1:9/v1", "m", api_key=KEY)
    assert "s3cret-pw" not in str(caught.value) and "user" not in str(caught.value).split("got")[1]
    from maker.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    code = main(["run", "hanoi", "--disks", "3", "--backend", "openai", "--base-url", "http://user:s3cret-pw@127.0.0.1:9/v1",
                 "--model", "m", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "holds credentials" in err and "s3cret-pw" not in err and KEY not in err


async def test_key_is_not_in_describe_or_repr() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", api="chat", api_key=KEY)
    assert backend.describe() == {
        "name": "openai",
        "simulated": False,
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
        "agents": {},
        "api": "chat",
        "timeout": 120.0,
        "max_n": None,
        "extra": {},
    }
    assert_no_key(backend.describe(), backend, vars(backend))


FAULT_ERRORS: list[tuple[FaultKind, type[BackendError], int | None]] = [
    ("delay", BackendTimeout, None),
    ("reset", BackendConnectionError, None),
    ("restart", BackendConnectionError, None),
    ("http429", BackendHTTPError, 429),
    ("http500", BackendHTTPError, 500),
    ("http503", BackendHTTPError, 503),
    ("malformed", BackendResponseError, None),
    ("no_choices", BackendResponseError, None),
    ("too_many_choices", BackendResponseError, None),
]


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize(("fault", "error", "status"), FAULT_ERRORS)
async def test_each_fault_becomes_its_backend_error(
    api: Api, fault: FaultKind, error: type[BackendError], status: int | None
) -> None:
    async with (
        fault_server(delay_s=0.5) as server,
        # a short timeout only where the fault needs one: a slow machine must not fail the others
        OpenAIBackend(server.base_url, "m", api=api, api_key=KEY, timeout=0.1 if fault == "delay" else 10) as backend,
    ):
        server.set_faults([fault])
        with pytest.raises(error) as caught:
            await backend.sample(SampleRequest("p", temperature=0.7, n=2))
        assert type(caught.value) is error
        assert getattr(caught.value, "status", None) == status
        assert f"POST {server.base_url}/{'chat/' if api == 'chat' else ''}completions" in str(caught.value)
        assert_no_key(caught.value, caught.value.__cause__)
        await server.settle()
        await backend.sample(SampleRequest("p", temperature=0.7, n=2))  # the next request is served


async def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", api_key=KEY) as backend:
        with pytest.raises(BackendConnectionError, match=f"POST http://127.0.0.1:{port}/v1/completions") as caught:
            await backend.sample(SampleRequest("p"))
    assert_no_key(caught.value, caught.value.__cause__)


async def test_client_errors_keep_status_and_hide_key() -> None:
    async with fault_server(api_key="sk-right") as server:
        async with OpenAIBackend(server.base_url, "m", api_key=KEY) as backend:
            with pytest.raises(BackendHTTPError, match="HTTP 401") as unauthorized:
                await backend.sample(SampleRequest("p"))
        root = server.base_url.removesuffix("/v1")
        async with OpenAIBackend(root, "m", api_key=KEY) as backend:  # forgot /v1
            with pytest.raises(BackendHTTPError, match=f"POST {root}/completions: HTTP 404") as not_found:
                await backend.sample(SampleRequest("p"))
    assert (unauthorized.value.status, not_found.value.status) == (401, 404)
    assert_no_key(unauthorized.value, not_found.value)


async def test_credentials_in_base_url_are_not_shown() -> None:
    async with fault_server() as server:
        url = server.base_url.replace("http://", "http://alice:hunter2@")
        async with OpenAIBackend(url + "?token=hunter2", "m") as backend:
            server.set_faults(["http500"])
            with pytest.raises(BackendHTTPError) as caught:
                await backend.sample(SampleRequest("p"))
            assert backend.describe()["base_url"] == server.base_url
            for shown in (caught.value, backend, backend.describe()):
                assert "hunter2" not in str(shown) and "alice" not in str(shown)


async def test_fewer_choices_than_asked_are_requested_again() -> None:
    count = itertools.count()
    async with (
        fault_server(reply=lambda seen: f"reply {next(count)}", max_n=1) as server,
        OpenAIBackend(server.base_url, "m") as backend,
    ):
        samples = await backend.sample(SampleRequest("p", n=3, temperature=0.5, seed=5))
    assert sorted(s.text for s in samples) == ["reply 0", "reply 1", "reply 2"]
    bodies = [seen.body for seen in server.requests_seen]
    assert [b["n"] for b in bodies] == [3, 1, 1]
    seeds = [b["seed"] for b in bodies]
    assert seeds[0] == 5 and len(set(seeds)) == 3  # refills must not repeat the first sample


async def test_stop_strings_go_to_the_server_with_its_own() -> None:
    async with fault_server() as server, OpenAIBackend(server.base_url, "m", extra={"stop": "END"}) as backend:
        await backend.sample(SampleRequest("p", stop=("\n",)))
        await backend.sample(SampleRequest("p"))
    bodies = [seen.body for seen in server.requests_seen]
    assert bodies[0]["stop"] == ["END", "\n"] and bodies[1]["stop"] == "END"


async def test_max_n_splits_a_request_up_front() -> None:
    async with fault_server() as server, OpenAIBackend(server.base_url, "m", max_n=2) as backend:
        samples = await backend.sample(SampleRequest("p", temperature=0.7, n=5, seed=1))
    assert len(samples) == 5
    assert sorted(seen.body["n"] for seen in server.requests_seen) == [1, 2, 2]
    assert len({seen.body["seed"] for seen in server.requests_seen}) == 3


async def test_token_counts_and_finish_reasons_from_the_server() -> None:
    lengths = itertools.cycle([3, 5, 12])  # words; the server counts a word as a token
    reply = lambda seen: " ".join(["w"] * next(lengths))  # noqa: E731
    async with fault_server(reply=reply) as server, OpenAIBackend(server.base_url, "m") as backend:
        [one] = await backend.sample(SampleRequest("p", max_tokens=10))
        exact = await backend.sample(SampleRequest("p", temperature=0.7, n=3, max_tokens=10))
    async with (
        fault_server(reply=reply) as server,
        OpenAIBackend(server.base_url, "m", extra={"logprobs": 0}) as backend,
    ):
        listed = await backend.sample(SampleRequest("p", temperature=0.7, n=3, max_tokens=10))
    assert (one.tokens, one.finish_reason) == (3, "stop")  # one choice: usage is exact
    # several choices, usage only: the truncated one took max_tokens, the others share the rest
    assert [(s.tokens, s.finish_reason) for s in exact] == [(5, "stop"), (10, "length"), (3, "stop")]
    assert [(s.tokens, s.finish_reason) for s in listed] == [(5, "stop"), (10, "length"), (3, "stop")]


@pytest.mark.parametrize(
    ("texts", "finishes", "exact", "total", "expected"),
    [
        (["a", "bb"], ["stop", "stop"], [4, 7], 99, [4, 7]),  # per-choice counts win
        (["abc"], ["stop"], [None], 9, [9]),  # one choice: usage is its count
        (["x" * 30, "x" * 10], ["stop", "stop"], [None, None], 12, [9, 3]),  # split by length, sum kept
        (["x" * 9, "y" * 99], ["stop", "length"], [None, None], 26, [6, 20]),  # cut off: max_tokens
        (["x" * 8, ""], ["stop", "stop"], [None, None], None, [2, 0]),  # no usage: ~4 chars a token
        (["x" * 400], ["stop"], [None], None, [19]),  # an estimate for a reply that stopped stays under the cap
        ([], [], [], 0, []),
    ],
)
def test_token_counts_table(
    texts: list[str], finishes: list, exact: list, total: int | None, expected: list[int]
) -> None:
    result = token_counts(texts, finishes, exact, total, 20)
    assert result == expected


@pytest.mark.parametrize(
    ("reported", "mapped"),
    [
        ("stop", "stop"),
        ("eos", "stop"),
        (None, "stop"),
        ("tool_calls", "stop"),
        ("length", "length"),
        ("max_tokens", "length"),
        ("content_filter", "length"),
        ("abort", "length"),
    ],
)
def test_finish_reason_mapping(reported: str | None, mapped: str) -> None:
    assert finish_reason(reported) == mapped


@pytest.mark.parametrize(
    "settings",
    [
        {"base_url": "127.0.0.1:8000/v1"},
        {"base_url": "ftp://host/v1"},
        {"api": "responses"},
        {"timeout": 0},
        {"max_connections": 0},
        {"max_n": 0},
        {"extra": {"n": 4}},
        {"extra": {"stream": True}},
    ],
)
def test_invalid_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ConfigError):
        OpenAIBackend(**{"base_url": "http://127.0.0.1:8000/v1", "model": "m", **settings})


async def test_session_is_reopened_after_aclose() -> None:
    async with fault_server() as server:
        backend = OpenAIBackend(server.base_url, "m")
        await backend.sample(SampleRequest("p"))
        await backend.aclose()
        await backend.aclose()  # twice is fine
        await backend.sample(SampleRequest("p"))  # and it can be used again
        await backend.aclose()
    assert len(server.requests_seen) == 2


def test_one_backend_serves_several_event_loops_without_leaking() -> None:
    # maker.run() calls asyncio.run() once per run and never calls aclose(); each loop's session
    # must be closed when that loop ends (filterwarnings=error turns a leak into a failure).
    with threaded_fault_server() as server:
        backend = OpenAIBackend(server.base_url, "m")
        for _ in range(2):
            [sample] = asyncio.run(backend.sample(SampleRequest("p")))
            assert sample.text == "ok"
        del backend
        gc.collect()
    assert len(server.requests_seen) == 2


async def test_greedy_with_several_samples_asks_the_server_once() -> None:
    # vLLM refuses n > 1 at temperature 0; greedy decoding has one answer anyway.
    async with fault_server() as server, OpenAIBackend(server.base_url, "m") as backend:
        samples = await backend.sample(SampleRequest("p", n=3, temperature=0.0, seed=1))
    assert len(samples) == 3 and len({s.text for s in samples}) == 1
    assert [seen.body["n"] for seen in server.requests_seen] == [1]
