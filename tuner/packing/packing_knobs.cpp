#include "tuner/packing/packing_knobs.hpp"

#include "base/error.hpp"

#include <fmt/format.h>

namespace wlb::tuner {

packing_config make_packing_config(const packing_knobs& k, const runtime::layout& l) {
    packing_config c;
    c.policy = parse_packing_policy(k.policy);
    c.context_tokens = k.context_tokens;
    c.replicas = l.dp();
    if (k.micro_batches < 0)
        throw input_error(fmt::format("--micro-batches must be >= 0 (0: the layout's pp), found {}",
                                      k.micro_batches));
    c.micro_batches = k.micro_batches > 0 ? k.micro_batches : l.pp();
    c.smax_tokens = parse_smax(k.smax, k.context_tokens);
    if (k.queues < 0)
        throw input_error(fmt::format("--queues must be >= 0, found {}", k.queues));
    c.thresholds = k.thresholds.empty() ? default_thresholds(k.queues, k.context_tokens)
                                        : parse_thresholds(k.thresholds);
    if (k.window < 1)
        throw input_error(fmt::format("--window must be >= 1, found {}", k.window));
    c.window = k.window;
    if (k.max_delay < 0)
        throw input_error(
            fmt::format("--max-delay must be >= 0 (0: no bound), found {}", k.max_delay));
    if (k.max_delay > 0 && c.policy != packing_policy::wlb)
        throw input_error(fmt::format("--max-delay bounds the wait in wlb's outlier queues; "
                                      "policy {} has no queues",
                                      k.policy));
    c.max_delay_steps = k.max_delay;
    validate(c);
    return c;
}

} // namespace wlb::tuner
