// Running a prepared run (tuner/job/run_job.hpp's prepare_run) on its backend: the CPU backend or
// the cuda backend on one GPU per rank, both under the job's world communicator, or the cuda
// backend's emulation of every rank on one GPU in this process (issue [cuda-run]). Its own unit,
// apart from run_job: it reaches the CUDA edge (runtime/train/cuda_backend.hpp, wlb::cuda), which
// the host core's tests do not link.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/trace/capture_ranges.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/device_backend.hpp"
#include "runtime/train/train_run.hpp"
#include "tuner/job/run_job.hpp"
#include "tuner/spec/job_spec.hpp"

#include <functional>
#include <memory>

namespace wlb::tuner {

/// Throws before any work when request.backend cannot run here: the cuda backend without a
/// device (wlb::runtime_failure naming it, exit code 4) or an option it refuses.
void check_run_backend(const run_request& request);

/// What the launcher started, checked against the run: exactly the layout's ranks, or for
/// --emulate a single process (wlb::input_error naming the fix otherwise).
runtime::launch_info check_run_launch(const job_spec& job, const run_request& request);

/// The run's steps as the trace records them (their batches and shards).
[[nodiscard]] std::vector<runtime::sharded_step> run_sharded_steps(const prepared_run& run);

/// The backend options of the prepared run (model, layout, seed, learning rate, schedule,
/// device options).
[[nodiscard]] runtime::backend_options
run_backend_options(const job_spec& job, const prepared_run& run, const run_request& request);

/// The training backend of request.backend for the prepared run over the job's world
/// (collective). `capture` (may be null) gets the cuda backend's ranges.
std::unique_ptr<runtime::training_backend>
make_run_backend(runtime::communicator& world, const job_spec& job, const prepared_run& run,
                 const run_request& request,
                 std::unique_ptr<runtime::capture_ranges> capture = nullptr);

/// Runs the prepared steps on `backend` (collective), capturing the trace when
/// request.trace_dir is set; `on_step(i, record)` is called on every rank after step i.
runtime::run_result
execute_run(runtime::training_backend& backend, runtime::communicator& world, const job_spec& job,
            const prepared_run& run, const run_request& request,
            const std::function<void(std::size_t, const runtime::step_record&)>& on_step);

/// `run --backend cuda --emulate`: every rank of the job's layout in this process on one GPU,
/// transfers timed as request.comm says; the trace (request.trace_dir) on the virtual clocks.
/// `make_capture` (may be empty) gives each rank its ranges. The device's name goes to
/// `device_name`. `devices` (empty: the CUDA device of request.device) replaces the devices:
/// the benchmark's dry run on the host reference.
runtime::run_result
execute_emulated_run(const job_spec& job, const prepared_run& run, const run_request& request,
                     const runtime::capture_factory& make_capture,
                     const std::function<void(std::size_t, const runtime::step_record&)>& on_step,
                     std::string& device_name, const runtime::device_factory& devices = {});

/// `wlbtune run` from its checks to its last step, the one entry point the command calls.
/// Constructing it refuses what cannot run (the launch, the backend, the model against the
/// executor) and prepares the steps before anything starts; start() then makes the job's world
/// and backend (collective), or keeps every rank in this process for request.device.emulate;
/// execute() runs the steps.
class run_session {
public:
    using step_callback = std::function<void(std::size_t, const runtime::step_record&)>;

    run_session(const job_spec& job, const run_request& request);
    ~run_session();
    run_session(const run_session&) = delete;
    run_session& operator=(const run_session&) = delete;

    /// `ranges` (may be empty) gives each world rank its capture ranges; the session keeps it
    /// (and so the capture behind it) until the backend is gone.
    void start(const runtime::capture_factory& ranges = {});
    /// Runs the steps on every rank (collective); `on_step(i, record)` after step i.
    runtime::run_result execute(const step_callback& on_step);

    [[nodiscard]] const prepared_run& run() const { return m_run; }
    /// Whether this process reports (world rank 0; an emulated job is one process).
    [[nodiscard]] bool main_rank() const;
    /// The backend's name ("cuda-emulated" for an emulated job; before start(), the kind's).
    [[nodiscard]] std::string backend_name() const;
    /// What started the ranks ("emulated" for an emulated job).
    [[nodiscard]] std::string launcher() const;
    /// The job's world; null for an emulated job or before start().
    [[nodiscard]] runtime::communicator* world() const { return m_world.get(); }

private:
    job_spec m_job;
    runtime::launch_info m_launch;
    run_request m_request;
    prepared_run m_run;
    runtime::capture_factory m_ranges; ///< declared before the backend: destroyed after it
    std::unique_ptr<runtime::communicator> m_world;
    std::unique_ptr<runtime::training_backend> m_backend;
};

} // namespace wlb::tuner
