#!/usr/bin/env bash
# Quick start, command 2: install what is needed, build, and pass the whole test suite, in the
# default build (CUDA when the toolkit is there) and in a CPU-only build (WLB_CUDA=OFF).
# Then the sanitizer build (build-fuzz: clang, ASan+UBSan, WLB_FUZZ=ON) and every fuzz target
# for 20 seconds (scripts/fuzz.sh; docs/fuzzing.md).
# Set WLB_SKIP_CPU_ONLY=1 to test the default build alone, WLB_SKIP_SANITIZE=1 to skip the
# sanitizer build.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$root/scripts/install-deps.sh"

echo "== build (default: WLB_CUDA=AUTO)"
"$root/scripts/build.sh" "$root/build"
echo "== test (default build)"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs" --timeout 600

if [[ "${WLB_SKIP_CPU_ONLY:-0}" != 1 ]]; then
  echo "== build (CPU-only: WLB_CUDA=OFF)"
  "$root/scripts/build.sh" "$root/build-cpu" -DWLB_CUDA=OFF -DWLB_BENCH=OFF
  echo "== test (CPU-only build)"
  ctest --test-dir "$root/build-cpu" --output-on-failure -j "$jobs" --timeout 600
fi

if [[ "${WLB_SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== sanitizer build (clang, ASan+UBSan) and the fuzz targets, 20 s each"
  "$root/scripts/fuzz.sh" 20
fi
