"""What watching costs: the 16-disk depth-8 run with our model, plain against the same run with its
live page open in a headless Chromium (``--watch``) and OpenTelemetry tracing on (``--trace FILE``).

The two run alternately (A B B A ...), each in its own process on the same machine, so drift in the
machine's speed falls on both; the record has every wall time, the medians and their ratio. Without
a Chromium the page is read by a plain event-stream client instead, and the record says so.

    .venv/bin/python bench/regression/watch_overhead.py [--disks 16] [--depth 8] [--repeat 2]
Target (issue 27): the watched and traced run within 5 % of the plain one.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # the repository, for the tests' browser finder
from tests.service.browser import find_chromium  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_events(port: int, stop: threading.Event, counts: list[int]) -> None:
    """A stand-in for the page: follow the run's event stream until it ends."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/runs/run/events", timeout=30) as stream:
                for raw in stream:
                    counts[0] += raw.startswith(b"event: job")
            return
        except OSError:
            time.sleep(0.1)


def one_run(base: list[str], watched: bool, scratch: Path, chromium: str | None) -> dict[str, object]:
    command, viewer, counts = list(base), None, [0]
    port = free_port()
    if watched:
        command += ["--watch", str(port), "--trace", str(scratch / "spans.jsonl")]
    began = time.perf_counter()
    run = subprocess.Popen([sys.executable, "-m", "maker", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    if watched:
        time.sleep(2.0)  # the page opens once the run has started
        if chromium:
            viewer = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                       f"--user-data-dir={scratch / 'profile'}", f"http://127.0.0.1:{port}/"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            threading.Thread(target=read_events, args=(port, stop, counts), daemon=True).start()
    out, err = run.communicate()
    wall = time.perf_counter() - began
    stop.set()
    if viewer is not None:
        viewer.kill()
        viewer.wait()
    if run.returncode != 0:
        sys.exit(f"run failed ({run.returncode}): {err[-2000:]}")
    summary = json.loads(out)
    spans = sum(1 for _ in open(scratch / "spans.jsonl")) if watched else 0
    return {"watched": watched, "wall_seconds": round(wall, 2), "engine_seconds": summary["seconds"], "steps": summary["steps"],
            "errors": summary["errors"], "spans": spans, "events_read": counts[0] if watched and not chromium else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=16)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind, in A B B A order")
    args = parser.parse_args()
    base = ["run", "hanoi", "--disks", str(args.disks), "--depth", str(args.depth), "--max-batch", "512", "--no-progress", "--json"]
    chromium = find_chromium()
    order = [kind for _ in range((args.repeat + 1) // 2) for kind in (False, True, True, False)][: 2 * args.repeat]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for watched in order:
            runs.append(one_run(base, watched, Path(tmp), chromium))
            print(json.dumps(runs[-1]), flush=True)
    plain = statistics.median(r["engine_seconds"] for r in runs if not r["watched"])
    watched = statistics.median(r["engine_seconds"] for r in runs if r["watched"])
    numbers = {"simulated": False, "viewer": chromium or "event-stream client", "runs": runs,
               "median_plain_engine_seconds": plain, "median_watched_engine_seconds": watched,
               "watched_over_plain": round(watched / plain, 4)}
    settings = {"command": " ".join(["maker", *base]), "watched_adds": "--watch PORT --trace FILE, the page open", **vars(args)}
    path = write_result(f"watch_overhead_d{args.disks}", settings, numbers)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
