"""The live page in a real browser (headless Chromium from the system's packages): a 20-disk
simulated job and a 14-disk job with our model, submitted over HTTP and watched. The numbers move,
each job is cancelled and resubmitted (it resumes from its journal), and at the end each page shows
its job's final summary. Screenshots are saved in the test's temporary folder."""

import asyncio
import math

import pytest
from aiohttp.test_utils import TestClient, TestServer

from maker.service.http import make_app
from maker.service.jobs import JobService
from maker.verify import verify_journal
from tests.service.browser import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: scripts/setup --browser installs "
                                                          "it from the system's packages (CI always has one)")
SIM20 = {"task": "hanoi", "params": {"disks": 20}, "settings": {"k": 4}, "name": "sim20",
         "backend": {"kind": "sim", "sim": {"error_rate": 0.01}}}
MODEL14 = {"task": "hanoi", "params": {"disks": 14}, "depth": 4, "name": "model14", "backend": {"kind": "hf"}}


async def _eventually(probe, timeout=300.0, every=0.25):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await probe()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(every)
    return value


async def _shows_summary(browser, client, job_id):
    """The page, reloaded after the job ended, shows the job's final numbers."""
    job = await (await client.get(f"/runs/{job_id}")).json()
    assert job["state"] == "solved", (job["state"], job["error"])
    summary = job["summary"]
    await browser.open(str(client.make_url(f"/runs/{job_id}/page")))
    await _eventually(lambda: _text_is(browser, "state", "solved"), timeout=30)
    assert await browser.number("steps") == summary["steps"]
    assert math.isclose(await browser.number("sps"), summary["samples_per_step"], abs_tol=0.0005)
    assert await browser.number("flags") == summary["red_flags"]
    assert await browser.number("errors") == summary["errors"] == 0
    return summary


async def _text_is(browser, element_id, text):
    return await browser.text(element_id) == text


async def test_two_jobs_watched_in_a_real_browser(tmp_path):
    service = JobService(tmp_path / "data", max_jobs=2)
    client = TestClient(TestServer(make_app(service)))
    await client.start_server()
    try:
        for spec in (SIM20, MODEL14):
            assert (await client.post("/runs", json=spec)).status == 201
        async with Browser(CHROMIUM, tmp_path) as browser:
            await browser.open(str(client.make_url("/runs/sim20/page")))
            assert await _eventually(lambda: browser.number("steps")) > 0  # the page starts at 0
            first = await browser.number("steps")
            await asyncio.sleep(1.5)
            second = await browser.number("steps")
            assert second > first, (first, second)
            assert await browser.text("sim") == "SIMULATED" and await browser.number("rate") > 0
            await browser.screenshot(tmp_path / "sim20-running.png")

            assert (await (await client.delete("/runs/sim20")).json())["state"] == "cancelled"
            assert (await client.post("/runs", json=SIM20)).status == 201  # resumes from its journal
            await browser.open(str(client.make_url("/runs/model14/page")))
            await _eventually(lambda: browser.number("steps"))
            await browser.screenshot(tmp_path / "model14-running.png")
            assert (await (await client.delete("/runs/model14")).json())["state"] == "cancelled"
            assert (await client.post("/runs", json=MODEL14)).status == 201

            async def ended():
                jobs = (await (await client.get("/runs")).json())
                return all(job["state"] not in ("queued", "running") for job in jobs)

            await _eventually(ended, timeout=600, every=1.0)
            sim = await _shows_summary(browser, client, "sim20")
            assert sim["resumed_steps"] > 0 and sim["steps"] == 2**20 - 1 and sim["simulated"]
            model = await _shows_summary(browser, client, "model14")
            assert model["steps"] == 2**14 - 1 and not model["simulated"] and model["resumed_steps"] > 0
            await browser.screenshot(tmp_path / "model14-done.png")
        for job_id in ("sim20", "model14"):
            assert verify_journal(tmp_path / f"data/jobs/{job_id}/journal.jsonl.zst")["valid"]
        assert (tmp_path / "sim20-running.png").stat().st_size > 10_000
    finally:
        await client.close()


async def test_a_solve_job_shows_its_trees_growing_and_its_problems_answered(tmp_path):
    from maker_tasks.multiply_problems import MultiplyProblems

    questions = [q.model_dump() for q in MultiplyProblems.paper_set(30, 40, 43)]
    spec = {"solve": {"questions": questions}, "settings": {"k": 3}, "name": "products",
            "backend": {"kind": "sim", "sim": {"error_rate": 0.02}}}
    client = TestClient(TestServer(make_app(JobService(tmp_path / "data"))))
    await client.start_server()
    try:
        assert (await client.post("/runs", json=spec)).status == 201
        async with Browser(CHROMIUM, tmp_path) as browser:
            await browser.open(str(client.make_url("/runs/products/page")))
            tree = await _eventually(lambda: browser.text("trees"), timeout=60)
            assert "problem " in tree and "root: " in tree and await browser.text("sim") == "SIMULATED"
            await browser.screenshot(tmp_path / "products.png")
            await _eventually(lambda: _text_is(browser, "state", "solved"), timeout=300)
            counted = await browser.text("problem-count")
            assert counted == "(40 of 40 answered: 40 right, 0 wrong, 0 failed)", counted
            await browser.screenshot(tmp_path / "products-done.png")
        assert (tmp_path / "products.png").stat().st_size > 10_000
    finally:
        await client.close()
