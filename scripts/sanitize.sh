#!/usr/bin/env bash
# The whole test suite (unit, integration, CLI) under AddressSanitizer and
# UndefinedBehaviorSanitizer: configures build-fuzz/ when needed (clang, CPU only, WLB_FUZZ=ON:
# cmake/fuzz.cmake), builds every target and runs ctest with the sanitizers' options
# (scripts/lib/sanitizer-env.sh). This tree is also the CPU-only build scripts/test.sh checks.
# Usage: scripts/sanitize.sh [CTEST_ARGS...]   e.g. scripts/sanitize.sh -L unit
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/lib/sanitizer-env.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

configure_sanitizer_build
cmake --build "$sanitizer_build" -j "$(nproc)"
# Every wlbtune process starts MPI (one rank without mpirun). Open MPI unloads its plugins before
# LeakSanitizer reports, so what they keep until exit would show as leaks of an unknown module;
# with dlclose a no-op (tests/fuzz/no_dlclose.cpp) the stacks name them and tests/fuzz/lsan.supp
# suppresses them.
export LD_PRELOAD="$sanitizer_build/tests/fuzz/libwlb_no_dlclose.so${LD_PRELOAD:+:$LD_PRELOAD}"
ctest --test-dir "$sanitizer_build" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
