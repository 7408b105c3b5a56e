#include "runtime/train/make_backend.hpp"

#include "base/error.hpp"
#include "base/host_memory.hpp"
#include "kernels/ops.hpp"
#include "runtime/train/cpu_trainer.hpp"

#include <mutex>

namespace wlb::runtime {
namespace {

template <typename T>
class cpu_backend final : public training_backend {
public:
    cpu_backend(communicator& world, const backend_options& o)
        : m_trainer(world, o.model, o.job_layout, o.trainer) {}

    /// One BLAS thread per rank (the ranks of a host share its cores; the cpu-dev-vm hardware
    /// preset is calibrated so) and freed activation memory kept for reuse.
    static void prepare_process() {
        static std::once_flag once;
        std::call_once(once, [] {
            kernels::set_blas_threads(1);
            (void)retain_freed_memory();
        });
    }

    [[nodiscard]] std::string_view name() const noexcept override { return "cpu"; }

    step_result step(const global_batch& batch, const batch_shards& shards,
                     step_observer* observer) override {
        const auto grads = m_trainer.gradients(batch, shards, observer);
        m_trainer.apply(grads, observer);
        return {grads.loss, grads.labelled_tokens};
    }

private:
    cpu_trainer<T> m_trainer;
};

} // namespace

void check_backend_available(backend_kind /*kind*/) {}

std::unique_ptr<training_backend> make_backend(backend_kind kind, communicator& world,
                                               const backend_options& options) {
    WLB_EXPECTS(kind == backend_kind::cpu,
                "make_backend makes the CPU backend; the cuda backend is "
                "runtime::make_cuda_backend's (runtime/train/cuda_backend.hpp)");
    cpu_backend<float>::prepare_process();
    if (options.numbers == precision::f64)
        return std::make_unique<cpu_backend<double>>(world, options);
    return std::make_unique<cpu_backend<float>>(world, options);
}

} // namespace wlb::runtime
