// ffd: first-fit-decreasing into fixed-length bins, as NeMo packs sequences.
//
// Each step holds one bin of the context length per micro-batch. The documents carried over go
// first (oldest first), then the newly drawn ones longest first; each goes into the first bin
// (lowest index) with room, else it is carried over. It minimises padding, not imbalance: it is
// here as the token-efficiency reference a peer framework uses.
#include "base/error.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>

namespace wlb::tuner {
namespace {

class ffd_packer final : public carry_over_packer {
public:
    explicit ffd_packer(const packing_config& c) : carry_over_packer(c, nullptr, c.step_tokens()) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        auto fresh = draw_fresh(step, pull);
        if (m_ended && fresh.empty() && m_carried.empty())
            return std::nullopt;
        step_builder b(m_config.step_micro_batches(), m_config.context_tokens,
                       m_config.step_tokens());
        std::vector<weighed_doc> left;
        auto first_fit = [&](const std::vector<weighed_doc>& docs) {
            for (const auto& d : docs) {
                int i = 0;
                while (i < b.size() && !b.fits(i, d.doc.tokens))
                    ++i;
                if (i < b.size())
                    b.place(i, d);
                else
                    left.push_back(d);
            }
        };
        sort_carried(m_carried);
        first_fit(m_carried);
        sort_longest_first(fresh);
        first_fit(fresh);
        m_carried = std::move(left);
        return b.finish(step, m_config.replicas);
    }

    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<ffd_packer>(*this);
    }
};

} // namespace

std::unique_ptr<packer> make_ffd_packer(const packing_config& config) {
    return std::make_unique<ffd_packer>(config);
}

} // namespace wlb::tuner
