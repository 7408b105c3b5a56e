# WLB_FUZZ=ON: the libFuzzer targets of tests/fuzz, and every target of the build (the core, the
# tests, wlbtune) compiled with AddressSanitizer and UndefinedBehaviorSanitizer, so that the
# fuzzers find memory errors and undefined behaviour in the library they call and the unit tests
# run under the same checks. The core also gets libFuzzer's coverage instrumentation
# (fuzzer-no-link); only the fuzz targets link libFuzzer's main. Use a build directory of its own
# (scripts/fuzz.sh uses build-fuzz/).
if(NOT WLB_FUZZ)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "WLB_FUZZ=ON needs clang (libFuzzer), but the C++ compiler is ${CMAKE_CXX_COMPILER_ID} "
    "(${CMAKE_CXX_COMPILER}). Fix: apt-get install -y clang libclang-rt-14-dev, then configure a "
    "fresh build directory with CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja "
    "-DWLB_CUDA=OFF -DWLB_PYTHON=OFF -DWLB_BENCH=OFF -DWLB_FUZZ=ON (or run scripts/fuzz.sh).")
endif()
if(WLB_CUDA STREQUAL "ON")
  message(FATAL_ERROR "WLB_FUZZ=ON builds the host code only: configure with -DWLB_CUDA=OFF")
endif()
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
check_cxx_source_compiles(
  "#include <cstddef>
   #include <cstdint>
   extern \"C\" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }"
  WLB_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_FLAGS)
if(NOT WLB_HAVE_LIBFUZZER)
  message(FATAL_ERROR "WLB_FUZZ=ON: clang cannot link -fsanitize=fuzzer (libFuzzer's runtime is "
                      "missing). Fix: apt-get install -y libclang-rt-14-dev")
endif()
# Every UBSan finding stops the program (a crash libFuzzer saves), not a line in a log.
# -O1 and line tables only: the sanitizers' usual trade (symbolized stacks, fast enough to fuzz)
# and half the compile time of -O2 -g on the 2-core CI machine. Added after the build type's
# flags, so these win.
set(WLB_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -O1 -gline-tables-only)
add_compile_options(${WLB_SANITIZE_FLAGS} -fsanitize=fuzzer-no-link)
add_link_options(-fsanitize=address,undefined)
message(STATUS "wlbtune: WLB_FUZZ=ON: ASan+UBSan everywhere, libFuzzer targets in tests/fuzz")
