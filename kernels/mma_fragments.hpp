// Fragment index arithmetic of mma.sync.m16n8k16 with bf16 operands, shared by the tensor-core
// attention kernels (through kernels/mma_bf16.cuh) and by a unit test that checks it against the
// PTX layout table on the host: C++17, no CUDA header.
//
// Layout (PTX ISA, "Matrix fragments for mma.m16n8k16"), g = lane / 4, t = lane % 4; each 32-bit
// register holds two bf16, the lower column (or row, for B) in the low half:
//   A (16 x 16, row-major)  reg0 = A[g][2t..2t+1]    reg1 = A[g+8][2t..2t+1]
//                           reg2 = A[g][2t+8..2t+9]  reg3 = A[g+8][2t+8..2t+9]
//   B (16 x 8, k x n)       reg0 = B[2t..2t+1][g]    reg1 = B[2t+8..2t+9][g]
//   C (16 x 8, fp32)        c0, c1 = C[g][2t..2t+1]  c2, c3 = C[g+8][2t..2t+1]
// Two neighbouring C tiles (columns n and n + 8) hold, element for element, the A fragment of
// the 16 x 16 product of their columns (FlashAttention-2's register reuse of P).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define WLB_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define WLB_HOST_DEVICE inline
#endif

namespace wlb::kernels::mma {

/// Two consecutive bf16 of a row (p 4-byte aligned), the first in the low half.
WLB_HOST_DEVICE std::uint32_t load_pair(const std::uint16_t* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const std::uint32_t*>(p);
#else
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 16);
#endif
}

/// Two bf16 of one column in consecutive rows (row stride ld), the upper row in the high half.
WLB_HOST_DEVICE std::uint32_t load_column_pair(const std::uint16_t* p, int ld) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[ld]) << 16);
}

/// A fragment of the 16 x 16 block at (row0, col0) of a row-major bf16 matrix.
WLB_HOST_DEVICE void load_a(std::uint32_t (&a)[4], const std::uint16_t* m, int ld, int row0,
                            int col0, int g, int t) {
    const std::uint16_t* p = m + (row0 + g) * ld + col0 + 2 * t;
    a[0] = load_pair(p);
    a[1] = load_pair(p + 8 * ld);
    a[2] = load_pair(p + 8);
    a[3] = load_pair(p + 8 * ld + 8);
}

/// B fragment of the 16 x 8 block B = M^T[k0.., n0..] where M is row-major n x k (B's columns
/// are M's rows): the "col" operand read straight from M.
WLB_HOST_DEVICE void load_b_from_rows(std::uint32_t (&b)[2], const std::uint16_t* m, int ld, int n0,
                                      int k0, int g, int t) {
    const std::uint16_t* p = m + (n0 + g) * ld + k0 + 2 * t;
    b[0] = load_pair(p);
    b[1] = load_pair(p + 8);
}

/// B fragment of the 16 x 8 block B = M[k0.., n0..] where M is row-major k x n.
WLB_HOST_DEVICE void load_b_from_columns(std::uint32_t (&b)[2], const std::uint16_t* m, int ld,
                                         int k0, int n0, int g, int t) {
    const std::uint16_t* p = m + (k0 + 2 * t) * ld + n0 + g;
    b[0] = load_column_pair(p, ld);
    b[1] = load_column_pair(p + 8 * ld, ld);
}

/// A fragment of a 16 x 16 block from two neighbouring fp32 C tiles (columns n0 and n0 + 8);
/// `pack(lo, hi)` rounds two floats to bf16 into one register.
template <typename Pack>
WLB_HOST_DEVICE void c_pair_to_a(std::uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4],
                                 Pack pack) {
    a[0] = pack(lo[0], lo[1]);
    a[1] = pack(lo[2], lo[3]);
    a[2] = pack(hi[0], hi[1]);
    a[3] = pack(hi[2], hi[3]);
}

} // namespace wlb::kernels::mma
