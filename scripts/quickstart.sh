#!/usr/bin/env bash
# Quick start, command 1: install what is needed, build, and run the main job on the embedded
# default workload: tune packing and CP sharding for the paper's 7B / 128K configuration
# (tp=8,cp=2,pp=4,dp=1 on H100) and write the tuned config. All step times are simulated.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
echo "== wlbtune tune -o tuned.json  (7B / 128K, tp=8,cp=2,pp=4,dp=1, the embedded workload)"
"$root/build/wlbtune" tune --time-budget 40s -o "$root/build/tuned.json"
echo "== apply it: $root/build/wlbtune pack --config $root/build/tuned.json -o plan.jsonl.gz"
