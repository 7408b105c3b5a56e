// wlbtune run: execute real 4D-parallel training steps (forward, backward, gradient reduction,
// optimizer) on the ranks mpirun started, print per-step measured time and loss beside the
// simulator's prediction, and write the job's trace (host timers, wlbtune.trace/1).
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "cli/command.hpp"
#include "cli/common_options.hpp"
#include "reports/perfetto.hpp"
#include "reports/run_report.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/trace/trace.hpp"
#include "runtime/train/make_backend.hpp"
#include "runtime/train/train_run.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/open_document_source.hpp"
#include "tuner/packing/pack_run.hpp"
#include "tuner/search/run_job.hpp"
#include "tuner/search/tuned_config.hpp"
#include "tuner/sharding/make_sharder.hpp"

#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

namespace wlb::cli {
namespace {

struct run_options {
    std::string backend = "cpu";
    std::string layout = "tp=1,cp=1,pp=1,dp=1";
    std::string order = std::string(runtime::layout::default_order);
    std::string model = "tiny";
    std::string data = "default";
    std::string config;
    bool data_given = false;
    stream_option_values stream; ///< --context 4k by default (register_run)
    packing_option_values packing;
    sharding_option_values sharding;
    std::string schedule = "auto";
    std::int64_t steps = 3;
    std::string precision = "float";
    std::uint64_t seed = 1;
    double learning_rate = 1e-2;
    std::string hardware = "cpu-dev-vm";
    double watchdog_seconds = runtime::default_watchdog_seconds;
    std::string trace_dir;
    std::string trace;
    std::string json_path;
};

void run_run(const run_options& o) {
    // Everything that can be refused is refused before MPI starts and before any work.
    // --config: the layout, context, data order, packing, sharding and schedule as tuned; the
    // decoder (--model), the costs it balances with (--hardware) and --steps stay the run's.
    const auto tuned = read_tuned_config_option(o.config);
    const auto l = tuned ? runtime::layout::parse(tuned->layout_spec, tuned->layout_order)
                         : runtime::layout::parse(o.layout, o.order);
    const auto launch = runtime::detect_launch();
    if (launch.size != l.world_size())
        throw input_error(fmt::format("layout {} needs {} ranks but the job has {} (launcher {}); "
                                      "start it with mpirun -np {}",
                                      l.spec(), l.world_size(), launch.size, launch.launcher,
                                      l.world_size()));
    const auto kind = runtime::parse_backend(o.backend);
    runtime::check_backend_available(kind);
    if (!o.trace.empty() && o.trace_dir.empty())
        throw usage_error("--trace needs --trace-dir (the Perfetto file is exported from the "
                          "trace directory the ranks write)");
    const auto numbers = runtime::parse_precision(o.precision);
    const auto spec = runtime::load_model(o.model);
    auto model = runtime::decoder_config_of(spec);
    model.validate(l.tp());
    if (model.layers < static_cast<std::int64_t>(l.pp()) * l.vpp())
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model "
                                      "chunks",
                                      model.name, model.layers, l.pp(), l.vpp()));
    const auto context = context_from_options(o.stream, tuned);
    const auto schedule = runtime::parse_schedule(tuned ? tuned->schedule : o.schedule, l.vpp());
    const auto costs = tuner::run_cost_model(spec, tuner::load_hardware(o.hardware), l, numbers);

    const auto packing = packing_from_options(o.packing, context, l, tuned);
    const auto sharding = *sharding_from_options(o.sharding, tuned); // sharding_use::always
    const auto& data = tuned && !o.data_given ? tuned->data.spec : o.data;

    // Every rank packs and shards the same steps (the packers and sharders are deterministic),
    // so no batch travels between ranks.
    const auto source = tuner::parse_source_spec(data);
    tuner::document_stream stream(tuner::open_document_source(data),
                                  stream_from_options(o.stream, context, tuned));
    const auto packer = tuner::make_packer(packing, costs);
    const auto sharder = tuner::make_sharder(sharding, costs);
    const auto batches = tuner::pack_and_shard(stream, *packer, *sharder, o.steps, data);
    const auto predicted = tuner::predict_run_seconds(costs, model, batches.steps, schedule);

    auto world = runtime::make_world_communicator({.watchdog_seconds = o.watchdog_seconds});
    runtime::backend_options bo;
    bo.model = model;
    bo.job_layout = l;
    bo.numbers = numbers;
    bo.trainer.seed = o.seed;
    bo.trainer.learning_rate = o.learning_rate;
    bo.trainer.schedule = schedule;
    auto backend = runtime::make_backend(kind, *world, bo);
    const bool main_rank = world->rank() == 0;

    reports::run_context ctx;
    ctx.backend = std::string(backend->name());
    ctx.precision = std::string(runtime::to_string(numbers));
    ctx.job_layout = l;
    ctx.launcher = launch.launcher;
    ctx.model = model;
    ctx.data = stream.describe();
    ctx.context_tokens = context;
    ctx.packing = tuner::describe(packing);
    ctx.packing_json = tuner::to_json(packing);
    ctx.sharding = sharding;
    ctx.schedule = schedule.describe(l.pp(), l.vpp());
    ctx.hardware = costs.hardware().name;
    ctx.trace_dir = o.trace_dir;
    ctx.inputs = tuner::source_inputs(source);
    if (tuned)
        ctx.inputs.push_back(wlb::identify_file(o.config));
    if (main_rank) {
        fmt::print("{}", reports::run_header_text(ctx));
        std::fflush(stdout);
    }

    std::vector<reports::run_step_row> rows;
    runtime::run_options ro;
    ro.trace_dir = o.trace_dir;
    ro.trace_info.source = "cpu";
    ro.trace_info.note = fmt::format("measured by wlbtune run --backend cpu ({}): host timers "
                                     "(steady_clock) around every operation; model {}",
                                     ctx.precision, model.name);
    ro.trace_manifest_extra = wlb::report_header(runtime::trace_schema, ctx.inputs);
    const auto result = runtime::run_training(
        *backend, *world, l, batches.steps, ro, [&](const runtime::step_record& r) {
            const auto i = rows.size();
            rows.push_back(
                reports::make_run_step_row(r, batches.steps[i], predicted[i], batches.applied[i]));
            if (main_rank) {
                fmt::print("{}", reports::run_step_text(rows.back(), i == 0));
                std::fflush(stdout);
            }
        });
    if (!main_rank)
        return;
    if (!o.trace.empty())
        reports::write_perfetto(runtime::trace_reader(o.trace_dir).read_all(), o.trace,
                                "measured (cpu, host timers)");
    if (!o.json_path.empty())
        wlb::write_file_atomic(o.json_path,
                               reports::run_json(ctx, rows, result.trace_events).dump(2) + "\n");
    fmt::print("{}", reports::run_summary_text(ctx, rows, result.trace_events));
    if (!o.trace.empty())
        fmt::print("Perfetto trace (measured): {} (open in https://ui.perfetto.dev)\n", o.trace);
}

} // namespace

registered_command register_run(CLI::App& app, error_sink& sink) {
    auto o = std::make_shared<run_options>();
    auto* sub = app.add_subcommand(
        "run", "Run real 4D-parallel training steps on the ranks mpirun started (CPU backend: "
               "OpenBLAS kernels, MPI collectives); print measured step time and loss beside the "
               "simulator's prediction; capture a trace");
    sub->add_option("--backend", o->backend, "Execution backend: cpu (cuda: not built yet)")
        ->capture_default_str();
    sub->add_option("-l,--layout", o->layout,
                    "Parallel degrees tp=,cp=,pp=,dp=[,vpp=]; the job must have their product "
                    "of ranks")
        ->capture_default_str();
    sub->add_option("--order", o->order, "Axis order, innermost first")->capture_default_str();
    sub->add_option("-m,--model", o->model,
                    "Decoder: tiny, small, or a JSON file with vocab, hidden, heads, ffn, layers")
        ->capture_default_str();
    add_data_option(*sub, o->data);
    auto* config = sub->add_option(
        "--config", o->config,
        "Apply a tuned config (wlbtune.config/1 from wlbtune tune): its layout, context, data "
        "order, packing, sharding and schedule; --data may point it at other data; --model, "
        "--hardware and --steps stay this run's");
    o->stream.context = "4k";                              // the small decoders run here
    auto tuned_away = add_stream_options(*sub, o->stream); // what --config replaces
    append_options(tuned_away, add_packing_options(*sub, o->packing, "-p,--packing"));
    append_options(tuned_away,
                   add_sharding_options(*sub, o->sharding, sharding_use::always, "-s,--sharding"));
    sub->add_option("--schedule", o->schedule,
                    "Pipeline schedule: 1f1b, interleaved, llama3:N, auto (interleaved when vpp "
                    "> 1)")
        ->capture_default_str();
    sub->add_option("-n,--steps", o->steps, "Training steps to run")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_option("--precision", o->precision, "Numbers: float or double")
        ->capture_default_str()
        ->check(CLI::IsMember({"float", "double"}));
    sub->add_option("--seed", o->seed, "Seed of the initial parameters")->capture_default_str();
    sub->add_option("--learning-rate", o->learning_rate, "SGD learning rate")
        ->capture_default_str();
    sub->add_option("--hardware", o->hardware,
                    "Hardware the packers, the sharders and the predictions assume: a preset "
                    "(cpu-dev-vm, h100-sxm, h200) or a JSON file")
        ->capture_default_str();
    sub->add_option("--watchdog", o->watchdog_seconds,
                    "Seconds a collective or receive may take before the job is aborted")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    sub->add_option("--trace-dir", o->trace_dir,
                    "Write the job's trace here (wlbtune.trace/1: one JSONL file per rank and a "
                    "manifest)");
    sub->add_option("--trace", o->trace,
                    "Also export it as a Perfetto file (rank 0 reads the trace directory; .gz "
                    "compresses)");
    sub->add_option("--json", o->json_path, "Write the run report (wlbtune.run/1) to this file");
    sub->footer("Examples:\n"
                "  wlbtune run --model tiny --steps 3\n"
                "  mpirun -np 2 wlbtune run --layout cp=2 --model small --context 8k --sharding "
                "per-doc --trace-dir trace/\n"
                "  mpirun -np 8 wlbtune run --layout tp=2,cp=2,pp=2 --packing wlb --json run.json");
    for (const char* name : {"--layout", "--order", "--schedule"})
        tuned_away.push_back(sub->get_option(name));
    for (auto* opt : tuned_away)
        config->excludes(opt);
    return {sub, [o, &sink, sub] {
                sink.json_path = o->json_path;
                o->data_given = sub->get_option("--data")->count() > 0;
                run_run(*o);
            }};
}

} // namespace wlb::cli
