#!/usr/bin/env bash
# Train the built-in adapters on the shared base (models/base/model) exactly as shipped. Each is one
# `maker train` command; rerunning one resumes it from its checkpoint (delete the folder to start over).
#   models/adapters/train.sh [hanoi|multiply|multiply-decompose|sort-decompose|sort-compare]...
#   (default: hanoi and multiply)
set -euo pipefail
cd "$(dirname "$0")/../.."
MAKER=${MAKER:-.venv/bin/maker}
for name in "${@:-hanoi multiply}"; do
  for one in $name; do
    case $one in
      # One adapter for every tower size and every chain of a plan (HanoiTask.training_states: 1-20 disks).
      hanoi) "$MAKER" train hanoi --disks 20 --out models/adapters/hanoi --budget-min 12 --examples 200000 \
               --lora-rank 32 --batch-size 128 --threads 1 --no-progress ;;
      # Both digit-step kinds (products and sums: 1,100 prompts in all) in one adapter, for all three agents.
      multiply) "$MAKER" train multiply --digits 2 --out models/adapters/multiply --budget-min 6 --examples 20000 \
                  --held-out 1100 --eval-states 1100 \
                  --threads 1 --no-progress ;;
      # maker solve's roles (docs/decomposition.md): the decomposers see only lengths (1 to 1,000 of them).
      multiply-decompose) "$MAKER" train maker_tasks.multiply_problems:MultiplyDecompose \
                            --out models/adapters/multiply-decompose --budget-min 6 --examples 20000 --threads 1 --no-progress ;;
      sort-decompose) "$MAKER" train maker_tasks.sort_problems:SortDecompose \
                        --out models/adapters/sort-decompose --budget-min 6 --examples 20000 --threads 1 --no-progress ;;
      # The merge's comparison, one digit place a step: all 100 pairs of digits (every state a run can meet).
      sort-compare) "$MAKER" train maker_tasks.sort_problems:CompareStep \
                      --out models/adapters/sort-compare --budget-min 4 --examples 20000 --threads 1 --no-progress ;;
      *) echo "unknown adapter $one (hanoi, multiply, multiply-decompose, sort-decompose, sort-compare)" >&2; exit 2 ;;
    esac
  done
done
