// The cuda backend (runtime/train/cuda_backend.hpp): CUDA devices, NCCL groups, the device step.
#include "runtime/train/cuda_backend.hpp"

#include "base/error.hpp"
#include "runtime/comm/nccl_communicator.hpp"
#include "runtime/comm/nccl_device_comm.hpp"
#include "runtime/device/cuda_device.hpp"

namespace wlb::runtime {

namespace {

/// The real backend: the NCCL world and its groups, and the device step over them (destroyed
/// first: its group communicators refer to the NCCL ones).
class cuda_backend final : public training_backend {
public:
    cuda_backend(communicator& world, const backend_options& o,
                 std::unique_ptr<capture_ranges> capture) {
        nccl_options no;
        no.watchdog_seconds = o.device.watchdog_seconds;
        no.device = o.device.device;
        m_nccl = make_nccl_world(world, no);
        m_groups = make_group_communicators(*m_nccl, o.job_layout);
        auto device = make_cuda_device({m_nccl->device(), o.device.attention});
        device_group_comms comms;
        communicator* groups[] = {m_groups.tp.get(), m_groups.cp.get(), m_groups.pp.get(),
                                  m_groups.dp.get()};
        for (std::size_t a = 0; a < comms.size(); ++a) {
            auto* nccl = dynamic_cast<nccl_communicator*>(groups[a]);
            WLB_EXPECTS(nccl != nullptr, "a split of the NCCL world is not an NCCL communicator");
            comms[a] = make_nccl_device_comm(*nccl, *device);
        }
        m_inner = std::make_unique<device_backend>("cuda", world, std::move(device),
                                                   std::move(comms), o, std::move(capture));
    }
    std::string_view name() const noexcept override { return "cuda"; }
    step_result step(const global_batch& batch, const batch_shards& shards,
                     step_observer* observer) override {
        return m_inner->step(batch, shards, observer);
    }

private:
    std::unique_ptr<nccl_communicator> m_nccl;
    group_communicators m_groups;
    std::unique_ptr<device_backend> m_inner;
};

} // namespace

void check_cuda_backend(const device_options& o) {
    const auto reason = cuda_device_unavailable_reason();
    if (!reason.empty())
        throw runtime_failure("--backend cuda: " + reason);
    if (o.device >= cuda_device_count())
        throw runtime_failure(fmt::format("--backend cuda: CUDA device {} requested, {} visible",
                                          o.device, cuda_device_count()));
    if (o.attention == attention_choice::cudnn)
        throw input_error("--attention cudnn: cuDNN's fused attention is not built into this "
                          "wlbtune yet (docs/cuda-runtime.md); use auto, mma or simt");
}

std::unique_ptr<training_backend> make_cuda_backend(communicator& world,
                                                    const backend_options& options,
                                                    std::unique_ptr<capture_ranges> capture) {
    check_cuda_backend(options.device);
    const auto& l = options.job_layout;
    if (l.pp() == 2 && l.vpp() > 1)
        throw input_error(fmt::format(
            "layout {}: NCCL has no tags, so a pair of ranks must receive each other's messages "
            "in the order they were sent; with pp=2 and vpp>1 activations and gradients cross "
            "between the two stages in both directions in orders that differ. Use pp=2 with "
            "vpp=1, pp>2, or --emulate",
            l.spec()));
    return std::make_unique<cuda_backend>(world, options, std::move(capture));
}

std::unique_ptr<emulated_job> make_cuda_emulated_job(const backend_options& options,
                                                     emulated_comm_model model,
                                                     const capture_factory& make_capture) {
    check_cuda_backend(options.device);
    const cuda_device_options d{options.device.device < 0 ? 0 : options.device.device,
                                options.device.attention};
    return std::make_unique<emulated_job>(
        options, [d](int) { return make_cuda_device(d); }, std::move(model), make_capture);
}

} // namespace wlb::runtime
