"""``maker serve``'s HTTP API on a real aiohttp server: submit, watch, stream, cancel and resume,
restart with resume, download and verify the journal, hostile bodies, and the token."""

import asyncio
import json
from collections import Counter

from aiohttp.test_utils import TestClient, TestServer

from maker.journal import JournalReader
from maker.service.http import make_app
from maker.service.jobs import JobService
from maker.verify import verify_journal

SIM = {"kind": "sim", "sim": {"error_rate": 0.02, "seed": 1}}


def _job(disks, **extra):
    # k = 4: a resumed job draws from a fresh generator, so its outcome is a new random draw. At k = 3 a
    # wrong legal move wins some step of 65,535 in about 2 runs in 100 by estimate (one CI failure); at k = 4 the
    # chance is about 1e-4 a run.
    return {"task": "hanoi", "params": {"disks": disks}, "settings": {"k": 4}, "backend": SIM, **extra}


async def _client(data, **options):
    client = TestClient(TestServer(make_app(JobService(data, max_job_steps=1 << 20), **options)))
    await client.start_server()
    return client


async def _until(client, job_id, states, timeout=60.0):
    """Poll the job until its state is one of ``states``; return its view."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await (await client.get(f"/runs/{job_id}")).json()
        if view["state"] in states:
            return view
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.05)


async def test_a_job_runs_to_its_end_and_its_journal_downloads_and_verifies(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        answer = await client.post("/runs", json=_job(9))
        assert answer.status == 201
        job = await answer.json()
        assert job["state"] in ("queued", "running") and answer.headers["Location"] == f"/runs/{job['id']}"
        view = await _until(client, job["id"], {"solved", "unsolved", "failed"})
        assert view["state"] == "solved" and view["summary"]["steps"] == 511 and view["summary"]["errors"] == 0
        assert view["summary"]["simulated"] is True
        listed = await (await client.get("/runs")).json()
        assert [j["id"] for j in listed] == [job["id"]]
        journal = await client.get(f"/runs/{job['id']}/journal")
        assert journal.status == 200
        path = tmp_path / "downloaded.jsonl.zst"
        path.write_bytes(await journal.read())
        report = verify_journal(path)
        assert report["valid"] and report["steps"] == 511 and report["compressed"]
    finally:
        await client.close()


async def test_the_event_stream_follows_the_job_to_its_final_numbers(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        job = await (await client.post("/runs", json=_job(17, depth=2))).json()
        stream = await client.get(f"/runs/{job['id']}/events")
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        views, event, kinds = [], None, Counter()
        async for raw in stream.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
                kinds[event] += 1
            elif line.startswith("data: ") and event == "job":
                views.append(json.loads(line[6:]))
            elif line.startswith("data: ") and event == "end":
                break
        # a watcher gets the newest EVENTS_KEPT discrete events that came before it connected, then each as it comes
        assert kinds["chain_finished"] == 4 and kinds["contested_step"] > 0, kinds
        steps = [v["live"]["statistics"].get("steps", 0) for v in views]
        assert len(views) >= 3 and steps == sorted(steps) and 0 < steps[-2]
        final = views[-1]
        assert final["state"] == "solved" and final["summary"]["steps"] == 2**17 - 1 == steps[-1]
        assert len(final["live"]["chains"]) == 4 and all(c["done"] for c in final["live"]["chains"].values())
        assert final["live"]["hardest_steps"][0]["samples"] >= 3
    finally:
        await client.close()


async def test_cancel_then_submit_again_resumes_from_the_journal(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        spec = _job(16, name="big-one")
        job = await (await client.post("/runs", json=spec)).json()
        assert job["id"] == "big-one"
        await _until(client, "big-one", {"running"})
        await asyncio.sleep(1.0)
        cancelled = await client.delete("/runs/big-one")
        assert cancelled.status == 200 and (await cancelled.json())["state"] == "cancelled"
        kept = len(list(JournalReader(tmp_path / "data/jobs/big-one/journal.jsonl.zst").records()))
        assert 0 < kept < 2**16 - 1
        again = await client.post("/runs", json=spec)
        assert again.status == 201
        view = await _until(client, "big-one", {"solved", "unsolved", "failed"}, timeout=120)
        assert view["state"] == "solved" and view["summary"]["resumed_steps"] == kept
        assert verify_journal(tmp_path / "data/jobs/big-one/journal.jsonl.zst")["valid"]
        other = await client.post("/runs", json={**spec, "settings": {"k": 5}})
        assert other.status == 409 and "another spec" in (await other.json())["error"]
    finally:
        await client.close()


async def test_a_restarted_service_resumes_its_unfinished_job(tmp_path):
    data = tmp_path / "data"
    client = await _client(data)
    try:
        await client.post("/runs", json=_job(16, name="restart-me"))
        await _until(client, "restart-me", {"running"})
        await asyncio.sleep(1.0)
    finally:
        await client.close()  # the service stops: the job stays "running" on disk
    saved = json.loads((data / "jobs/restart-me/job.json").read_text())
    assert saved["state"] == "running"
    kept = len(list(JournalReader(data / "jobs/restart-me/journal.jsonl.zst").records()))
    assert kept > 0
    client = await _client(data)
    try:
        view = await _until(client, "restart-me", {"solved", "unsolved", "failed"}, timeout=120)
        assert view["state"] == "solved" and view["summary"]["resumed_steps"] == kept, view
        records = list(JournalReader(data / "jobs/restart-me/journal.jsonl.zst").records())
        assert [r["step"] for r in records] == list(range(2**16 - 1))  # nothing lost, nothing twice
    finally:
        await client.close()


HOSTILE = [
    (b"{", 400, "not JSON"),
    (b"[]", 400, "invalid job"),
    (b"{}", 400, "task"),
    (json.dumps({"task": 5}).encode(), 400, "task"),
    (json.dumps({"task": "nope"}).encode(), 400, "unknown task 'nope'"),
    (json.dumps({"task": "hanoi", "colour": 1}).encode(), 400, "colour"),
    (json.dumps({"task": "hanoi", "params": {"disks": "many"}}).encode(), 400, "disks"),
    (json.dumps({"task": "hanoi", "params": {"disks": 10**30}}).encode(), 400, "disks"),
    (json.dumps({"task": "hanoi", "params": {"disks": 40}}).encode(), 400, "at most"),
    (json.dumps({"task": "hanoi", "params": {"disk": 3}}).encode(), 400, "disk"),
    (json.dumps({"task": "hanoi", "settings": {"k": 0}}).encode(), 400, "k"),
    (json.dumps({"task": "hanoi", "settings": {"kk": 3}}).encode(), 400, "kk"),
    (json.dumps({"task": "hanoi", "settings": {"k": 10**40}}).encode(), 400, "k"),
    (json.dumps({"task": "hanoi", "depth": 10**9}).encode(), 400, "depth"),
    (json.dumps({"task": "hanoi", "backend": {"kind": "openai"}}).encode(), 400, "backend.kind"),
    (json.dumps({"task": "hanoi", "backend": {"sim": {"error_rate": 5}}}).encode(), 400, "error_rate"),
    (json.dumps({"task": "hanoi", "backend": {"kind": "hf", "model": "../../.."}}).encode(), 400, "outside the data folder"),
    (json.dumps({"task": "../../evil.py:Evil"}).encode(), 400, "outside the data folder"),
    (json.dumps({"task": "hanoi", "name": "../escape"}).encode(), 400, "name"),
    (b'{"task": "' + b"x" * 100_000 + b'"}', 413, "64 KiB"),
]


async def test_hostile_bodies_get_clear_4xx_and_the_other_jobs_go_on(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        running = await (await client.post("/runs", json=_job(14, name="bystander"))).json()
        for body, status, words in HOSTILE:
            answer = await client.post("/runs", data=body, headers={"Content-Type": "application/json"})
            message = (await answer.json())["error"]
            assert (answer.status, words in message) == (status, True), (body[:60], answer.status, message)
            assert "Traceback" not in message
        assert (await client.get("/runs/nobody")).status == 404
        assert (await client.delete("/runs/nobody")).status == 404
        view = await _until(client, running["id"], {"solved", "unsolved", "failed"}, timeout=120)
        assert view["state"] == "solved" and view["summary"]["errors"] == 0
        assert [j["id"] for j in await (await client.get("/runs")).json()] == ["bystander"]
    finally:
        await client.close()


async def test_with_a_token_every_request_needs_it_and_no_answer_shows_it(tmp_path):
    client = await _client(tmp_path / "data", token="s3cret-token")
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = await client.get("/runs", headers=headers)
            body = await answer.text()
            assert answer.status == 401 and "token" in body and "s3cret" not in body
        assert (await client.get("/runs", headers={"Authorization": "Bearer s3cret-token"})).status == 200
        assert (await client.get("/runs?token=s3cret-token")).status == 200
        denied = await client.post("/runs", json=_job(5))
        assert denied.status == 401
    finally:
        await client.close()


async def test_the_live_page_is_served_beside_its_event_stream(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        job = await (await client.post("/runs", json=_job(8))).json()
        page = await client.get(f"/runs/{job['id']}/page")
        text = await page.text()
        assert page.status == 200 and page.content_type == "text/html"
        assert 'new EventSource("events"' in text and "SIMULATED" in text and "http" not in text.split("<script>")[1]
        assert (await client.get("/runs/nobody/page")).status == 404
        await _until(client, job["id"], {"solved"})
    finally:
        await client.close()


def _problems(count, digits=6, seed=42):
    from maker_tasks.multiply_problems import MultiplyProblems

    return [q.model_dump() for q in MultiplyProblems.paper_set(digits, count, seed)]


async def test_a_solve_job_grows_its_trees_resumes_after_a_cancel_and_its_journal_verifies(tmp_path):
    from maker.solving import verify_solve

    client = await _client(tmp_path / "data")
    spec = {"solve": {"questions": _problems(100, digits=30)}, "settings": {"k": 3}, "backend": SIM, "name": "products"}
    try:
        answer = await client.post("/runs", json=spec)
        assert answer.status == 201, await answer.text()
        view = await _until(client, "products", {"running"})
        deadline = asyncio.get_running_loop().time() + 60
        while (view["live"].get("statistics") or {}).get("steps", 0) < 2000:  # the trees have grown some way
            assert asyncio.get_running_loop().time() < deadline, view["live"]
            await asyncio.sleep(0.05)
            view = await (await client.get("/runs/products")).json()
        tree = view["live"]["trees"][0]
        assert " × " in tree["label"] and tree["tree"][0]["path"] == "root"
        assert view["live"]["statistics"]["steps"] > 0 and view["live"]["chains"] == {}  # the trees stand in for chains
        cancelled = await client.delete("/runs/products")
        assert (await cancelled.json())["state"] == "cancelled"
        again = await client.post("/runs", json=spec)
        assert again.status == 201
        view = await _until(client, "products", {"solved", "unsolved", "failed"}, timeout=120)
        summary = view["summary"]
        assert view["state"] == "solved" and summary["correct"] == 100 and summary["simulated"] is True
        assert summary["replayed_nodes"] > 0  # the resumed job took what its journal held
        report = verify_solve(tmp_path / "data/jobs/products/journal.jsonl.zst")
        assert report["valid"] and report["right"] == 100
        assert view["live"]["problems"] == {"total": 100, "answered": 100, "right": 100, "wrong": 0, "failed": 0}
    finally:
        await client.close()


SOLVE_HOSTILE = [
    ({"task": "hanoi", "solve": {"questions": [{"id": "1", "question": "Multiply the following numbers:\n2 × 3"}]}},
     "either task"),
    ({"solve": {"questions": []}}, "questions"),
    ({"solve": {"questions": [{"id": "1", "question": "What is love?"}]}}, "no registered problem family"),
    ({"solve": {"family": "nope", "questions": [{"id": "1", "question": "2 x 3"}]}}, "unknown family 'nope'"),
    ({"solve": {"family": "sort", "questions": [{"id": "1", "question": "2 x 3"}]}}, "problem '1'"),
    ({"solve": {"questions": [{"id": "1", "question": "2 x 3"}, {"id": "1", "question": "4 x 5"}]}}, "appears twice"),
    ({"solve": {"questions": [{"id": "1", "question": "2 x 3"}], "k_by_role": {"planner": 2}}}, "planner"),
    ({"solve": {"questions": [{"id": "1", "question": "2 x 3"}], "max_depth": 10**6}}, "max_depth"),
    ({"solve": {"family": "../../x.py:Evil", "questions": [{"id": "1", "question": "2 x 3"}]}}, "outside the data folder"),
]


async def test_bad_solve_jobs_get_clear_400s(tmp_path):
    client = await _client(tmp_path / "data")
    try:
        for body, words in SOLVE_HOSTILE:
            answer = await client.post("/runs", json=body)
            message = (await answer.json())["error"]
            assert (answer.status, words in message) == (400, True), (body, answer.status, message)
        assert await (await client.get("/runs")).json() == []
    finally:
        await client.close()
