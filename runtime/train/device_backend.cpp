#include "runtime/train/device_backend.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <mutex>

namespace wlb::runtime {

namespace {

device_groups groups_of(const device_group_comms& c, std::function<double(double)> world_sum) {
    for (const auto& g : c)
        WLB_EXPECTS(g != nullptr, "a device group is missing");
    return {*c[0], *c[1], *c[2], *c[3], std::move(world_sum)};
}

} // namespace

device_backend::device_backend(std::string name, communicator& world,
                               std::unique_ptr<compute_device> device, device_group_comms groups,
                               const backend_options& options,
                               std::unique_ptr<capture_ranges> capture)
    : m_name(std::move(name)), m_world(world), m_device(std::move(device)),
      m_comms(std::move(groups)), m_capture(std::move(capture)) {
    WLB_EXPECTS(m_device != nullptr, "device backend without a device");
    m_decoder = std::make_unique<device_decoder>(*m_device, options.model, options.job_layout,
                                                 world.rank(), options.trainer);
    m_recorder = make_device_clock_recorder(*m_device);
    if (m_capture != nullptr) {
        m_capture->register_stream(m_device->stream(), lane::compute);
        const lane lanes[] = {lane::tp, lane::cp, lane::pp, lane::dp};
        for (std::size_t a = 0; a < m_comms.size(); ++a)
            if (m_comms[a]->stream() != nullptr)
                m_capture->register_stream(m_comms[a]->stream(), lanes[a]);
    }
}

device_backend::~device_backend() = default;

step_result device_backend::step(const global_batch& batch, const batch_shards& shards,
                                 step_observer* observer) {
    const auto groups = groups_of(m_comms, [this](double v) {
        std::vector<double> x = {v};
        m_world.all_reduce(std::span<double>(x));
        return x[0];
    });
    m_device->make_current();
    m_recorder->begin_step();
    step_result r;
    {
        const capture_scope range(m_capture.get(), [&](capture_ranges& c) { c.step(batch.step); });
        r = m_decoder->gradients(batch, shards, groups, m_recorder.get(), m_capture.get());
        m_decoder->apply(m_recorder.get(), m_capture.get());
    }
    m_recorder->end_step(observer);
    return r;
}

emulated_job::emulated_job(const backend_options& options, const device_factory& make_device,
                           emulated_comm_model model, const capture_factory& make_capture)
    : m_layout(options.job_layout), m_world(options.job_layout.world_size(), std::move(model)) {
    const auto& l = m_layout;
    for (int r = 0; r < l.world_size(); ++r) {
        auto s = std::make_unique<rank_state>();
        s->device = make_device(r);
        WLB_EXPECTS(s->device != nullptr, "no device for emulated rank {}", r);
        for (axis a : all_axes) {
            group_desc g;
            g.kind = std::string(axis_name(a));
            g.world_ranks = l.group_of(r, a);
            s->comms[static_cast<std::size_t>(a)] = m_world.comm(r, g, *s->device);
        }
        s->decoder =
            std::make_unique<device_decoder>(*s->device, options.model, l, r, options.trainer);
        s->recorder = make_virtual_clock_recorder(*s->device, m_world.clock(r));
        if (make_capture) {
            s->capture = make_capture(r);
            if (s->capture != nullptr)
                s->capture->register_stream(s->device->stream(), lane::compute);
        }
        m_ranks.push_back(std::move(s));
    }
}

emulated_job::~emulated_job() = default;

std::string emulated_job::device_name() const {
    return m_ranks.front()->device->name();
}

emulated_job::step_outcome emulated_job::step(const global_batch& batch, const batch_shards& shards,
                                              const std::vector<step_observer*>& observers,
                                              bool update) {
    WLB_EXPECTS(observers.empty() || observers.size() == m_ranks.size(),
                "{} observers for {} ranks", observers.size(), m_ranks.size());
    std::mutex mu;
    step_outcome out;
    double start = 0.0, end = 0.0;
    m_world.run([&](int r) {
        auto& s = *m_ranks[static_cast<std::size_t>(r)];
        s.device->make_current();
        const auto groups =
            groups_of(s.comms, [this, r](double v) { return m_world.host_sum(r, v); });
        m_world.clock_barrier(r);
        const double begin = m_world.clock(r).now_s;
        s.recorder->begin_step();
        step_result result;
        {
            const capture_scope range(s.capture.get(),
                                      [&](capture_ranges& c) { c.step(batch.step); });
            result = s.decoder->gradients(batch, shards, groups, s.recorder.get(), s.capture.get());
            if (update)
                s.decoder->apply(s.recorder.get(), s.capture.get());
        }
        s.recorder->end_step(observers.empty() ? nullptr : observers[static_cast<std::size_t>(r)]);
        s.device->synchronize();
        std::lock_guard lock(mu);
        out.loss = result.loss;
        out.labelled_tokens = result.labelled_tokens;
        start = begin; // the same on every rank after the barrier
        end = std::max(end, m_world.clock(r).now_s);
    });
    out.seconds = end - start;
    return out;
}

} // namespace wlb::runtime
