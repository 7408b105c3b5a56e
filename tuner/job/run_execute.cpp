#include "tuner/job/run_execute.hpp"

#include "base/error.hpp"
#include "runtime/train/cuda_backend.hpp"
#include "runtime/train/make_backend.hpp"
#include "tuner/cost/plan_durations.hpp"

#include <fmt/format.h>

namespace wlb::tuner {
namespace {

/// The trace manifest's extra fields: the report header, and what ran, for `wlbtune calibrate
/// --from-trace`: the model and the run's element size.
nlohmann::json manifest_extra(const job_spec& job, const prepared_run& run) {
    auto extra = wlb::report_header(runtime::trace_schema, run.inputs);
    extra["model"] = runtime::to_json(job.model);
    extra["bytes_per_element"] = run.costs.options().bytes_per_element;
    return extra;
}

} // namespace

void check_run_backend(const run_request& request) {
    runtime::check_backend_available(request.backend);
    if (request.backend == runtime::backend_kind::cuda)
        runtime::check_cuda_backend(request.device);
    else if (request.device.emulate)
        throw input_error("--emulate runs the cuda backend's ranks on one GPU; it needs "
                          "--backend cuda");
}

runtime::launch_info check_run_launch(const job_spec& job, const run_request& request) {
    if (!request.device.emulate)
        return check_launch(job.layout);
    const auto launch = runtime::detect_launch();
    if (launch.size != 1)
        throw input_error(fmt::format("--emulate runs every rank of layout {} in one process; "
                                      "the launcher ({}) started {}: run it without mpirun",
                                      job.layout.spec(), launch.launcher, launch.size));
    return launch;
}

std::vector<runtime::sharded_step> run_sharded_steps(const prepared_run& run) {
    std::vector<runtime::sharded_step> out;
    for (const auto& s : run.batches.steps)
        out.push_back({s.batch.step, s.shards});
    return out;
}

runtime::backend_options run_backend_options(const job_spec& job, const prepared_run& run,
                                             const run_request& request) {
    runtime::backend_options bo;
    bo.model = run.decoder;
    bo.job_layout = job.layout;
    bo.numbers = request.numbers;
    bo.trainer.seed = request.seed;
    bo.trainer.learning_rate = request.learning_rate;
    bo.trainer.schedule = run.schedule;
    bo.device = request.device;
    return bo;
}

std::unique_ptr<runtime::training_backend>
make_run_backend(runtime::communicator& world, const job_spec& job, const prepared_run& run,
                 const run_request& request, std::unique_ptr<runtime::capture_ranges> capture) {
    const auto bo = run_backend_options(job, run, request);
    if (request.backend == runtime::backend_kind::cuda)
        return runtime::make_cuda_backend(world, bo, std::move(capture));
    return runtime::make_backend(request.backend, world, bo);
}

runtime::run_result
execute_run(runtime::training_backend& backend, runtime::communicator& world, const job_spec& job,
            const prepared_run& run, const run_request& request,
            const std::function<void(std::size_t, const runtime::step_record&)>& on_step) {
    runtime::run_options ro;
    ro.trace_dir = request.trace_dir;
    ro.trace_info.source = std::string(backend.name());
    if (request.backend == runtime::backend_kind::cuda)
        ro.trace_info.note = fmt::format(
            "measured by wlbtune run --backend cuda (bf16, fp32 accumulation): every operation "
            "timed on its GPU stream (CUDA events), starts on the host clock at each step's "
            "start; model {}",
            run.decoder.name);
    else
        ro.trace_info.note =
            fmt::format("measured by wlbtune run --backend {} ({}): host timers "
                        "(steady_clock) around every operation; model {}",
                        backend.name(), runtime::to_string(request.numbers), run.decoder.name);
    ro.trace_manifest_extra = manifest_extra(job, run);
    std::size_t i = 0;
    return runtime::run_training(backend, world, job.layout, run.batches.steps, ro,
                                 [&](const runtime::step_record& r) { on_step(i++, r); });
}

namespace {

/// The cost model's transfer times, kept alive by the functions that use them.
runtime::emulated_comm_model modelled_comm(const cost_model& costs) {
    struct holder {
        cost_model costs;
        cost_duration_model model{costs};
        explicit holder(cost_model c) : costs(std::move(c)) {}
    };
    auto h = std::make_shared<holder>(costs);
    runtime::emulated_comm_model m;
    m.collective_seconds = [h](runtime::collective_kind kind, double bytes,
                               std::span<const int> members) {
        return h->model.collective_seconds(kind, bytes, members);
    };
    m.p2p_seconds = [h](double bytes, int src, int dst) {
        return h->model.p2p_seconds(bytes, src, dst);
    };
    return m;
}

} // namespace

runtime::run_result
execute_emulated_run(const job_spec& job, const prepared_run& run, const run_request& request,
                     const runtime::capture_factory& make_capture,
                     const std::function<void(std::size_t, const runtime::step_record&)>& on_step,
                     std::string& device_name, const runtime::device_factory& devices) {
    const auto bo = run_backend_options(job, run, request);
    const bool modelled = request.comm == emulated_comm::modelled;
    auto comm = modelled ? modelled_comm(run.costs) : runtime::emulated_comm_model{};
    auto emulated = devices ? std::make_unique<runtime::emulated_job>(bo, devices, std::move(comm),
                                                                      make_capture)
                            : runtime::make_cuda_emulated_job(bo, std::move(comm), make_capture);
    device_name = emulated->device_name();
    runtime::run_options ro;
    ro.trace_dir = request.trace_dir;
    ro.trace_info.source = "cuda-emulated";
    ro.trace_info.note = fmt::format(
        "emulated by wlbtune run --backend cuda --emulate on one GPU ({}): every rank's "
        "operations run alone on the device with real data and kernels and are timed on it; "
        "times are each rank's virtual clock: its work back to back, a collective ending for "
        "every member at the last arrival plus its {}, a transfer arriving after its {}; model {}",
        device_name,
        modelled ? "modelled time (cost model, hardware " + job.hardware.name + ")"
                 : "measured device copies",
        modelled ? "modelled time" : "measured device copy", run.decoder.name);
    ro.trace_manifest_extra = manifest_extra(job, run);
    ro.trace_manifest_extra["emulated"] = {{"comm", modelled ? "modelled" : "measured"},
                                           {"device", device_name}};
    std::size_t i = 0;
    return runtime::run_emulated_training(*emulated, run.batches.steps, ro,
                                          [&](const runtime::step_record& r) { on_step(i++, r); });
}

namespace {

const run_request& checked_backend(const run_request& request) {
    check_run_backend(request);
    return request;
}

} // namespace

run_session::run_session(const job_spec& job, const run_request& request)
    : m_job(job), m_launch(check_run_launch(job, request)), m_request(checked_backend(request)),
      m_run(prepare_run(m_job, m_request)) {}

run_session::~run_session() = default;

void run_session::start(const runtime::capture_factory& ranges) {
    m_ranges = ranges; // kept: it holds the capture alive for as long as the backend's ranges
    if (m_request.device.emulate)
        return;
    m_world =
        runtime::make_world_communicator({.watchdog_seconds = m_request.device.watchdog_seconds});
    m_backend = make_run_backend(*m_world, m_job, m_run, m_request,
                                 m_ranges ? m_ranges(m_world->rank()) : nullptr);
}

runtime::run_result run_session::execute(const step_callback& on_step) {
    if (m_request.device.emulate) {
        std::string device_name;
        return execute_emulated_run(m_job, m_run, m_request, m_ranges, on_step, device_name);
    }
    if (!m_backend)
        throw internal_error("run_session::execute before start()");
    return execute_run(*m_backend, *m_world, m_job, m_run, m_request, on_step);
}

bool run_session::main_rank() const {
    return m_world == nullptr || m_world->rank() == 0;
}

std::string run_session::backend_name() const {
    if (m_request.device.emulate)
        return "cuda-emulated";
    return m_backend ? std::string(m_backend->name())
                     : std::string(runtime::to_string(m_request.backend));
}

std::string run_session::launcher() const {
    return m_request.device.emulate ? "emulated" : m_launch.launcher;
}

} // namespace wlb::tuner
