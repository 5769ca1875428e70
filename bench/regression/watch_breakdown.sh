#!/bin/bash
# Where watching costs (issue 27): the 14-disk depth-8 run with our model, in rounds of four variants,
# each its own process: plain; --watch with a plain event-stream client (curl); --watch with a headless
# Chromium at nice 19; --watch with a headless Chromium. Prints "round variant engine-seconds" lines.
#   bash bench/regression/watch_breakdown.sh > bench/results/watch_breakdown_d14.txt
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
base="run hanoi --disks 14 --depth 8 --max-batch 512 --no-progress --json"
port=18900
for round in 1 2 3; do
 for v in plain sse nicebrowser browser; do
  port=$((port+1)); extra=""
  [ $v != plain ] && extra="--watch $port"
  .venv/bin/python -m maker $base $extra > "$tmp/run.json" 2>/dev/null &
  run=$!
  sleep 2
  case $v in
   sse) curl -sN http://127.0.0.1:$port/runs/run/events > /dev/null & ;;
   nicebrowser) nice -n 19 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$tmp/profile$port" http://127.0.0.1:$port/ >/dev/null 2>&1 & ;;
   browser) chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$tmp/profile$port" http://127.0.0.1:$port/ >/dev/null 2>&1 & ;;
  esac
  wait $run
  pkill -f "user-data-dir=$tmp/profile$port"; pkill -f "curl -sN http://127.0.0.1:$port"
  echo "$round $v $(python3 -c "import json;print(json.load(open('$tmp/run.json'))['seconds'])")"
 done
done
rm -rf "$tmp"
