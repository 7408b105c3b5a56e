#!/usr/bin/env bash
# Builds the GPU tests and benchmarks on a development machine (no GPU needed) and packs them,
# with what they need that a GPU machine lacks, into one archive for scripts/gpu-check.sh
# --bundle (docs/cuda-runtime.md, "GPU check").
#
#   scripts/gpu-bundle.sh          the archive's path is the last line printed
#
# What the archive holds (wlbtune-gpu/):
#   bin/           wlb_gpu_tests, wlb_gpu_probe, bench_cuda_attention, bench_cuda_capture,
#                  bench_cuda_cp_emulation, bench_cuda_run and wlbtune, stripped; cudart linked
#                  static; MPI off
#                  (the GPU machine has no MPI and the GPU tests do not need it)
#   lib/           the non-CUDA shared libraries they load (found with ldd: fmt, simdjson,
#                  xxHash, zlib, OpenBLAS and its Fortran runtime, ...), under their sonames
#   lib/fallback/  libstdc++ and libgcc_s, used only where the machine's own are too old
#   share/         wlbllm_doc_lengths.json (bench_cuda_cp_emulation's data), when present
#   bin/libwlbtune_inject.so   the injection library `wlbtune profile` loads into a job (beside
#                  wlbtune, where wlbtune looks for it; self-contained: it needs libc only)
#   gpu/           sdpa_peer.py (PyTorch's attention on the same shapes); profile_check.sh and
#                  profile_train.py (wlbtune profile on a PyTorch job, docs/profile.md)
#   MANIFEST       commit, date, toolkit, architectures, the CUDA libraries the binaries need
#                  (not carried: the GPU machine's toolkit or PyTorch's wheels provide them)
#
# Environment:
#   WLB_BUNDLE_BUILD_DIR   build directory (default: build-gpu in the repository; the archive
#                          goes next to the tree: build-gpu/wlbtune-gpu-bundle.tar.gz)
#   WLB_BUNDLE_ARCH        CUDA architectures (default 90: H100/H200)
#   WLB_BUNDLE_JOBS        parallel build jobs (default: the number of cores)
#   WLB_SHARED_DATA_DIR    where wlbllm_doc_lengths.json is (default: ../shared/data)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${WLB_BUNDLE_BUILD_DIR:-$root/build-gpu}
arch=${WLB_BUNDLE_ARCH:-90}
jobs=${WLB_BUNDLE_JOBS:-$(nproc)}
archive=$build/wlbtune-gpu-bundle.tar.gz
stage_root=$build/bundle
stage=$stage_root/wlbtune-gpu
targets=(wlb_gpu_tests wlb_gpu_probe bench_cuda_attention bench_cuda_capture
  bench_cuda_cp_emulation bench_cuda_run wlbtune)

say() { printf '== %s\n' "$*" >&2; }
die() {
  printf 'gpu-bundle: error: %s\n' "$*" >&2
  exit 1
}

# ---- build ----------------------------------------------------------------------------------
configure=(-S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DWLB_CUDA=ON -DWLB_MPI=OFF
  -DWLB_GPU_TESTS=ON -DWLB_BENCH=ON -DWLB_TESTS=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch"
  # Only the libraries a binary uses become its dependencies (OpenBLAS is not everyone's).
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed")
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then
  configure+=(-G Ninja)
fi
if command -v ccache >/dev/null; then
  configure+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
say "configure $build (CUDA architectures $arch, MPI off)"
mkdir -p "$build"
cmake "${configure[@]}" >"$build/configure.log" 2>&1 ||
  {
    tail -30 "$build/configure.log" >&2
    die "configure failed (log: $build/configure.log)"
  }
say "build ${targets[*]} ($jobs jobs)"
cmake --build "$build" -j "$jobs" --target "${targets[@]}" wlbtune_inject >&2 || die "build failed"

# ---- stage ----------------------------------------------------------------------------------
rm -rf "$stage_root"
mkdir -p "$stage/bin" "$stage/lib/fallback" "$stage/share" "$stage/gpu"
declare -A carried=() cuda_needed=()
for t in "${targets[@]}"; do
  exe=$(find "$build" -path "$stage_root" -prune -o -type f -name "$t" -perm -u+x -print | head -1)
  [[ -n $exe ]] || die "built target $t not found under $build"
  strip -o "$stage/bin/$t" "$exe"
  while read -r name _ path _; do
    case $name in
      linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | \
        librt.so.* | libutil.so.* | libresolv.so.*) ;; # the C library: the machine's own
      libcuda.so.* | libcublas*.so.* | libcupti.so.* | libnccl.so.* | libcudnn*.so.* | \
        libnvrtc*.so.* | libnvJitLink.so.* | libcudart.so.*)
        cuda_needed[$name]=1 ;;
      libstdc++.so.* | libgcc_s.so.*)
        [[ -n ${carried[$name]:-} ]] || cp -L "$path" "$stage/lib/fallback/$name"
        carried[$name]=fallback ;;
      *)
        [[ $path == /* ]] || die "$t needs $name, which ldd does not find here"
        [[ -n ${carried[$name]:-} ]] || cp -L "$path" "$stage/lib/$name"
        carried[$name]=lib ;;
    esac
  done < <(ldd "$exe" | awk '/=>/ { print $1, $2, $3 }
    !/=>/ { n = $1; sub(".*/", "", n); print n, "=>", $1 }')
done
# Libraries the carried ones need that the executables do not name (ldd lists the closure, so
# this only catches a library ldd resolved through a carried one).
for lib in "$stage"/lib/*.so*; do
  while read -r name _ path _; do
    [[ -n ${carried[$name]:-} || $name == ld-linux* || $name == lib[cm].so.* ||
      $name == libpthread.so.* || $name == libdl.so.* || $name == librt.so.* ||
      $name == linux-vdso.so.* ]] && continue
    die "$(basename "$lib") needs $name, which the bundle does not carry"
  done < <(ldd "$lib" | awk '/=>/ { print $1, $2, $3 }')
done
data=${WLB_SHARED_DATA_DIR:-$root/../shared/data}/wlbllm_doc_lengths.json
if [[ -f $data ]]; then
  cp "$data" "$stage/share/"
else
  say "warning: $data not found: bench_cuda_cp_emulation will run its synthetic micro-batch only"
fi
cp "$root/scripts/gpu/sdpa_peer.py" "$root/scripts/gpu/profile_check.sh" \
  "$root/scripts/gpu/profile_train.py" "$stage/gpu/"
# The injection library beside wlbtune; it must need nothing but the C library.
strip --strip-unneeded -o "$stage/bin/libwlbtune_inject.so" "$build/libwlbtune_inject.so" ||
  die "libwlbtune_inject.so not built"
inject_needs=$(objdump -p "$stage/bin/libwlbtune_inject.so" | awk '/NEEDED/ { print $2 }' |
  grep -vE '^(libc|libm|libdl|libpthread)\.so|^ld-linux' || true)
[[ -z $inject_needs ]] || die "libwlbtune_inject.so needs $inject_needs"
{
  echo "wlbtune GPU bundle"
  echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)$(
    git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "toolkit: nvcc $(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/\1/p' \
    "$build"/CMakeFiles/*/CMakeCUDACompiler.cmake 2>/dev/null | head -1)"
  echo "architectures: $arch"
  echo "glibc: $(ldd --version | head -1)"
  echo "cuda-needed: $(printf '%s\n' "${!cuda_needed[@]}" | sort | tr '\n' ' ')"
  echo "carried: $(for n in "${!carried[@]}"; do echo "$n(${carried[$n]})"; done | sort | tr '\n' ' ')"
} >"$stage/MANIFEST"

# ---- pack -----------------------------------------------------------------------------------
tar -C "$stage_root" -cf - wlbtune-gpu | gzip -9 >"$archive.part"
mv "$archive.part" "$archive"
bytes=$(stat -c %s "$archive")
say "bundle: $(awk -v b="$bytes" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'), \
unpacked $(du -sh "$stage" | cut -f1); CUDA libraries needed on the GPU machine: \
$(printf '%s ' "${!cuda_needed[@]}")"
echo "$archive"
