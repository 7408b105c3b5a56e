# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: how the ASan+UBSan build (build-fuzz/) is
# configured, and the sanitizers' options. ROOT must be set. A caller's own *_OPTIONS win.
sanitizer_build=$ROOT/build-fuzz

# Configures build-fuzz/ once (clang, CPU only, everything under ASan+UBSan: cmake/fuzz.cmake).
configure_sanitizer_build() {
  if [[ -f $sanitizer_build/build.ninja ]]; then return; fi
  local launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$sanitizer_build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWLB_CUDA=OFF -DWLB_PYTHON=OFF -DWLB_BENCH=OFF \
    -DWLB_FUZZ=ON "${launcher[@]}"
}

# Every finding stops the program with a stack; OpenMPI's allocations kept until exit are not
# leaks of ours (tests/fuzz/lsan.supp).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/fuzz/lsan.supp:print_suppressions=0}
