// NCCL as the device step's group communicator (runtime/comm/nccl_device_comm.hpp).
#include "runtime/comm/nccl_device_comm.hpp"

#include "base/error.hpp"

namespace wlb::runtime {
namespace {

device_element element_of(dspan s) {
    switch (s.type) {
    case dtype::bf16:
        return device_element::bf16;
    case dtype::f32:
        return device_element::f32;
    case dtype::f64:
        return device_element::f64;
    case dtype::i32:
    case dtype::i64:
        break;
    }
    WLB_EXPECTS(false, "NCCL device comm: {} data", dtype_name(s.type));
    return device_element::f32;
}

class nccl_device_comm final : public device_comm {
public:
    nccl_device_comm(nccl_communicator& c, compute_device& d) : m_comm(c), m_device(d) {
        m_comm.bind_compute_stream(static_cast<nccl_communicator::stream_t>(d.stream()));
    }
    int rank() const noexcept override { return m_comm.rank(); }
    int size() const noexcept override { return m_comm.size(); }
    const group_desc& group() const noexcept override { return m_comm.group(); }
    void* stream() const noexcept override { return m_comm.comm_stream(); }

    void all_gather(dspan send, dspan recv) override {
        check_gather(send, recv, "all_gather");
        m_comm.all_gather_async(send.data, recv.data, send.count, element_of(send));
        m_comm.join(compute());
    }
    void reduce_scatter(dspan send, dspan recv) override {
        check_gather(recv, send, "reduce_scatter");
        m_comm.reduce_scatter_async(send.data, recv.data, recv.count, element_of(send));
        m_comm.join(compute());
    }
    void all_reduce(dspan data) override {
        m_comm.all_reduce_async(data.data, data.count, element_of(data));
        m_comm.join(compute());
    }
    void send(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "send");
        m_comm.send_device(data.data, data.count, element_of(data), peer);
    }
    void recv(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "recv");
        m_comm.recv_device(data.data, data.count, element_of(data), peer);
    }
    void wait() override { m_comm.wait(); }

private:
    nccl_communicator::stream_t compute() const {
        return static_cast<nccl_communicator::stream_t>(m_device.stream());
    }
    nccl_communicator& m_comm;
    compute_device& m_device;
};

} // namespace

std::unique_ptr<device_comm> make_nccl_device_comm(nccl_communicator& comm,
                                                   compute_device& device) {
    return std::make_unique<nccl_device_comm>(comm, device);
}

} // namespace wlb::runtime
