#include "tuner/pack_run.hpp"

#include <chrono>

namespace wlb::tuner {

void run_packing(packer& p, const document_pull& pull, std::int64_t max_steps,
                 run_measures& measures, const step_sink& sink) {
    using clock = std::chrono::steady_clock;
    for (std::int64_t step = 0; max_steps <= 0 || step < max_steps; ++step) {
        const auto start = clock::now();
        auto batch = p.pack(step, pull);
        const std::chrono::duration<double> elapsed = clock::now() - start;
        if (!batch)
            break;
        if (sink)
            sink(*batch);
        measures.add_step(*batch, static_cast<std::int64_t>(p.waiting().size()), elapsed.count());
    }
    measures.finish(p.waiting());
}

} // namespace wlb::tuner
