"""Our model on Ray workers: 2 workers at 1 thread each against 1 worker, side by side in one run; then a
worker killed mid-run, and the driver killed mid-run and the same command resumed.

Each run is ``maker run hanoi --disks D --depth 6 --backend hf --ray --ray-workers W --threads 1 --journal J``
(a local Ray cluster; our own Hanoi model in every worker). Every journal is verified.

    .venv/bin/python bench/regression/ray_workers.py [--disks 16]
Target (issue 15): 2 workers >= 1.7x the steps/s of 1; a worker killed: completes, 0 errors, journal valid;
a driver killed: the same command resumes and completes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402


def command(disks: int, workers: int, journal: Path) -> list[str]:
    return [sys.executable, "-m", "maker", "run", "hanoi", "--disks", str(disks), "--depth", "6", "--backend", "hf",
            "--ray", "--ray-workers", str(workers), "--threads", "1", "--journal", str(journal), "--json", "--no-progress"]


def finish(cmd: list[str], journal: Path) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    report = json.loads(subprocess.run([sys.executable, "-m", "maker", "verify", str(journal), "--json"],
                                       capture_output=True, text=True).stdout)
    numbers = {"steps": summary["steps"], "resumed_steps": summary["resumed_steps"], "seconds": summary["seconds"],
            "steps_per_second": summary["steps_per_second"], "errors": summary["errors"], "solved": summary["solved"],
            "journal_valid": report["valid"], "journal_steps": report["steps"],
            "workers": {k: v for k, v in summary["backend_statistics"].items() if not k.endswith("samples")}}
    print(json.dumps(numbers), flush=True)  # as it goes: a long benchmark shows its parts
    return numbers


def kill_a_worker_after(seconds: float, record: dict) -> threading.Thread:
    def kill() -> None:
        time.sleep(seconds)
        found = subprocess.run(["pgrep", "-f", "ray::_WorkerActor"], capture_output=True, text=True).stdout.split()
        if found:
            os.kill(int(found[0]), signal.SIGKILL)
            record["killed_worker_pid"] = int(found[0])

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=16)
    args = parser.parse_args()
    numbers: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        numbers["one_worker"] = finish(command(args.disks, 1, tmp / "one.jsonl"), tmp / "one.jsonl")
        numbers["two_workers"] = finish(command(args.disks, 2, tmp / "two.jsonl"), tmp / "two.jsonl")
        numbers["speedup"] = round(numbers["two_workers"]["steps_per_second"] / numbers["one_worker"]["steps_per_second"], 2)
        kill: dict = {}
        killer = kill_a_worker_after(numbers["two_workers"]["seconds"] / 3 + 5, kill)  # ~5 s of start-up first
        numbers["two_workers_one_killed"] = finish(command(args.disks, 2, tmp / "kill.jsonl"), tmp / "kill.jsonl") | kill
        killer.join()
        journal = tmp / "driver.jsonl"
        driver = subprocess.Popen(command(args.disks, 2, journal), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(numbers["two_workers"]["seconds"] / 3 + 5)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        time.sleep(2)  # the killed driver's local cluster shuts itself down
        numbers["driver_killed_then_resumed"] = finish(command(args.disks, 2, journal), journal)
    print(json.dumps(numbers, indent=2))
    print("written to", write_result(f"ray_workers_d{args.disks}", vars(args), numbers))


if __name__ == "__main__":
    main()
