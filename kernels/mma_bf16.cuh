// Device helpers shared by the tensor-core attention kernels: the m16n8k16 bf16 MMA with fp32
// accumulation (PTX mma.sync, sm_80 and later) and the fragment loads from shared memory.
//
// Fragment layout of mma.sync.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//   A (16 x 16, row-major)  reg0 = A[g][2t..2t+1]    reg1 = A[g+8][2t..2t+1]
//                           reg2 = A[g][2t+8..2t+9]  reg3 = A[g+8][2t+8..2t+9]
//   B (16 x 8, k x n)       reg0 = B[2t..2t+1][g]    reg1 = B[2t+8..2t+9][g]
//   C (16 x 8, fp32)        c0, c1 = C[g][2t..2t+1]  c2, c3 = C[g+8][2t..2t+1]
// Two neighbouring C tiles (columns n and n + 8) hold, element for element, the A fragment of
// the 16 x 16 product of their columns: the FlashAttention-2 register reuse of P.
// Each 32-bit register holds two bf16, the lower column in the low half.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>

namespace wlb::kernels::cuda_detail {

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

/// Two consecutive bf16 of a row (p must be 4-byte aligned).
__device__ __forceinline__ std::uint32_t load_pair(const std::uint16_t* p) {
    return *reinterpret_cast<const std::uint32_t*>(p);
}

/// Two bf16 of one column in consecutive rows (row stride ld), the upper row in the high half:
/// a B fragment register read from a row-major k x n matrix.
__device__ __forceinline__ std::uint32_t load_column_pair(const std::uint16_t* p, int ld) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[ld]) << 16);
}

/// A fragment of the 16 x 16 block at (row0, col0) of a row-major bf16 matrix in shared memory.
__device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const std::uint16_t* m, int ld,
                                       int row0, int col0, int g, int t) {
    const std::uint16_t* p = m + (row0 + g) * ld + col0 + 2 * t;
    a[0] = load_pair(p);
    a[1] = load_pair(p + 8 * ld);
    a[2] = load_pair(p + 8);
    a[3] = load_pair(p + 8 * ld + 8);
}

/// B fragment of the 16 x 8 block B = M^T[k0.., n0..] where M is row-major n x k in shared
/// memory (B's columns are M's rows): the "col" operand read straight from M.
__device__ __forceinline__ void load_b_from_rows(std::uint32_t (&b)[2], const std::uint16_t* m,
                                                 int ld, int n0, int k0, int g, int t) {
    const std::uint16_t* p = m + (n0 + g) * ld + k0 + 2 * t;
    b[0] = load_pair(p);
    b[1] = load_pair(p + 8);
}

/// B fragment of the 16 x 8 block B = M[k0.., n0..] where M is row-major k x n in shared memory.
__device__ __forceinline__ void load_b_from_columns(std::uint32_t (&b)[2], const std::uint16_t* m,
                                                    int ld, int k0, int n0, int g, int t) {
    const std::uint16_t* p = m + (k0 + 2 * t) * ld + n0 + g;
    b[0] = load_column_pair(p, ld);
    b[1] = load_column_pair(p + 8 * ld, ld);
}

/// A fragments of a 16 x 16 block from two neighbouring fp32 C tiles (columns n0 and n0 + 8).
__device__ __forceinline__ void c_pair_to_a(std::uint32_t (&a)[4], const float (&lo)[4],
                                            const float (&hi)[4]) {
    a[0] = pack_bf16(lo[0], lo[1]);
    a[1] = pack_bf16(lo[2], lo[3]);
    a[2] = pack_bf16(hi[0], hi[1]);
    a[3] = pack_bf16(hi[2], hi[3]);
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
