#!/usr/bin/env bash
# The paper's App. F sets with our microagents, smallest first (each resumable: bench/decompose.py keeps journals
# under runs/decompose/). The baselines run where they take minutes, not hours.
#   bash bench/decompose_sets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY bench/decompose.py --family multiply --size 5 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 10 --count 200 --seed 42
$PY bench/decompose.py --family multiply --size 6 --count 200 --seed 42
$PY bench/decompose.py --family sort --size 50 --count 200 --seed 42
$PY bench/decompose.py --family multiply --size 10 --count 200 --seed 42 --runs decomposed,k1
$PY bench/decompose.py --family sort --size 100 --count 200 --seed 43 --runs decomposed,k1
$PY bench/decompose.py --family multiply --size 20 --count 200 --seed 42 --runs decomposed
$PY bench/decompose.py --family sort --size 500 --count 50 --seed 44 --runs decomposed
$PY bench/decompose.py --family multiply --size 30 --count 200 --seed 43 --runs decomposed
$PY bench/decompose.py --family multiply --size 50 --count 100 --seed 44 --runs decomposed
