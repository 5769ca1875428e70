"""What every benchmark records next to its numbers: machine, commit and time."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            info["memory_kb"] = int(f.readline().split()[1])
    except OSError:
        pass
    return info


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name: str, settings: dict[str, Any], numbers: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit(),
        "machine": machine(),
        "settings": settings,
        "results": numbers,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def run_cli(args: list[str], *, journal: Path | None, stderr: int | None = subprocess.PIPE) -> dict[str, Any]:
    """Run ``maker ARGS --json`` in a child process, then ``maker verify`` on its journal.

    Returns the child's JSON summary plus ``wall_seconds`` (start-up included), ``peak_rss_mb``
    (the run's child alone, taken before the verify child) and ``verified`` (verify's JSON, or
    None without a journal). Exits with the child's stderr if the run crashed (exit code not 0/1).
    """
    command = [sys.executable, "-m", "maker.cli", *args, "--json"]
    if journal is not None:
        command += ["--journal", str(journal)]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"run failed ({done.returncode}):\n{done.stderr or ''}")
    summary = json.loads(done.stdout)
    summary["wall_seconds"] = wall
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary["verified"] = None
    if journal is not None:
        check = subprocess.run([sys.executable, "-m", "maker.cli", "verify", str(journal), "--json"],
                               capture_output=True, text=True)
        summary["verified"] = json.loads(check.stdout)
    return summary
