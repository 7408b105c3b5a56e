#!/usr/bin/env bash
# Quick start, command 2: install what is needed, build, and pass the whole test suite twice:
#   1. the default build (build/: gcc, CUDA when the toolkit is there, the Python module);
#   2. the sanitizer build (build-fuzz/: clang, CPU only, ASan+UBSan everywhere), which is also
#      the CPU-only configuration: every unit, integration and CLI test under the sanitizers
#      (scripts/sanitize.sh), then each libFuzzer target for 20 seconds (scripts/fuzz.sh;
#      docs/fuzzing.md).
# WLB_SKIP_SANITIZE=1 tests the default build alone.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$root/scripts/install-deps.sh"

echo "== build (default: WLB_CUDA=AUTO)"
"$root/scripts/build.sh" "$root/build"
echo "== test (default build)"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs" --timeout 600

if [[ "${WLB_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== sanitizer build (clang, ASan+UBSan, CPU only): the whole test suite"
  "$root/scripts/sanitize.sh"
  echo "== the fuzz targets, 20 s each (same build)"
  "$root/scripts/fuzz.sh" 20
fi
