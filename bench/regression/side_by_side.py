"""One command, two source trees, side by side: is a change slower than the code it replaces?

Runs ``maker ARGS --json`` in child processes, alternating between this checkout and an older
tree (a git worktree of the old commit, put first on PYTHONPATH, its ``tasks/`` as
``maker_tasks``), ``--repeat`` times each, in one run on one machine. Records each run's wall time
(start-up included), engine seconds and result, the medians, and new/old.

    git worktree add /tmp/old e6ee6da
    .venv/bin/python bench/regression/side_by_side.py --old-tree /tmp/old --name redesign_d16 \\
        -- run hanoi --disks 16 --depth 8 --max-batch 512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import write_result  # noqa: E402


def run_once(args: list[str], pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "maker.cli", *args, "--json", "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir(), text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"run failed ({proc.returncode}):\n{err}")
    summary = json.loads(out)
    return {"wall_seconds": round(wall, 2), "engine_seconds": summary["seconds"], "steps": summary["steps"],
            "solved": summary["solved"], "errors": summary["errors"], "samples": summary["samples"],
            "tokens": summary["tokens"], "config": summary.get("config")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-tree", type=Path, required=True, help="a checkout of the old commit")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--name", default="side_by_side")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the maker arguments")
    args = parser.parse_args()
    command = [a for a in args.command if a != "--"]
    old = args.old_tree.resolve()
    with tempfile.TemporaryDirectory() as shim:
        (Path(shim) / "maker").symlink_to(old / "maker")
        (Path(shim) / "maker_tasks").symlink_to(old / "tasks")
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        for i in range(args.repeat):
            for which in (("old", "new") if i % 2 == 0 else ("new", "old")):  # alternate who goes first
                result = run_once(command, shim if which == "old" else None)
                runs[which].append(result)
                print(which, json.dumps({k: v for k, v in result.items() if k != "config"}), flush=True)
    medians = {which: statistics.median(r["wall_seconds"] for r in rs) for which, rs in runs.items()}
    old_commit = subprocess.run(["git", "-C", str(old), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    numbers = {"runs": runs, "median_wall_seconds": medians, "new_over_old": round(medians["new"] / medians["old"], 3)}
    path = write_result(args.name, {"command": "maker " + " ".join(command) + " --json", "old_commit": old_commit,
                                    "repeat": args.repeat}, numbers)
    print(json.dumps({"median_wall_seconds": medians, "new_over_old": numbers["new_over_old"]}))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
