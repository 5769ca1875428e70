"""The endpoint pool against one endpoint, side by side in one run; then an endpoint killed and restarted mid-run.

Fake model servers (bench/fake_endpoint.py: each answers after a fixed latency, so many at a time) stand in
for vLLM servers; each runs in its own process. The run is ``maker run hanoi --disks D --depth 6 --backend
openai --base-url ...`` with one server, then with N; then with N where one server is killed (SIGKILL) and
started again on its port mid-run. Every run's journal is verified.

    .venv/bin/python bench/regression/pool.py [--disks 12] [--endpoints 4] [--latency 0.05] [--concurrent 8]
Target (issue 15): N = 4 gives >= 3.5x the steps/s of 1; with the kill and restart, 0 errors and the journal verifies.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

BENCH = Path(__file__).resolve().parent.parent  # bench/, where fake_endpoint.py lives


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    server = subprocess.Popen([sys.executable, str(BENCH / "fake_endpoint.py"), "--port", str(port), "--disks",
                               str(args.disks), "--latency", str(args.latency), "--concurrent", str(args.concurrent)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().startswith("ready")
    return server


def run(urls: list[str], args: argparse.Namespace, journal: Path) -> dict:
    command = [sys.executable, "-m", "maker", "run", "hanoi", "--disks", str(args.disks), "--depth", "6",
               "--backend", "openai", "--model", "fake", "--journal", str(journal), "--json", "--no-progress"]
    for url in urls:
        command += ["--base-url", url]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    verified = subprocess.run([sys.executable, "-m", "maker", "verify", str(journal), "--json"], capture_output=True, text=True)
    report = json.loads(verified.stdout)
    return {"steps": summary["steps"], "seconds": summary["seconds"], "steps_per_second": summary["steps_per_second"],
            "errors": summary["errors"], "solved": summary["solved"], "journal_valid": report["valid"],
            "journal_steps": report["steps"], "endpoints": summary["backend_statistics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--down", type=float, default=2.0, help="seconds the killed server stays down")
    args = parser.parse_args()
    ports = [free_port() for _ in range(args.endpoints)]
    servers = [start_server(port, args) for port in ports]
    urls = [f"http://127.0.0.1:{port}/v1" for port in ports]
    numbers: dict = {"simulated_model": "fake servers answer from the task's oracle; this measures routing"}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            numbers["one_endpoint"] = run(urls[:1], args, Path(scratch) / "one.jsonl")
            numbers["pool"] = run(urls, args, Path(scratch) / "pool.jsonl")
            numbers["speedup"] = round(numbers["pool"]["steps_per_second"] / numbers["one_endpoint"]["steps_per_second"], 2)

            def kill_and_restart() -> None:  # one server dies a third of the way in, and comes back
                time.sleep(numbers["pool"]["seconds"] / 3)
                servers[1].send_signal(signal.SIGKILL)
                servers[1].wait()
                time.sleep(args.down)
                servers[1] = start_server(ports[1], args)

            chaos = threading.Thread(target=kill_and_restart)
            chaos.start()
            numbers["pool_with_kill_and_restart"] = run(urls, args, Path(scratch) / "chaos.jsonl")
            chaos.join()
    finally:
        for server in servers:
            server.kill()
    print(json.dumps(numbers, indent=2))
    print("written to", write_result(f"pool_d{args.disks}_x{args.endpoints}", vars(args), numbers))


if __name__ == "__main__":
    main()
