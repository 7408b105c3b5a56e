// varlen: WLB-LLM's variable-length packing (Algorithm 1) without outlier queues.
//
// Each step: the documents carried over from the last step go first (oldest first), then the
// newly drawn ones longest first; each is placed on the micro-batch of least predicted forward
// work (cost_model::document_fwd_seconds) if the micro-batch stays within S_max tokens and the
// step within its token budget, else on the micro-batch of fewest tokens if that fits, else it is
// carried over to the next step. Micro-batches therefore differ in tokens (up to S_max) so that
// they can match in work.
#include "base/error.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/packing_common.hpp"

#include <algorithm>

namespace wlb::tuner {
namespace {

class varlen_packer final : public carry_over_packer {
public:
    varlen_packer(const packing_config& c, const cost_model& costs)
        : carry_over_packer(c, &costs, c.step_tokens()) {}

    std::optional<runtime::global_batch> pack(std::int64_t step,
                                              const document_pull& pull) override {
        auto fresh = draw_fresh(step, pull);
        if (m_ended && fresh.empty() && m_carried.empty())
            return std::nullopt;
        step_builder b(m_config.step_micro_batches(), m_config.micro_batch_limit(),
                       m_config.step_tokens());
        std::vector<weighed_doc> left;
        sort_carried(m_carried);
        place_least_work(b, m_carried, left);
        sort_longest_first(fresh);
        place_least_work(b, fresh, left);
        m_carried = std::move(left);
        return b.finish(step, m_config.replicas);
    }

    [[nodiscard]] std::unique_ptr<packer> clone() const override {
        return std::make_unique<varlen_packer>(*this);
    }
};

} // namespace

std::unique_ptr<packer> make_varlen_packer(const packing_config& config, const cost_model& costs) {
    return std::make_unique<varlen_packer>(config, costs);
}

} // namespace wlb::tuner
