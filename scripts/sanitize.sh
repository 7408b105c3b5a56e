#!/usr/bin/env bash
# The whole test suite (unit, integration, CLI) under AddressSanitizer and
# UndefinedBehaviorSanitizer: configures build-fuzz/ when needed (clang, CPU only, WLB_FUZZ=ON:
# cmake/fuzz.cmake), builds every target and runs ctest with the sanitizers' options
# (scripts/lib/sanitizer-env.sh). This tree is also the CPU-only build scripts/test.sh checks.
# Usage: scripts/sanitize.sh [CTEST_ARGS...]   e.g. scripts/sanitize.sh -L unit
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Every wlbtune process starts MPI (one rank without mpirun): OpenMPI's plugins are unloaded
# before LeakSanitizer reports, so their allocations kept until exit show as leaks of an
# "unknown module" on the fast unwinder's short stacks. The full unwinder reaches libmpi, which
# tests/fuzz/lsan.supp names (about 20% slower; the fuzz targets, without MPI, keep the fast one).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:fast_unwind_on_malloc=0}
source "$ROOT/scripts/lib/sanitizer-env.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

configure_sanitizer_build
cmake --build "$sanitizer_build" -j "$(nproc)"
ctest --test-dir "$sanitizer_build" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
