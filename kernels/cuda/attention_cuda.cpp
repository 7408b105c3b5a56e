// Host side of the CUDA attention (kernels/cuda_ops.hpp): the plan (tiling uploaded once), the
// choice of variant, and the checked launches of kernels/attention_{fwd,bwd,simt}.cu.
#include "base/error.hpp"
#include "kernels/attention_kernels.hpp"
#include "kernels/cuda_ops.hpp"

#include <cstdint>
#include <cuda_runtime_api.h>

namespace wlb::kernels::cuda {

namespace {

// The kernels hard-wire these tile sizes (thread counts and shared buffers).
static_assert(attention_fwd_tile_rows == 128 && attention_bwd_tile_keys == 64);

bool aligned16(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

} // namespace

std::string_view to_string(attention_variant v) noexcept {
    switch (v) {
    case attention_variant::automatic:
        return "automatic";
    case attention_variant::mma:
        return "mma";
    case attention_variant::simt:
        return "simt";
    }
    return "unknown";
}

struct attention_plan::impl {
    attention_tiling tiling;
    index heads = 1;
    index head_dim = 1;
    double scale = 1.0;
    attention_variant requested = attention_variant::automatic;
    device_buffer table; // chunk descs, then forward tiles, then backward tiles
    const attention_chunk_desc* chunks = nullptr;
    const attention_tile* fwd = nullptr;
    const attention_tile* bwd = nullptr;
    cudaEvent_t uploaded = nullptr; // recorded after the table's upload

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() {
        if (uploaded != nullptr)
            cudaEventDestroy(uploaded);
    }

    /// Orders the work queued next on `stream` after the table's upload.
    void wait_for_upload(stream_t stream) const {
        WLB_CUDA_CHECK(cudaStreamWaitEvent(stream, uploaded, 0));
    }
};

attention_plan::attention_plan(const attention_chunks& chunks, attention_variant variant,
                               stream_t stream)
    : m_impl(std::make_unique<impl>()) {
    auto& p = *m_impl;
    p.tiling = make_attention_tiling(chunks);
    p.heads = chunks.heads;
    p.head_dim = chunks.head_dim;
    p.scale = chunks.scale;
    p.requested = variant;
    WLB_EXPECTS(p.heads <= 65535, "attention: {} heads exceed the grid's 65535", p.heads);
    WLB_EXPECTS(p.tiling.fwd.size() < (1u << 31) && p.tiling.bwd.size() < (1u << 31),
                "attention: too many tiles");
    const std::size_t chunk_bytes = p.tiling.chunks.size() * sizeof(attention_chunk_desc);
    const std::size_t fwd_bytes = p.tiling.fwd.size() * sizeof(attention_tile);
    const std::size_t bwd_bytes = p.tiling.bwd.size() * sizeof(attention_tile);
    p.table = device_buffer(chunk_bytes + fwd_bytes + bwd_bytes);
    auto* base = static_cast<std::byte*>(p.table.data());
    copy_to_device(base, p.tiling.chunks.data(), chunk_bytes, stream);
    copy_to_device(base + chunk_bytes, p.tiling.fwd.data(), fwd_bytes, stream);
    copy_to_device(base + chunk_bytes + fwd_bytes, p.tiling.bwd.data(), bwd_bytes, stream);
    WLB_CUDA_CHECK(cudaEventCreateWithFlags(&p.uploaded, cudaEventDisableTiming));
    WLB_CUDA_CHECK(cudaEventRecord(p.uploaded, stream));
    p.chunks = reinterpret_cast<const attention_chunk_desc*>(base);
    p.fwd = reinterpret_cast<const attention_tile*>(base + chunk_bytes);
    p.bwd = reinterpret_cast<const attention_tile*>(base + chunk_bytes + fwd_bytes);
}

attention_plan::~attention_plan() = default;
attention_plan::attention_plan(attention_plan&&) noexcept = default;
attention_plan& attention_plan::operator=(attention_plan&&) noexcept = default;

const attention_tiling& attention_plan::tiling() const noexcept {
    return m_impl->tiling;
}
index attention_plan::heads() const noexcept {
    return m_impl->heads;
}
index attention_plan::head_dim() const noexcept {
    return m_impl->head_dim;
}
double attention_plan::scale() const noexcept {
    return m_impl->scale;
}
attention_variant attention_plan::requested() const noexcept {
    return m_impl->requested;
}

double attention_plan::forward_flops() const noexcept {
    return 4.0 * static_cast<double>(m_impl->tiling.causal_pairs) *
           static_cast<double>(m_impl->heads * m_impl->head_dim);
}

attention_variant attention_plan::resolve(std::span<const void* const> pointers,
                                          std::span<const index> strides) const {
    const auto& p = *m_impl;
    bool mma_ok = p.head_dim == 64 || p.head_dim == 128;
    for (const void* ptr : pointers)
        mma_ok = mma_ok && aligned16(ptr);
    for (index ld : strides)
        mma_ok = mma_ok && ld % 8 == 0;
    const bool simt_ok = p.head_dim <= cuda_detail::simt_max_head_dim;
    switch (p.requested) {
    case attention_variant::mma:
        WLB_EXPECTS(mma_ok,
                    "attention variant mma needs head_dim 64 or 128 (got {}), 16-byte aligned "
                    "pointers and strides that are multiples of 8",
                    p.head_dim);
        return attention_variant::mma;
    case attention_variant::simt:
        WLB_EXPECTS(simt_ok, "attention variant simt needs head_dim <= {}, got {}",
                    cuda_detail::simt_max_head_dim, p.head_dim);
        return attention_variant::simt;
    case attention_variant::automatic:
        break;
    }
    if (mma_ok)
        return attention_variant::mma;
    WLB_EXPECTS(simt_ok,
                "no CUDA attention variant runs head_dim {} (mma: 64 or 128 aligned; "
                "simt: up to {})",
                p.head_dim, cuda_detail::simt_max_head_dim);
    return attention_variant::simt;
}

namespace {

void check_strides(const attention_plan& plan, std::span<const index> strides) {
    const index width = plan.heads() * plan.head_dim();
    for (index ld : strides)
        WLB_EXPECTS(ld >= width, "attention: row stride {} below heads x head_dim = {}", ld, width);
}

} // namespace

void attention_forward(const attention_plan& plan, const bf16* q, index ldq, const bf16* k,
                       index ldk, const bf16* v, index ldv, bf16* out, index ldo, float* lse,
                       stream_t stream) {
    const index strides[] = {ldq, ldk, ldv, ldo};
    const void* pointers[] = {q, k, v, out};
    check_strides(plan, strides);
    const auto& p = plan.internals();
    cuda_detail::attention_fwd_args a;
    a.chunks = p.chunks;
    a.tiles = p.fwd;
    a.tile_count = static_cast<int>(p.tiling.fwd.size());
    a.heads = static_cast<int>(p.heads);
    a.head_dim = static_cast<int>(p.head_dim);
    a.scale = static_cast<float>(p.scale);
    a.q = q;
    a.ldq = ldq;
    a.k = k;
    a.ldk = ldk;
    a.v = v;
    a.ldv = ldv;
    a.out = out;
    a.ldo = ldo;
    a.lse = lse;
    const attention_variant variant = plan.resolve(pointers, strides);
    p.wait_for_upload(stream);
    if (variant == attention_variant::mma)
        WLB_CUDA_CHECK(static_cast<cudaError_t>(cuda_detail::attention_fwd_mma(a, stream)));
    else
        WLB_CUDA_CHECK(static_cast<cudaError_t>(cuda_detail::attention_fwd_simt(a, stream)));
}

void attention_backward(const attention_plan& plan, const bf16* q, index ldq, const bf16* k,
                        index ldk, const bf16* v, index ldv, const bf16* out, index ldo,
                        const bf16* dout, index lddo, const float* lse, bf16* dq, index lddq,
                        bf16* dk, index lddk, bf16* dv, index lddv, attention_workspace& workspace,
                        stream_t stream) {
    const index strides[] = {ldq, ldk, ldv, ldo, lddo, lddq, lddk, lddv};
    const void* pointers[] = {q, k, v, out, dout, dq, dk, dv};
    check_strides(plan, strides);
    const auto& p = plan.internals();
    const attention_variant variant = plan.resolve(pointers, strides);
    const auto total_q = static_cast<std::size_t>(p.tiling.total_q);
    const auto heads = static_cast<std::size_t>(p.heads);
    cuda_detail::attention_bwd_args a;
    a.chunks = p.chunks;
    a.key_tiles = p.bwd;
    a.key_tile_count = static_cast<int>(p.tiling.bwd.size());
    a.query_tiles = p.fwd;
    a.query_tile_count = static_cast<int>(p.tiling.fwd.size());
    a.total_q = p.tiling.total_q;
    a.heads = static_cast<int>(p.heads);
    a.head_dim = static_cast<int>(p.head_dim);
    a.scale = static_cast<float>(p.scale);
    a.q = q;
    a.ldq = ldq;
    a.k = k;
    a.ldk = ldk;
    a.v = v;
    a.ldv = ldv;
    a.out = out;
    a.ldo = ldo;
    a.dout = dout;
    a.lddo = lddo;
    a.lse = lse;
    a.delta = workspace.delta(total_q * heads);
    a.dq = dq;
    a.lddq = lddq;
    a.dk = dk;
    a.lddk = lddk;
    a.dv = dv;
    a.lddv = lddv;
    p.wait_for_upload(stream);
    if (variant == attention_variant::mma) {
        a.dq_accum = workspace.dq_accum(total_q * heads * static_cast<std::size_t>(p.head_dim));
        WLB_CUDA_CHECK(static_cast<cudaError_t>(cuda_detail::attention_bwd_mma(a, stream)));
    } else {
        WLB_CUDA_CHECK(static_cast<cudaError_t>(cuda_detail::attention_bwd_simt(a, stream)));
    }
}

float* attention_workspace::delta(std::size_t count) {
    m_delta.reserve_discard(count * sizeof(float));
    return m_delta.as<float>();
}

float* attention_workspace::dq_accum(std::size_t count) {
    m_dq_accum.reserve_discard(count * sizeof(float));
    return m_dq_accum.as<float>();
}

} // namespace wlb::kernels::cuda
