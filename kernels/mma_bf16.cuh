// Device helpers shared by the tensor-core attention kernels: the m16n8k16 bf16 MMA with fp32
// accumulation (PTX mma.sync, sm_80 and later), bf16 packing, and the global-to-shared row copy.
// The fragment index arithmetic (and the layout table it follows) is kernels/mma_fragments.hpp,
// host-testable.
#pragma once

#include "kernels/mma_fragments.hpp"

#include <cstdint>
#include <cuda_bf16.h>

namespace wlb::kernels::cuda_detail {

using mma::load_a;
using mma::load_b_from_columns;
using mma::load_b_from_rows;

__device__ __forceinline__ void mma_16816(float (&c)[4], const std::uint32_t (&a)[4],
                                          const std::uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/// Two floats rounded to bf16 in one register, `lo` in the low half.
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
}

/// A fragments of a 16 x 16 block from two neighbouring fp32 C tiles (columns n0 and n0 + 8).
__device__ __forceinline__ void c_pair_to_a(std::uint32_t (&a)[4], const float (&lo)[4],
                                            const float (&hi)[4]) {
    mma::c_pair_to_a(a, lo, hi, [](float x, float y) { return pack_bf16(x, y); });
}

/// Copies `rows` rows of `cols` bf16 (cols a multiple of 8, 16-byte aligned rows) from global
/// memory into shared memory (row stride lds), zero-filling rows [rows, total_rows).
template <int Threads>
__device__ __forceinline__ void copy_rows(std::uint16_t* dst, int lds, const std::uint16_t* src,
                                          std::int64_t ld, int rows, int total_rows, int cols) {
    const int vectors = cols / 8;
    for (int i = threadIdx.x; i < total_rows * vectors; i += Threads) {
        const int r = i / vectors;
        const int v = i - r * vectors;
        uint4 value = make_uint4(0, 0, 0, 0);
        if (r < rows)
            value = *reinterpret_cast<const uint4*>(src + r * ld + v * 8);
        *reinterpret_cast<uint4*>(dst + r * lds + v * 8) = value;
    }
}

} // namespace wlb::kernels::cuda_detail
