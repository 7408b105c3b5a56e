#include "reports/tune_report.hpp"

#include "reports/table.hpp"

#include <fmt/format.h>

namespace wlb::reports {
namespace {

std::string ratio_text(double baseline, double winner) {
    return winner > 0.0 ? fmt::format("{:.3f}x", baseline / winner) : std::string("-");
}

std::string delay_limit(const tune_context& c) {
    std::string s = fmt::format("limit {:.2g} mean", c.max_mean_delay);
    if (c.max_delay_steps > 0)
        s += fmt::format(", {} max", c.max_delay_steps);
    return s;
}

void add_row(table& t, const std::string& role, const tuner::candidate_result& r,
             const tuner::candidate_result& plain) {
    t.add_row({role, r.name, fmt::format("{:.4f}", r.mean_step_seconds),
               ratio_text(plain.mean_step_seconds, r.mean_step_seconds),
               fmt::format("{:.3f}", r.imbalance), fmt::format("{:.3f}", r.cp_imbalance),
               fmt::format("{:.1f}%", 100.0 * r.bubble_fraction),
               fmt::format("{:.3f}", r.delay_mean), fmt::format("{:.0f}", r.delay_max),
               fmt::format("{:.1f}", r.memory_peak_gbytes),
               r.feasible ? std::string("yes") : "no: " + r.infeasible});
}

} // namespace

std::string tune_text(const tune_context& c, const tuner::tune_result& r) {
    const auto& w = r.winner;
    std::string out = fmt::format(
        "wlbtune tune | data {} ({} documents, {} tokens) | model {} on {} | layout {} | "
        "context {} tokens\n"
        "every candidate on the same {} steps of these documents; step times are SIMULATED "
        "(predicted by the cost model and the step simulator), not measured\n\n",
        c.data, c.documents, c.tokens, c.model, c.hardware, c.layout, c.context_tokens,
        r.sample_steps);
    out += fmt::format("tuned: {}\n", w.name);
    out += fmt::format(
        "  predicted step {:.4f} s: {} vs plain + per-seq, {} vs {}, {} vs the "
        "paper's settings ({})\n",
        w.mean_step_seconds, ratio_text(r.plain.mean_step_seconds, w.mean_step_seconds),
        ratio_text(r.fixed_greedy.mean_step_seconds, w.mean_step_seconds), r.fixed_greedy.name,
        ratio_text(r.paper.mean_step_seconds, w.mean_step_seconds), r.paper.name);
    out += fmt::format("  delay {:.3f} iterations per token mean, p99 {:.0f}, max {:.0f} ({}); "
                       "memory peak {:.1f} GB of {:.1f} GB usable (estimated)\n\n",
                       w.delay_mean, w.delay_p99, w.delay_max, delay_limit(c), w.memory_peak_gbytes,
                       r.winner_memory.usable_bytes / 1e9);

    using a = table::align;
    table t({"", "configuration", "step s", "vs plain", "imbalance", "CP imb.", "bubble", "delay",
             "max", "memory GB", "feasible"},
            {a::left, a::left, a::right, a::right, a::right, a::right, a::right, a::right, a::right,
             a::right, a::left});
    add_row(t, "tuned", w, r.plain);
    for (std::size_t i = 0; i < r.runners_up.size(); ++i)
        add_row(t, fmt::format("#{}", i + 2), r.runners_up[i], r.plain);
    t.add_rule();
    add_row(t, "paper", r.paper, r.plain);
    add_row(t, "fixed-greedy", r.fixed_greedy, r.plain);
    add_row(t, "plain", r.plain, r.plain);
    out += t.render();
    out += "vs plain: speedup over plain + per-seq (Megatron's fixed-length packing, documents "
           "cut at sequence boundaries); imbalance: max / mean predicted forward work over a "
           "step's micro-batches; CP imb.: max / mean attention over CP ranks (weighted); bubble: "
           "idle share of the step; delay in iterations per token (mean) and steps (max)\n";

    if (!r.knobs.empty()) {
        out += "\nwhat each knob bought (the tuned configuration with that knob alone set back):\n";
        table k({"knob", "tuned", "set back to", "step s", "slower by", "delay", "feasible"},
                {a::left, a::left, a::left, a::right, a::right, a::right, a::left});
        for (const auto& e : r.knobs)
            k.add_row({e.knob, e.tuned, e.reverted,
                       fmt::format("{:.4f}", e.without.mean_step_seconds),
                       fmt::format("{:+.1f}%", 100.0 * (e.slowdown - 1.0)),
                       fmt::format("{:.3f}", e.without.delay_mean),
                       e.without.feasible ? std::string("yes") : "no: " + e.without.infeasible});
        out += k.render();
    }

    const auto& s = r.stability;
    out += fmt::format(
        "\nsearch: {} evaluations in {:.1f} s on {} thread(s); sample {} steps. ranking "
        "stability over {} feasible candidates, first vs second half of the sample ({} steps "
        "each): Kendall tau {:.2f}; choosing on one half loses {:.2f}% on the other ({}){}\n",
        r.evaluations, r.elapsed_seconds, r.threads, r.sample_steps, s.candidates, s.steps_per_half,
        s.kendall_tau, 100.0 * s.regret, s.stable ? "stable" : "NOT stable",
        s.growths > 0 ? fmt::format("; the sample was doubled {} time(s)", s.growths) : "");
    for (const auto& n : r.notes)
        out += fmt::format("note: {}\n", n);
    return out;
}

std::string tune_progress_line(const tuner::tune_progress& p) {
    std::string line = fmt::format("wlbtune tune: [{}] {}/{}  {} evaluated  {:.1f} s", p.phase,
                                   p.done, p.total, p.evaluated, p.elapsed_seconds);
    if (p.best_step_seconds > 0.0)
        line += fmt::format("  best {:.4f} s ({})", p.best_step_seconds, p.best);
    return line;
}

std::string tune_outcome_text(const tuner::job_spec& job, const tuner::tune_outcome& outcome,
                              const tuner::tune_options& options, const std::string& config_path) {
    tune_context ctx;
    ctx.data = outcome.documents.description;
    ctx.documents = outcome.config.data.documents;
    ctx.tokens = outcome.documents.tokens;
    ctx.layout = job.layout.spec();
    ctx.model = job.model.name;
    ctx.hardware = job.hardware.name;
    ctx.context_tokens = job.context_tokens;
    ctx.max_mean_delay = options.constraints.max_mean_delay;
    ctx.max_delay_steps = options.constraints.max_delay_steps;
    auto text = tune_text(ctx, outcome.result);
    if (!config_path.empty())
        text += fmt::format("\ntuned config: {} (wlbtune.config/1). Apply it: wlbtune pack "
                            "--config {} -o plan.jsonl.gz; the first {} steps are the ones "
                            "simulated here.\n",
                            config_path, config_path, outcome.result.sample_steps);
    return text;
}

} // namespace wlb::reports
