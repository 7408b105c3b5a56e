#include "tuner/packing/pack_run.hpp"

#include "tuner/data/document_stream.hpp"

#include <chrono>
#include <fmt/format.h>

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

pack_result pack_stream(document_stream& stream, const packing_config& config,
                        const cost_model& costs, std::int64_t max_steps, const step_sink& sink,
                        std::vector<runtime::document>* waiting) {
    stream.rewind();
    auto p = make_packer(config, costs);
    run_measures m(costs, config);
    const document_pull pull = [&stream](std::int64_t step) {
        return stream.next(step);
    };
    run_packing(*p, pull, max_steps, m, sink);
    if (waiting)
        *waiting = p->waiting();
    return {describe(config), config, m.summary(), m.steps()};
}

namespace {
std::string tokens_text(std::int64_t t) {
    if (t % 1024 == 0)
        return fmt::format("{}k", t / 1024);
    return fmt::format("{}", t);
}
} // namespace

namespace {
// " M=8" when the step budget is held at another number of micro-batches (budget_tokens).
std::string micro_batches_text(const packing_config& c) {
    return c.budget_tokens > 0 ? fmt::format(" M={}", c.micro_batches) : std::string();
}
} // namespace

std::string describe(const packing_config& c) {
    switch (c.policy) {
    case packing_policy::fixed_greedy:
        return fmt::format("fixed-greedy W={}", c.window);
    case packing_policy::varlen:
        return fmt::format("varlen S_max={}{}", tokens_text(c.micro_batch_limit()),
                           micro_batches_text(c));
    case packing_policy::wlb: {
        std::string t;
        for (auto x : c.thresholds) {
            if (!t.empty())
                t += ',';
            t += tokens_text(x);
        }
        return fmt::format("wlb {}q [{}] S_max={}{}{}", c.thresholds.size(), t,
                           tokens_text(c.micro_batch_limit()), micro_batches_text(c),
                           c.max_delay_steps > 0 ? fmt::format(" K={}", c.max_delay_steps)
                                                 : std::string());
    }
    default:
        return std::string(to_string(c.policy));
    }
}

} // namespace wlb::tuner
