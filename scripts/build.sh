#!/usr/bin/env bash
# Configures and builds wlbtune with ninja. Usage: scripts/build.sh [BUILD_DIR [CMAKE_ARGS...]]
# Default BUILD_DIR is build/ (CUDA auto-detected). Re-running only rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-"$root/build"}
shift || true
if [[ ! -f "$dir/build.ninja" ]]; then
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
elif [[ $# -gt 0 ]]; then
  cmake "$dir" "$@"
fi
cmake --build "$dir" -j "$(nproc)"
