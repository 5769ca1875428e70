#!/usr/bin/env bash
# maker solve killed with SIGKILL during the paper's 50x50 set (our microagents), then the same command again;
# then bench/experiments/decompose_kill_resume_check.py compares it with bench/decompose.py's uninterrupted run
# (runs/decompose/multiply_50_decomposed.jsonl) and writes bench/results/decompose_kill_resume_50.json.
#   bash bench/experiments/decompose_kill_resume.sh [SECONDS_BEFORE_THE_KILL]
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs
.venv/bin/python -c "
from maker_tasks.multiply_problems import MultiplyProblems
open('runs/mul50.jsonl','w').write(''.join(q.model_dump_json()+'\n' for q in MultiplyProblems.paper_set(50, 100, 44)))"
rm -f runs/kill50.jsonl
.venv/bin/maker solve --file runs/mul50.jsonl --journal runs/kill50.jsonl --json --no-progress > /dev/null 2>&1 &
pid=$!
sleep "${1:-200}"
kill -9 $pid
wait $pid
echo "killed after ${1:-200} s; journal lines: $(wc -l < runs/kill50.jsonl)"
.venv/bin/maker solve --file runs/mul50.jsonl --journal runs/kill50.jsonl --json --no-progress > runs/kill50_second.json
.venv/bin/maker verify runs/kill50.jsonl --json > runs/kill50_verify.json
.venv/bin/python bench/experiments/decompose_kill_resume_check.py
