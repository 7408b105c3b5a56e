#!/usr/bin/env bash
# Quick start, command 1: install what is needed, build, and run the main job on the embedded
# default workload (the paper's 7B / 128K configuration: tp=8,cp=2,pp=4,dp=1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null
echo "== wlbtune layout --layout tp=8,cp=2,pp=4,dp=1  (7B / 128K, the paper's default)"
"$root/build/wlbtune" layout --layout tp=8,cp=2,pp=4,dp=1
