"""What watching costs: the 16-disk depth-8 run with our model, plain against the same run with its
live page open in a headless Chromium (``--watch``) and OpenTelemetry tracing on (``--trace FILE``).

The two run alternately (A B B A ...), each in its own process on the same machine, so drift in the
machine's speed falls on both. This machine's speed drifts by 10-20 % over minutes (measured: the same
plain run took 74 s and 98 s within half an hour), so the headline ratio is the median over adjacent
pairs (each plain run against the watched one beside it), with the medians' ratio beside it. Each run
also records the CPU seconds of its own process and of the browser (all of Chromium's processes, read
from /proc, over the run): the work watching adds, which drift does not change. The browser starts
before a watched run, on a blank page, as a user's is already running, and opens the run's page as
soon as the run serves it: Chromium's own start-up (about 1.5 CPU seconds on this machine) is not
part of watching. Without a Chromium the page is read by a plain event-stream client instead, and
the record says so; ``--viewer sse`` asks for that client even where a Chromium exists, to separate what
maker's watching costs (the server, the stream, tracing) from what a browser on the same machine costs.

    .venv/bin/python bench/regression/watch_overhead.py [--disks 16] [--depth 8] [--repeat 2] [--viewer chromium|sse]
Target (issue 27): the watched and traced run within 5 % of the plain one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # the repository, for the tests' browser finder
from tests.service.browser import Browser, find_chromium  # noqa: E402


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
    return asyncio.run(_one_run(base, watched, scratch, chromium))


async def _one_run(base: list[str], watched: bool, scratch: Path, chromium: str | None) -> dict[str, object]:
    """One run in its own process. A watched one gets ``--watch`` and ``--trace``; its page is opened in a
    Chromium started before the run (on a blank page, as a user's browser is already running) as soon as
    the run says where to watch it, or read by a plain event-stream client."""
    command, counts = list(base), [0]
    port = free_port()
    if watched:
        command += ["--watch", str(port), "--trace", str(scratch / "spans.jsonl")]
    async with contextlib.AsyncExitStack() as stack:
        browser = None
        if watched and chromium:
            profile = scratch / f"browser-{port}"
            browser = await stack.enter_async_context(Browser(chromium, profile))
            await asyncio.sleep(3.0)  # past the browser's start-up burst
        viewer_ticks_before = _ticks_of(str(scratch / f"browser-{port}")) if browser else 0
        cpu_before = _children_cpu()
        began = time.perf_counter()
        run = await asyncio.create_subprocess_exec(sys.executable, "-m", "maker", *command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
        said: list[bytes] = []
        stop = threading.Event()
        while watched:  # the run says where to watch it once its page is served
            line = await run.stderr.readline()
            said.append(line)
            if not line or b"watch this run at" in line:
                break
        if watched and browser is not None:
            await browser.open(f"http://127.0.0.1:{port}/")
        elif watched:
            threading.Thread(target=read_events, args=(port, stop, counts), daemon=True).start()
        out, err = await run.communicate()
        wall = time.perf_counter() - began
        run_cpu = _children_cpu() - cpu_before  # before the browser is reaped
        viewer_cpu = (_ticks_of(str(scratch / f"browser-{port}")) - viewer_ticks_before) / TICKS if browser else 0.0
        page_steps = await browser.number("steps") if browser else None  # the page followed the run to its end
        stop.set()
    if run.returncode != 0:
        sys.exit(f"run failed ({run.returncode}): {(b''.join(said) + err)[-2000:].decode(errors='replace')}")
    summary = json.loads(out)
    spans = sum(1 for _ in open(scratch / "spans.jsonl")) if watched else 0
    return {"watched": watched, "wall_seconds": round(wall, 2), "engine_seconds": summary["seconds"], "steps": summary["steps"],
            "errors": summary["errors"], "spans": spans, "run_cpu_seconds": round(run_cpu, 2),
            "viewer_cpu_seconds": round(viewer_cpu, 2), "events_read": counts[0] if watched and not chromium else None,
            "page_shows_steps": page_steps}


TICKS = os.sysconf("SC_CLK_TCK")


def _ticks_of(marker: str) -> int:
    """User + system clock ticks of every live process whose command line holds ``marker`` (all of one
    Chromium's processes: they share its profile folder), read from /proc: Chromium's helpers are not
    this process's children."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in stat.read_bytes():
                fields = (stat.parent / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:  # a process that ended meanwhile
            continue
    return total


def _children_cpu() -> float:
    """User + system CPU seconds of this process's reaped children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=16)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kind, in A B B A order")
    parser.add_argument("--viewer", choices=["chromium", "sse"], default="chromium",
                        help="what opens the page: a headless Chromium (when one exists), or a plain event-stream client")
    args = parser.parse_args()
    base = ["run", "hanoi", "--disks", str(args.disks), "--depth", str(args.depth), "--max-batch", "512", "--no-progress", "--json"]
    chromium = find_chromium() if args.viewer == "chromium" else None
    order = [kind for _ in range((args.repeat + 1) // 2) for kind in (False, True, True, False)][: 2 * args.repeat]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for watched in order:
            runs.append(one_run(base, watched, Path(tmp), chromium))
            print(json.dumps(runs[-1]), flush=True)
    plain = statistics.median(r["engine_seconds"] for r in runs if not r["watched"])
    watched = statistics.median(r["engine_seconds"] for r in runs if r["watched"])
    pairs = [runs[i + 1]["engine_seconds"] / runs[i]["engine_seconds"] if runs[i + 1]["watched"]
             else runs[i]["engine_seconds"] / runs[i + 1]["engine_seconds"] for i in range(len(runs) - 1)
             if runs[i]["watched"] != runs[i + 1]["watched"]]
    cpu_plain = statistics.median(r["run_cpu_seconds"] for r in runs if not r["watched"])
    cpu_watched = statistics.median(r["run_cpu_seconds"] + r["viewer_cpu_seconds"] for r in runs if r["watched"])
    numbers = {"simulated": False, "viewer": chromium or "event-stream client", "runs": runs,
               "median_plain_engine_seconds": plain, "median_watched_engine_seconds": watched,
               "watched_over_plain": round(watched / plain, 4),
               "adjacent_pair_ratios": [round(r, 4) for r in pairs],
               "median_adjacent_pair_ratio": round(statistics.median(pairs), 4),
               "median_plain_cpu_seconds": cpu_plain, "median_watched_cpu_seconds_with_viewer": cpu_watched,
               "cpu_watched_over_plain": round(cpu_watched / cpu_plain, 4)}
    settings = {"command": " ".join(["maker", *base]), "watched_adds": "--watch PORT --trace FILE, the page open in a browser started before the run", **vars(args)}
    suffix = "" if chromium else "_sse"
    path = write_result(f"watch_overhead_d{args.disks}{suffix}", settings, numbers)
    print(json.dumps(numbers, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
