#!/usr/bin/env bash
# The paper's App. F sets with our microagents, smallest first (each resumable: bench/decompose.py keeps journals
# under runs/decompose/; a run added later joins the set's result file beside the earlier ones). Both baselines
# run on every set but one: the solver alone on 500 numbers is insertion sort, about 156,000 voted steps a list in
# one chain, so it runs on the set's first 5 lists (tag first5).
#   bash bench/decompose_sets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY bench/decompose.py --family multiply --size 5 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 10 --count 200 --seed 42
$PY bench/decompose.py --family multiply --size 6 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 50 --count 200 --seed 42
$PY bench/decompose.py --family multiply --size 10 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 100 --count 200 --seed 43
$PY bench/decompose.py --family multiply --size 20 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 500 --count 50 --seed 44 --runs decomposed,k1
$PY bench/decompose.py --family sort --size 500 --count 5 --seed 44 --runs solver_alone --tag first5
$PY bench/decompose.py --family multiply --size 30 --count 200 --seed 43
$PY bench/decompose.py --family multiply --size 50 --count 100 --seed 44
