#include "tuner/sharding/varlen_shapes.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <limits>

namespace wlb::tuner {

varlen_shapes make_varlen_shapes(const runtime::cp_shard& shard) {
    constexpr std::int64_t most = std::numeric_limits<std::int32_t>::max();
    varlen_shapes s;
    const auto n = shard.chunks.size();
    s.cu_seqlens_q.reserve(n + 1);
    s.cu_seqlens_k.reserve(n + 1);
    s.q_offsets.reserve(n);
    std::int64_t q = 0;
    std::int64_t k = 0;
    s.cu_seqlens_q.push_back(0);
    s.cu_seqlens_k.push_back(0);
    for (const auto& c : shard.chunks) {
        q += c.q_tokens;
        k += c.kv_tokens();
        if (q > most || k > most)
            throw input_error(fmt::format("a CP rank holds more than {} {} tokens: its varlen "
                                          "shapes do not fit int32",
                                          most, q > most ? "query" : "key"));
        s.cu_seqlens_q.push_back(static_cast<std::int32_t>(q));
        s.cu_seqlens_k.push_back(static_cast<std::int32_t>(k));
        s.q_offsets.push_back(static_cast<std::int32_t>(c.q_offset));
        s.max_seqlen_q = std::max(s.max_seqlen_q, static_cast<std::int32_t>(c.q_tokens));
        s.max_seqlen_k = std::max(s.max_seqlen_k, static_cast<std::int32_t>(c.kv_tokens()));
    }
    return s;
}

} // namespace wlb::tuner
