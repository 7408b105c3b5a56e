# Third-party libraries, all from Debian's packages (scripts/install-deps.sh installs them).
set(_wlb_fix "run scripts/install-deps.sh (Debian packages) and configure again")
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ZLIB REQUIRED)
# simdjson (On Demand) parses Kineto and timer-timeline traces of gigabytes in a streaming pass.
find_package(simdjson QUIET CONFIG)
if(NOT simdjson_FOUND)
  message(FATAL_ERROR "simdjson not found. Fix: ${_wlb_fix} (libsimdjson-dev)")
endif()
# SQLite reads Nsight Systems exports (nsys export --type sqlite) in analyze.
find_package(SQLite3 QUIET)
if(NOT SQLite3_FOUND)
  message(FATAL_ERROR "SQLite 3 not found. Fix: ${_wlb_fix} (libsqlite3-dev)")
endif()
if(WLB_TESTS)
  find_package(GTest REQUIRED)
endif()
# xxHash (XXH3) hashes input files for the provenance every JSON report carries.
find_path(XXHASH_INCLUDE_DIR xxhash.h)
find_library(XXHASH_LIBRARY xxhash)
if(NOT XXHASH_INCLUDE_DIR OR NOT XXHASH_LIBRARY)
  message(FATAL_ERROR "xxHash not found. Fix: ${_wlb_fix} (libxxhash-dev)")
endif()
add_library(wlb_xxhash INTERFACE)
target_include_directories(wlb_xxhash INTERFACE ${XXHASH_INCLUDE_DIR})
target_link_libraries(wlb_xxhash INTERFACE ${XXHASH_LIBRARY})
# OpenBLAS (cblas) for the CPU GEMMs of kernels/gemm.cpp (libopenblas-dev).
find_path(WLB_CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/aarch64-linux-gnu/openblas-pthread
  PATH_SUFFIXES openblas)
find_library(WLB_OPENBLAS_LIBRARY openblas)
if(NOT WLB_CBLAS_INCLUDE_DIR OR NOT WLB_OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS not found. Fix: ${_wlb_fix} (libopenblas-dev)")
endif()
add_library(wlb_openblas INTERFACE)
target_include_directories(wlb_openblas INTERFACE ${WLB_CBLAS_INCLUDE_DIR})
target_link_libraries(wlb_openblas INTERFACE ${WLB_OPENBLAS_LIBRARY})
