// What a GPU kernel is, told by its name (the only thing every profiler records):
//
//   NCCL        ncclKernel_<Op>_<algo>_<proto>_<redop>_<type>  (NCCL < 2.19)
//               ncclDevKernel_<Op>_<redop>_<type>_<algo>_<proto> (NCCL >= 2.19; HTA misses these)
//               ncclDevKernel_SendRecv, ncclDevKernel_Generic, nccl<Op>...Kernel (older still)
//   attention   FlashAttention 2/3 (flash_fwd*, flash_bwd*, flash::*), cuDNN SDPA
//               (cudnn_generated_fort_native_sdpa*, *sdpa*), FlexAttention (flex_attention,
//               flex_decoding Triton templates), Transformer Engine fused_attn, CUTLASS fmha,
//               xformers (efficient_attention / mem_eff), wlbtune's own (wlb::kernels::...
//               fwd_mma, bwd_mma, bwd_delta, dq_to_bf16, fwd_simt, dkdv_simt, dq_simt)
//   linear      GEMMs: cuBLAS / cuBLASLt (*gemm*, sm90_xmma*, nvjet*, ampere_* / volta_*
//               s16816 / h16816 kernels), CUTLASS (cutlass* that is not fmha), Triton matmul
//               templates (triton_tem_fused_mm*, *_mm_* / *addmm*), ROCm Cijk_*
//   other       everything else (element-wise, norms, softmax, optimizer, copies)
#pragma once

#include <string_view>

namespace wlb::profiler {

enum class kernel_kind { attention, linear, other, nccl };

/// Collective or transfer a NCCL kernel runs.
enum class nccl_op {
    none,
    all_reduce,
    all_gather,
    reduce_scatter,
    broadcast,
    reduce,
    all_to_all,
    send_recv,
    send,
    recv,
    generic
};

struct kernel_info {
    kernel_kind kind = kernel_kind::other;
    nccl_op op = nccl_op::none; ///< kind nccl only
};

kernel_info classify_kernel(std::string_view name);

/// "all_reduce", "send_recv", ...
std::string_view nccl_op_name(nccl_op op) noexcept;
/// From a record_param_comms "Collective name" ("allreduce", "_allgather_base",
/// "reduce_scatter_tensor_coalesced", "send", "recv", ...). none when not recognized.
nccl_op nccl_op_from_collective_name(std::string_view name);
/// True for point-to-point transfers (send, recv, send_recv).
bool is_p2p(nccl_op op) noexcept;

} // namespace wlb::profiler
