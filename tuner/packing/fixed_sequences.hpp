// The intake the fixed-length packers share (plain, plain-whole): one sequence of at most the
// context per micro-batch, filled in dataloader order, micro-batch 0 of replica 0 first; what does
// not fit the step's last sequence waits as the pending document and opens the next step. The
// policies differ only in how a document is placed (cut at sequence boundaries, or kept whole).
#pragma once

#include "tuner/packing/packing_common.hpp"

#include <optional>

namespace wlb::tuner {

class fixed_sequence_packer : public packer {
public:
    std::optional<runtime::global_batch> pack(std::int64_t step, const document_pull& pull) final;
    [[nodiscard]] std::vector<runtime::document> waiting() const final;
    [[nodiscard]] packer_state save_state() const final;
    void load_state(const packer_state& s) final;

protected:
    explicit fixed_sequence_packer(const packing_config& c) : packer(c) {}

    /// Places `d` into the step being filled (m_filling); whatever does not fit past the step's
    /// last sequence is left in m_pending, drawn at `step + 1`.
    virtual void place(runtime::document d, std::int64_t step) = 0;

    /// The step being filled (packer.hpp, "Resumable intake").
    struct filling {
        bool active = false;
        std::vector<runtime::micro_batch> mbs;
        std::int64_t placed = 0;
        int current = 0;
        std::int64_t space = 0;
    };

    std::optional<runtime::document> m_pending; ///< what opens the next step
    filling m_filling;
    bool m_ended = false;
};

} // namespace wlb::tuner
