"""Ctrl-C on the README's simulated main command: how fast it stops, and that the same command resumes.

Starts ``maker run hanoi --disks 20 --backend sim --error-rate 0.01 --k 4 --journal J`` (optionally at
``--depth D``), sends SIGINT after ``--after`` seconds, times the exit, reruns the same command to finish
from the journal, and verifies the journal. SIMULATED: replies come from the task's oracle.

    .venv/bin/python bench/regression/ctrl_c.py [--disks 20] [--depth 0] [--after 3]
Target (issue 11): exit 130 within 1 s of SIGINT; the rerun finishes and the journal verifies.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--after", type=float, default=3.0, help="seconds before SIGINT")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        journal = Path(scratch) / "run.jsonl"
        command = [sys.executable, "-m", "maker", "run", "hanoi", "--disks", str(args.disks), "--backend", "sim",
                   "--error-rate", "0.01", "--k", "4", "--depth", str(args.depth), "--journal", str(journal)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(args.after)
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = child.communicate()
        stop_seconds = time.monotonic() - sent
        kept = sum(1 for _ in journal.open()) - 1
        began = time.monotonic()
        resumed = subprocess.run([*command, "--json", "--no-progress"], capture_output=True, text=True)
        resume_seconds = time.monotonic() - began
        summary = json.loads(resumed.stdout)
        verified = subprocess.run([sys.executable, "-m", "maker", "verify", str(journal), "--json"],
                                  capture_output=True, text=True)
        numbers = {
            "simulated": True, "interrupt_exit_code": child.returncode, "seconds_from_sigint_to_exit": round(stop_seconds, 3),
            "interrupt_message": err.strip().splitlines()[-1], "journalled_steps_at_interrupt": kept,
            "resume_exit_code": resumed.returncode, "resume_seconds": round(resume_seconds, 1),
            "resume_engine_seconds": summary["seconds"], "resumed_steps": summary["resumed_steps"], "steps": summary["steps"], "solved": summary["solved"],
            "errors": summary["errors"], "journal_valid": json.loads(verified.stdout)["valid"],
        }
    print(json.dumps(numbers, indent=2))
    print("written to", write_result(f"ctrl_c_d{args.disks}_depth{args.depth}", vars(args), numbers))


if __name__ == "__main__":
    main()
