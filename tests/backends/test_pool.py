"""EndpointPool: least-outstanding routing with a step's requests kept together, ejection of failed
endpoints and their calls moved, re-admission after a health check, and whole runs that lose nothing."""

import asyncio
import contextlib
from collections import Counter

import pytest

import maker
from maker import EndpointPool, OpenAIBackend, RetryingBackend, SampleRequest, load_task
from maker.verify import verify_journal
from tests.backends.fault_server import fault_server, oracle_replies, threaded_fault_server


def hanoi_replies(disks):
    return oracle_replies(load_task("hanoi", disks=disks))


def _requests(prompt="p"):
    return [SampleRequest(prompt, 1, 0.0, 16, 1), SampleRequest(prompt, 2, 1.0, 16, 2)]


async def test_calls_go_to_the_least_busy_endpoint_and_a_steps_requests_stay_together():
    async with fault_server(latency_s=0.05) as a, fault_server(latency_s=0.05) as b:
        pool = EndpointPool([OpenAIBackend(a.base_url, "m"), OpenAIBackend(b.base_url, "m")])
        async with pool:
            await asyncio.gather(*(pool.sample_many(_requests(f"step {i}")) for i in range(8)))
        assert len(a.requests_seen) == len(b.requests_seen) == 8  # 4 calls of 2 requests each
        for server in (a, b):
            prompts = Counter(seen.prompt for seen in server.requests_seen)
            assert set(prompts.values()) == {2}  # both requests of a step on the same server
        assert pool.statistics()["endpoint0.calls"] == pool.statistics()["endpoint1.calls"] == 4


async def test_a_failed_endpoint_is_ejected_and_its_call_moves_whole():
    async with fault_server(reply=lambda seen: "good") as a, fault_server(reply=lambda seen: "good") as b:
        a.set_faults(["http503"])
        pool = EndpointPool([OpenAIBackend(a.base_url, "m"), OpenAIBackend(b.base_url, "m")], cooldown=60, max_cooldown=60)
        async with pool:
            batches = await pool.sample_many(_requests())
            again = await pool.sample_many(_requests())
        assert [[s.text for s in batch] for batch in batches + again] == [["good"], ["good", "good"]] * 2
        stats = pool.statistics()
        assert stats["endpoint0.failures"] == stats["endpoint0.ejections"] == 1 and stats["endpoint0.samples"] == 0
        assert stats["endpoint1.calls"] == 2 and stats["endpoint1.samples"] == 6  # a stays out for its cooldown


async def test_an_ejected_endpoint_comes_back_after_its_health_check():
    clock = [0.0]
    async with fault_server(reply=lambda seen: "a") as a, fault_server(reply=lambda seen: "b") as b:
        a.set_faults(["reset"])
        pool = EndpointPool([OpenAIBackend(a.base_url, "m"), OpenAIBackend(b.base_url, "m")], cooldown=1.0,
                            clock=lambda: clock[0])
        async with pool:
            await pool.sample_many(_requests())  # a resets: ejected, b answers
            clock[0] = 2.0  # past the cooldown: the next call starts a's health check in the background
            assert (await pool.sample_many(_requests("other")))[0][0].text == "b"  # and does not wait for it
            await asyncio.sleep(0.2)
            again = await pool.sample_many(_requests("third"))
        assert again[0][0].text == "a" and pool.statistics()["endpoint0.readmissions"] == 1


async def test_a_call_against_an_endpoint_that_always_fails_ends_with_its_error():
    async with fault_server() as a:
        a.set_faults(rate=1.0, kinds=["http503"])  # up (GET /models answers) but every completion fails
        pool = EndpointPool([OpenAIBackend(a.base_url, "m")], cooldown=0.01, wait_s=5)
        async with pool:
            with pytest.raises(maker.BackendHTTPError, match="HTTP 503"):
                await pool.sample_many(_requests())
        assert len(a.requests_seen) == 2 * 2  # moved at most twice per endpoint, two requests a call


async def test_with_every_endpoint_down_a_call_waits_then_fails_clearly():
    async with fault_server() as a:
        url = a.base_url
    pool = EndpointPool([OpenAIBackend(url, "m")], cooldown=0.01, wait_s=0.1)  # nothing listens there now
    async with pool:
        with pytest.raises(maker.BackendConnectionError, match="all 1 endpoints of the pool are down after waiting 0.1 s"):
            await pool.sample_many(_requests())


async def test_a_server_without_a_models_route_is_still_taken_back():
    from aiohttp import web

    async def completion(request):
        return web.json_response({"choices": [{"text": "up", "finish_reason": "stop"}], "usage": {"completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/v1/completions", completion)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", "m")
        async with backend:
            assert await backend.probe()  # 404 on GET /models: the server is up
    finally:
        await runner.cleanup()


async def test_a_steps_later_rounds_go_back_to_its_endpoint():
    async with fault_server() as a, fault_server() as b:
        pool = EndpointPool([OpenAIBackend(a.base_url, "m"), OpenAIBackend(b.base_url, "m")])
        async with pool:
            for _ in range(3):  # three rounds of one step, one after another
                await pool.sample_many([SampleRequest("step 7", 1, 1.0, 16, 1)])
        assert sorted([len(a.requests_seen), len(b.requests_seen)]) == [0, 3]


async def test_a_request_the_server_refuses_is_not_retried_elsewhere():
    async with fault_server(api_key="right") as a, fault_server(api_key="right") as b:
        pool = EndpointPool([OpenAIBackend(a.base_url, "m", api_key="wrong"), OpenAIBackend(b.base_url, "m", api_key="wrong")])
        async with pool:
            with pytest.raises(maker.BackendHTTPError, match="401"):
                await pool.sample_many(_requests())
        assert len(a.requests_seen) == 2 and not b.requests_seen  # the step's two requests, once


def test_a_run_over_a_pool_survives_an_endpoint_restart_and_loses_nothing(tmp_path):
    reply = hanoi_replies(10)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(threaded_fault_server(reply=reply, latency_s=0.002, down_s=0.1)) for _ in range(3)]
        servers[1].set_faults([None] * 20 + ["restart"])  # endpoint 1 goes away for 0.1 s mid-run
        pool = EndpointPool([OpenAIBackend(s.base_url, "m") for s in servers], cooldown=0.02, max_cooldown=0.05)
        task = load_task("hanoi", disks=10)
        journal = tmp_path / "run.jsonl"
        result = maker.run(task, RetryingBackend(pool), k=2, depth=3, journal=journal)
    stats = pool.statistics()
    assert result.solved and result.errors == 0 and result.steps == 1023
    assert stats["endpoint1.ejections"] >= 1 and stats["endpoint1.readmissions"] >= 1
    assert sum(stats[f"endpoint{i}.calls"] for i in range(3)) - sum(stats[f"endpoint{i}.failures"] for i in range(3)) \
        == sum(result.statistics.rounds_per_step[r] * r for r in result.statistics.rounds_per_step)
    report = verify_journal(journal)
    assert report["valid"] and report["steps"] == 1023  # nothing lost, nothing twice


def test_a_pool_refuses_simulated_or_no_endpoints():
    task = load_task("hanoi", disks=3)
    with pytest.raises(maker.ConfigError, match="at least one endpoint"):
        EndpointPool([])
    with pytest.raises(maker.ConfigError, match="must be real backends"):
        EndpointPool([maker.SimulatedBackend(task)])


def test_the_command_line_takes_several_base_urls_or_a_pool_file(tmp_path, capsys):
    import json

    from maker.cli import main

    reply = hanoi_replies(6)
    with threaded_fault_server(reply=reply) as a, threaded_fault_server(reply=reply) as b:
        pool_file = tmp_path / "pool.txt"
        pool_file.write_text(f"# two local servers\n{b.base_url}\n\n")
        code = main(["run", "hanoi", "--disks", "6", "--backend", "openai", "--base-url", a.base_url, "--pool",
                     str(pool_file), "--model", "m", "--k", "2", "--depth", "2", "--json", "--no-progress"])
        summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["solved"] and summary["backend"] == "pool" and summary["errors"] == 0
    served = summary["backend_statistics"]
    assert served["endpoint0.calls"] > 0 and served["endpoint1.calls"] > 0
    assert len(a.requests_seen) + len(b.requests_seen) == summary["samples"]  # k = 2: a greedy and a sampled request of n = 1


def test_a_pool_serves_one_event_loop_after_another():
    """maker.run twice with one pool: each asyncio.run has its own loop, and waiting still works in the second."""
    with threaded_fault_server(reply=lambda seen: "x") as a:
        url = a.base_url
    dead = EndpointPool([OpenAIBackend(url, "m")], cooldown=0.01, wait_s=0.05)  # nothing listens: calls wait, then fail
    for _ in range(2):
        with pytest.raises(maker.BackendConnectionError, match="all 1 endpoints of the pool are down"):
            asyncio.run(dead.sample_many(_requests()))
