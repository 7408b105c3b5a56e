#include "profiler/ingest/kernel_names.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace wlb::profiler {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool has(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

bool starts(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// The operation word after "ncclKernel_" / "ncclDevKernel_", or inside an older name
// ("ncclAllReduceRingLLKernel_sum_f32"). `l` is the lowercased name.
nccl_op nccl_op_of(std::string_view l) {
    struct entry {
        std::string_view word;
        nccl_op op;
    };
    // Longer words first: "reducescatter" before "reduce", "sendrecv" before "send".
    constexpr std::array<entry, 10> words = {{{"allreduce", nccl_op::all_reduce},
                                              {"allgather", nccl_op::all_gather},
                                              {"reducescatter", nccl_op::reduce_scatter},
                                              {"alltoall", nccl_op::all_to_all},
                                              {"sendrecv", nccl_op::send_recv},
                                              {"broadcast", nccl_op::broadcast},
                                              {"generic", nccl_op::generic},
                                              {"reduce", nccl_op::reduce},
                                              {"send", nccl_op::send},
                                              {"recv", nccl_op::recv}}};
    std::string_view rest = l;
    for (std::string_view prefix : {"nccldevkernel_", "ncclkernel_", "nccl"})
        if (starts(rest, prefix)) {
            rest.remove_prefix(prefix.size());
            break;
        }
    for (const auto& w : words)
        if (starts(rest, w.word))
            return w.op;
    return nccl_op::generic;
}

} // namespace

kernel_info classify_kernel(std::string_view name) {
    const std::string l = lower(name);
    if (starts(l, "nccl"))
        return {kernel_kind::nccl, nccl_op_of(l)};
    // wlbtune's own attention kernels (kernels/attention_{fwd,bwd,simt}.cu).
    if (has(l, "wlb::kernels"))
        for (std::string_view a :
             {"fwd_mma", "bwd_mma", "bwd_delta", "dq_to_bf16", "fwd_simt", "dkdv_simt", "dq_simt"})
            if (has(l, a))
                return {kernel_kind::attention, nccl_op::none};
    // Attention before GEMMs: attention kernels are often CUTLASS or cuDNN generated kernels
    // whose names also say "gemm" or "cutlass".
    for (std::string_view a : {"flash", "fmha", "sdpa", "flex_attention", "flex_decoding",
                               "fused_attn", "attention", "mem_eff", "efficient_attention"})
        if (has(l, a))
            return {kernel_kind::attention, nccl_op::none};
    for (std::string_view g : {"gemm", "xmma", "nvjet", "cutlass", "s16816", "h16816", "s1688",
                               "h1688", "matmul", "wgmma", "cublas", "triton_tem_fused_mm",
                               "triton_tem_fused_addmm", "triton_tem_fused_bmm", "cijk_"})
        if (has(l, g))
            return {kernel_kind::linear, nccl_op::none};
    return {kernel_kind::other, nccl_op::none};
}

std::string_view nccl_op_name(nccl_op op) noexcept {
    switch (op) {
    case nccl_op::none:
        return "none";
    case nccl_op::all_reduce:
        return "all_reduce";
    case nccl_op::all_gather:
        return "all_gather";
    case nccl_op::reduce_scatter:
        return "reduce_scatter";
    case nccl_op::broadcast:
        return "broadcast";
    case nccl_op::reduce:
        return "reduce";
    case nccl_op::all_to_all:
        return "all_to_all";
    case nccl_op::send_recv:
        return "send_recv";
    case nccl_op::send:
        return "send";
    case nccl_op::recv:
        return "recv";
    case nccl_op::generic:
        break;
    }
    return "generic";
}

nccl_op nccl_op_from_collective_name(std::string_view name) {
    std::string l = lower(name);
    l.erase(std::remove(l.begin(), l.end(), '_'), l.end());
    if (has(l, "allreduce"))
        return nccl_op::all_reduce;
    if (has(l, "allgather"))
        return nccl_op::all_gather;
    if (has(l, "reducescatter"))
        return nccl_op::reduce_scatter;
    if (has(l, "alltoall"))
        return nccl_op::all_to_all;
    if (has(l, "broadcast"))
        return nccl_op::broadcast;
    if (has(l, "sendrecv"))
        return nccl_op::send_recv;
    if (has(l, "send"))
        return nccl_op::send;
    if (has(l, "recv"))
        return nccl_op::recv;
    if (has(l, "reduce"))
        return nccl_op::reduce;
    return nccl_op::none;
}

bool is_p2p(nccl_op op) noexcept {
    return op == nccl_op::send || op == nccl_op::recv || op == nccl_op::send_recv;
}

} // namespace wlb::profiler
