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
    if (k.micro_batches > max_micro_batches)
        throw input_error(fmt::format("--micro-batches must be at most {} per replica, found {}",
                                      max_micro_batches, k.micro_batches));
    c.micro_batches = k.micro_batches > 0 ? k.micro_batches : l.pp();
    c.smax_tokens = parse_smax(k.smax, k.context_tokens);
    if (k.queues < 0)
        throw input_error(fmt::format("--queues must be >= 0, found {}", k.queues));
    if (k.queues > max_queues)
        throw input_error(
            fmt::format("--queues must be at most {}, found {}", max_queues, k.queues));
    c.thresholds = k.thresholds.empty() ? default_thresholds(k.queues, k.context_tokens)
                                        : parse_thresholds(k.thresholds);
    if (k.window < 1)
        throw input_error(fmt::format("--window must be >= 1, found {}", k.window));
    if (k.window > max_window_bins / (static_cast<std::int64_t>(c.replicas) * c.micro_batches))
        throw input_error(fmt::format("--window {} x {} micro-batches per step exceeds {} "
                                      "micro-batches in one window",
                                      k.window, c.replicas * c.micro_batches, max_window_bins));
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
