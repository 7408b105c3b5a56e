#include "profiler/analysis/analysis.hpp"

#include "base/error.hpp"
#include "profiler/ingest/collectives.hpp"

#include <charconv>
#include <fmt/format.h>

namespace wlb::profiler {

analysis_result analyze_job(job_trace job, bool keep_ideal) {
    analysis_result out;
    out.job = std::move(job);
    const step_index index(out.job);
    const auto instances = match_collectives(out.job);
    out.breakdown = compute_breakdown(out.job);
    out.stragglers = find_stragglers(out.job, index, instances);
    attribution_options ao;
    ao.keep_ideal = keep_ideal;
    work_checker checker(out.job.batches, ao.noise);
    ao.observe = [&](const measured_step& m, const step_attribution& a) {
        checker.add(m, a);
    };
    out.attribution = attribute(out.job, index, instances, ao);
    out.work = std::move(checker).finish();
    return out;
}

std::string step_range::describe() const {
    if (first && last && *first == *last)
        return fmt::format("{}", *first);
    return fmt::format("{}:{}", first ? fmt::format("{}", *first) : "",
                       last ? fmt::format("{}", *last) : "");
}

step_range parse_step_range(std::string_view text) {
    const auto bad = [&] {
        return input_error(fmt::format("--steps \"{}\": expected A:B, A:, :B or A (step ids >= 0, "
                                       "A <= B)",
                                       text));
    };
    const auto number = [&](std::string_view s) -> std::optional<std::int64_t> {
        if (s.empty())
            return std::nullopt;
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || v < 0)
            throw bad();
        return v;
    };
    step_range r;
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        r.first = r.last = number(text);
        if (!r.first)
            throw bad();
        return r;
    }
    r.first = number(text.substr(0, colon));
    r.last = number(text.substr(colon + 1));
    if ((r.first && r.last && *r.first > *r.last) || r.all())
        throw bad();
    return r;
}

void select_steps(job_trace& job, const step_range& range) {
    if (range.all())
        return;
    const auto inside = [&](std::int64_t s) {
        return (!range.first || s >= *range.first) && (!range.last || s <= *range.last);
    };
    std::vector<std::int64_t> kept;
    for (const auto s : job.steps)
        if (inside(s))
            kept.push_back(s);
    const auto span = [](const std::vector<std::int64_t>& v) {
        return v.empty()       ? std::string("none")
               : v.size() == 1 ? fmt::format("{}", v.front())
                               : fmt::format("{}-{}", v.front(), v.back());
    };
    if (kept.empty())
        throw input_error(fmt::format("--steps \"{}\" leaves no step: the trace has steps {}",
                                      range.describe(), span(job.steps)));
    job.step_selection =
        fmt::format("steps {} of {} (--steps {})", span(kept), span(job.steps), range.describe());
    for (auto& rt : job.ranks) {
        std::erase_if(rt.events,
                      [&](const job_event& e) { return e.step >= 0 && !inside(e.step); });
        std::erase_if(rt.summaries, [&](const step_summary& s) { return !inside(s.step); });
    }
    std::erase_if(job.batches, [&](const runtime::sharded_step& b) { return !inside(b.step); });
    job.steps = std::move(kept);
}

analysis_result analyze(const std::vector<std::string>& paths, const analysis_options& options) {
    auto job = ingest(paths, options.ingest);
    select_steps(job, options.steps);
    return analyze_job(std::move(job), options.keep_ideal);
}

} // namespace wlb::profiler
