"""``maker serve`` as a process: SIGKILL mid-job, then a restart that finishes the job with every step
journalled once; and no binding beyond loopback without a token. ``maker run --watch`` and ``maker solve
--watch``: the live page and its events, served by the running command."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from maker.journal import JournalReader
from maker.verify import verify_journal

ROOT = Path(__file__).resolve().parent.parent.parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(data, port, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "maker", "serve", "--data", str(data), "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _stop(service, sig):
    service.send_signal(sig)
    return service.communicate(timeout=30)[1]  # its stderr, and the pipe closed


def _call(port, method, path, body=None, timeout=30.0):
    """The service's JSON answer, retrying while it starts up."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionError) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_kill_9_mid_job_then_a_restart_finishes_it_with_each_step_once(tmp_path):
    data, port = tmp_path / "data", _free_port()
    journal = data / "jobs/killed/journal.jsonl.zst"
    service = _serve(data, port)
    try:
        # k = 4: the resumed half draws new random samples, and at k = 3 a wrong move wins somewhere in a few
        # runs in a hundred by estimate (see test_http._job)
        job = {"task": "hanoi", "params": {"disks": 16}, "settings": {"k": 4}, "name": "killed",
               "backend": {"kind": "sim", "sim": {"error_rate": 0.02}}}
        assert _call(port, "POST", "/runs", job)["id"] == "killed"
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.stat().st_size > 20_000) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _stop(service, signal.SIGKILL)
    kept = len(list(JournalReader(journal).records()))
    assert 0 < kept < 2**16 - 1
    service = _serve(data, port)
    try:
        deadline = time.monotonic() + 120
        while (view := _call(port, "GET", "/runs/killed"))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, view
            time.sleep(0.2)
    finally:
        log = _stop(service, signal.SIGINT)
    assert "resuming job killed" in log
    assert view["state"] == "solved" and view["summary"]["resumed_steps"] >= kept, view
    assert [r["step"] for r in JournalReader(journal).records()] == list(range(2**16 - 1))
    assert verify_journal(journal)["valid"]


def test_binding_beyond_loopback_needs_a_token(tmp_path):
    env = {"MAKER_TOKEN": ""}
    service = _serve(tmp_path / "data", _free_port(), "--host", "0.0.0.0", env=env)
    _, err = service.communicate(timeout=30)
    assert service.returncode == 2 and "set a token in $MAKER_TOKEN" in err


def _watched(command, port):
    """Run ``maker COMMAND --watch PORT``; read its page, then its event stream to the end: (views, summary, stderr)."""
    run = subprocess.Popen([sys.executable, "-m", "maker", *command, "--no-progress", "--json", "--watch", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert "EventSource" in page.read().decode()
                break
            except (ConnectionError, urllib.error.URLError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        views = []
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs/run/events", timeout=60) as stream:
            for raw in stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: {\"id\""):
                    views.append(json.loads(line[6:]))
                if line == "event: end":
                    break
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err
    assert f"watch this run at http://127.0.0.1:{port}/" in err
    return views, json.loads(out), err


def test_maker_run_watch_serves_the_runs_page_and_its_events():
    # 18 disks: long enough (several seconds) for the page's views, one a second, on a fast, idle machine too.
    views, summary, _ = _watched(["run", "hanoi", "--disks", "18", "--backend", "sim", "--k", "3"], _free_port())
    steps = [v["live"]["statistics"].get("steps", 0) for v in views]
    assert len(views) >= 3 and steps == sorted(steps) and views[-1]["state"] == "ended"
    assert steps[-1] == summary["steps"] == 2**18 - 1 and views[-1]["live"]["total_steps"] == 2**18 - 1


def test_maker_solve_watch_serves_the_trees_and_the_problems_answered(tmp_path):
    problems = tmp_path / "products.jsonl"
    problems.write_text("".join(json.dumps({"id": str(i), "question": f"Multiply the following numbers:\n{a} × {b}",
                                            "answer": str(a * b)}) + "\n"
                                for i, (a, b) in enumerate([(123456789, 987654321), (31415926, 27182818)] * 20)))
    views, summary, _ = _watched(["solve", "--file", str(problems), "--backend", "sim", "--k", "3"], _free_port())
    answered = [v["live"]["problems"]["answered"] for v in views]
    last = views[-1]
    assert answered == sorted(answered) and last["state"] == "ended" and last["spec"]["solve"]["problems"] == 40
    assert last["live"]["problems"] == {"total": 40, "answered": 40, "right": 40, "wrong": 0, "failed": 0}
    assert summary["solved"] and summary["correct"] == 40
    tree = last["live"]["trees"][0]["tree"]
    assert tree[0]["path"] == "root" and tree[0]["split"] is not None and all(node["done"] or node["split"] for node in tree)
