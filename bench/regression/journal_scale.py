"""Beyond a million steps: the simulated Hanoi run at 20 disks and at ``--disks`` (25: 33,554,431 steps),
each fresh and each killed at about 90 % and resumed, with the peak memory of every process.

SIMULATED: replies come from the task's oracle with injected errors; this measures the engine and
its journal, not a model. Everything runs in one invocation, one process at a time, so the ratios
are side by side on the same machine:

- fresh runs at 20 disks with a plain and a compressed journal (bytes per step, and what
  compression costs in time);
- a fresh run at ``--disks`` (time against 2^(disks-20) times the 20-disk time, peak memory against
  the 20-disk run's);
- at both sizes, a run SIGKILLed once its journal holds about ``--kill-at`` of the steps, then the
  same command again: the resume's peak memory against the fresh run's, and ``maker verify`` on the
  finished journal (time and peak memory too).

    .venv/bin/python bench/regression/journal_scale.py [--disks 25] [--kill-at 0.9] [--format zst]
Targets (issue 26): the big run within 10 % of 2^(disks-20) times the 20-disk time and within 20 %
of its peak memory; every resume within 20 % of its fresh run's peak memory; every journal verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402

BASE_DISKS = 20


def child(command: list[str], *, kill_at: tuple[Path, int] | None = None) -> dict[str, Any]:
    """Run ``python -m maker COMMAND`` alone; its wall time, its own peak RSS (wait4), exit code and
    stdout. With ``kill_at=(journal, size)``, SIGKILL it once the journal holds that many bytes (by
    size, not time, so that other load on the machine cannot move the point)."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "maker", *command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    while True:  # os.wait4, not proc.wait: it gives this child's own rusage
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if kill_at is not None and kill_at[0].exists() and kill_at[0].stat().st_size >= kill_at[1]:
            proc.send_signal(signal.SIGKILL)
            kill_at = None
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else b""
    return {"seconds": round(time.perf_counter() - began, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "exit": proc.returncode, "stdout": out.decode()}


def run_command(disks: int, journal: Path, args: argparse.Namespace) -> list[str]:
    return ["run", "hanoi", "--disks", str(disks), "--backend", "sim", "--error-rate", str(args.error_rate), "--k",
            str(args.k), "--seed", str(args.seed), "--no-progress", "--json", "--journal", str(journal)]


def fresh(disks: int, journal: Path, args: argparse.Namespace) -> dict[str, Any]:
    done = child(run_command(disks, journal, args))
    summary = json.loads(done["stdout"])
    steps = summary["steps"]
    return {"steps": steps, "solved": summary["solved"], "errors": summary["errors"], "samples_per_step": summary["samples_per_step"],
            "wall_seconds": done["seconds"], "engine_seconds": summary["seconds"], "steps_per_second": round(steps / done["seconds"]),
            "peak_rss_mb": done["peak_rss_mb"], "journal_bytes": journal.stat().st_size,
            "journal_bytes_per_step": round(journal.stat().st_size / steps, 2)}


def killed_and_resumed(disks: int, journal: Path, args: argparse.Namespace, fresh_bytes: int) -> dict[str, Any]:
    killed = child(run_command(disks, journal, args), kill_at=(journal, int(fresh_bytes * args.kill_at)))
    resumed = child(run_command(disks, journal, args))
    summary = json.loads(resumed["stdout"])
    verified = child(["verify", str(journal), "--json"])
    report = json.loads(verified["stdout"])
    return {"killed_exit": killed["exit"], "killed_after_seconds": killed["seconds"],
            "resumed_steps": summary["resumed_steps"], "resumed_share": round(summary["resumed_steps"] / summary["steps"], 3),
            "resume_wall_seconds": resumed["seconds"], "resume_peak_rss_mb": resumed["peak_rss_mb"],
            "solved": summary["solved"], "errors": summary["errors"], "steps": summary["steps"],
            "journal_bytes": journal.stat().st_size, "verify_seconds": verified["seconds"],
            "verify_peak_rss_mb": verified["peak_rss_mb"], "verified": report["valid"], "verified_steps": report["steps"],
            "rule_violations": report["rule_violations"], "oracle_errors": report["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=25)
    parser.add_argument("--base-disks", type=int, default=BASE_DISKS, help="the run the big one is compared with")
    parser.add_argument("--format", choices=["zst", "jsonl"], default="zst", help="the journal of the runs compared")
    parser.add_argument("--kill-at", type=float, default=0.9, help="SIGKILL once the journal has this share of the fresh one's bytes")
    parser.add_argument("--error-rate", type=float, default=0.01)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", default=None, help="folder for the journals (default: a temporary one)")
    args = parser.parse_args()
    settings = {"command": " ".join(["maker", *run_command(args.disks, Path(f"JOURNAL.{args.format}"), args)]), **vars(args)}
    numbers: dict[str, Any] = {"simulated": True}

    def record(name: str, result: dict[str, Any]) -> None:
        """Add one phase's numbers and write the record so far: a long run that is cut keeps what it measured."""
        numbers[name] = result
        path = write_result(f"journal_scale_d{args.disks}", settings, numbers)
        print(json.dumps({name: result}, indent=2), f"\nwritten to {path}", flush=True)

    small, fmt = args.base_disks, args.format
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        scratch = Path(tmp)
        base = {kind: fresh(small, scratch / f"d{small}.{kind}", args) for kind in ("jsonl", "zst")}
        base["zst_time_over_jsonl"] = round(base["zst"]["wall_seconds"] / base["jsonl"]["wall_seconds"], 3)
        record(f"d{small}_fresh", base)
        own = base[fmt]
        resumed = killed_and_resumed(small, scratch / f"d{small}_resumed.{fmt}", args, own["journal_bytes"])
        resumed["resume_peak_rss_over_fresh"] = round(resumed["resume_peak_rss_mb"] / own["peak_rss_mb"], 3)
        record(f"d{small}_killed_and_resumed", resumed)
        if args.disks > small:
            big = fresh(args.disks, scratch / f"d{args.disks}.{fmt}", args)
            (scratch / f"d{args.disks}.{fmt}").unlink()  # its size is recorded; the disk may need the room
            # engine time: the one-second start-up would otherwise count 2^(disks - small) times in the base
            big["time_over_scaled_base"] = round(big["engine_seconds"] / (2 ** (args.disks - small) * own["engine_seconds"]), 3)
            big["peak_rss_over_base"] = round(big["peak_rss_mb"] / own["peak_rss_mb"], 3)
            record(f"d{args.disks}_fresh", big)
            resumed = killed_and_resumed(args.disks, scratch / f"d{args.disks}_resumed.{fmt}", args, big["journal_bytes"])
            resumed["resume_peak_rss_over_fresh"] = round(resumed["resume_peak_rss_mb"] / big["peak_rss_mb"], 3)
            record(f"d{args.disks}_killed_and_resumed", resumed)


if __name__ == "__main__":
    main()
