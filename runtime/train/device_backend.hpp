// The device decoder step (runtime/train/device_decoder.hpp) as a job (issue [cuda-run]):
//
//   device_backend  one rank per process, the training_backend of `run --backend cuda`: the
//                   rank's compute device (its GPU), its TP/CP/PP/DP groups (NCCL, bootstrapped
//                   from the host world communicator; the host reference over any communicator
//                   in tests), device-clock timing of every operation into the run loop's
//                   observer (runtime/train/train_run.hpp), an optional capture (CUPTI + NVTX).
//   emulated_job    every rank of a layout in this process on one device (`--emulate`,
//                   runtime/comm/emulated_world.hpp): each rank's decoder, device object and
//                   groups; one step runs every rank, one at a time, on virtual clocks.
#pragma once

#include "runtime/comm/communicator.hpp"
#include "runtime/comm/device_comm.hpp"
#include "runtime/comm/emulated_world.hpp"
#include "runtime/device/compute_device.hpp"
#include "runtime/trace/capture_ranges.hpp"
#include "runtime/train/backend.hpp"
#include "runtime/train/device_decoder.hpp"
#include "runtime/train/op_recorder.hpp"

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wlb::runtime {

/// A rank's four groups for the device step, in layout axis order (tp, cp, pp, dp).
using device_group_comms = std::array<std::unique_ptr<device_comm>, 4>;

class device_backend final : public training_backend {
public:
    /// World rank world.rank() of options.job_layout; `world` (a host communicator of the same
    /// processes, which must outlive the backend) sums the loss. `capture` may be null.
    device_backend(std::string name, communicator& world, std::unique_ptr<compute_device> device,
                   device_group_comms groups, const backend_options& options,
                   std::unique_ptr<capture_ranges> capture = nullptr);
    ~device_backend() override;

    [[nodiscard]] std::string_view name() const noexcept override { return m_name; }
    step_result step(const global_batch& batch, const batch_shards& shards,
                     step_observer* observer) override;

    [[nodiscard]] device_decoder& decoder() noexcept { return *m_decoder; }

private:
    std::string m_name;
    communicator& m_world;
    std::unique_ptr<compute_device> m_device;
    device_group_comms m_comms;
    std::unique_ptr<device_decoder> m_decoder;
    std::unique_ptr<op_recorder> m_recorder;
    std::unique_ptr<capture_ranges> m_capture;
};

/// A compute device for emulated rank `rank` (each rank its own object on the one device).
using device_factory = std::function<std::unique_ptr<compute_device>(int rank)>;
/// A capture for emulated rank `rank` (may return null).
using capture_factory = std::function<std::unique_ptr<capture_ranges>(int rank)>;

class emulated_job {
public:
    /// Every rank of options.job_layout, each with its device from `make_device` and its groups
    /// in one emulated world whose transfers take `model`'s times (empty: measured copies).
    emulated_job(const backend_options& options, const device_factory& make_device,
                 emulated_comm_model model = {}, const capture_factory& make_capture = {});
    ~emulated_job();
    emulated_job(const emulated_job&) = delete;
    emulated_job& operator=(const emulated_job&) = delete;

    struct step_outcome {
        double loss = 0.0;
        std::int64_t labelled_tokens = 0;
        /// The step on the virtual clocks: from the barrier that starts it to the last rank's
        /// end of the optimizer step.
        double seconds = 0.0;
    };
    /// One training step of every rank. observers[r] (when the list is not empty) receives
    /// world rank r's operations on the virtual clock. update = false stops before the
    /// optimizer: the reduced gradients stay on the devices (tests read them).
    step_outcome step(const global_batch& batch, const batch_shards& shards,
                      const std::vector<step_observer*>& observers = {}, bool update = true);

    [[nodiscard]] const layout& job_layout() const noexcept { return m_layout; }
    [[nodiscard]] bool comm_modelled() const noexcept { return m_world.modelled(); }
    [[nodiscard]] device_decoder& decoder(int rank) {
        return *m_ranks.at(static_cast<std::size_t>(rank))->decoder;
    }
    /// The first rank's device name ("cuda:0 NVIDIA H200", "host (float reference)").
    [[nodiscard]] std::string device_name() const;

private:
    struct rank_state {
        std::unique_ptr<compute_device> device;
        device_group_comms comms;
        std::unique_ptr<device_decoder> decoder;
        std::unique_ptr<op_recorder> recorder;
        std::unique_ptr<capture_ranges> capture;
    };
    layout m_layout;
    emulated_world m_world;
    std::vector<std::unique_ptr<rank_state>> m_ranks;
};

} // namespace wlb::runtime
