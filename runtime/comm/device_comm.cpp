#include "runtime/comm/device_comm.hpp"

#include "base/error.hpp"

namespace wlb::runtime {

void device_comm::check_gather(dspan block, dspan whole, std::string_view op) const {
    WLB_EXPECTS(block.type == whole.type, "{} on {}: {} into {}", op, group().describe(),
                dtype_name(block.type), dtype_name(whole.type));
    WLB_EXPECTS(whole.count == block.count * static_cast<std::size_t>(size()),
                "{} on {}: the whole buffer has {} elements, expected {} x {}", op,
                group().describe(), whole.count, size(), block.count);
}

void device_comm::check_peer(int peer, int tag, std::string_view op) const {
    WLB_EXPECTS(peer >= 0 && peer < size() && peer != rank(),
                "{} on {}: peer {} is not another member of a group of {}", op, group().describe(),
                peer, size());
    WLB_EXPECTS(tag >= 0 && tag <= max_tag, "{}: tag {} outside [0, {}]", op, tag, max_tag);
}

namespace {

class host_device_comm final : public device_comm {
public:
    explicit host_device_comm(communicator& c) : m_comm(c) {}
    int rank() const noexcept override { return m_comm.rank(); }
    int size() const noexcept override { return m_comm.size(); }
    const group_desc& group() const noexcept override { return m_comm.group(); }

    void all_gather(dspan send, dspan recv) override {
        check_gather(send, recv, "all_gather");
        if (wide(send))
            m_comm.all_gather<double>(doubles(send), doubles(recv));
        else
            m_comm.all_gather<float>(floats(send), floats(recv));
    }
    void reduce_scatter(dspan send, dspan recv) override {
        check_gather(recv, send, "reduce_scatter");
        if (wide(send))
            m_comm.reduce_scatter<double>(doubles(send), doubles(recv));
        else
            m_comm.reduce_scatter<float>(floats(send), floats(recv));
    }
    void all_reduce(dspan data) override {
        if (wide(data))
            m_comm.all_reduce(doubles(data));
        else
            m_comm.all_reduce(floats(data));
    }
    void send(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "send");
        if (wide(data))
            m_comm.send(std::span<const double>(doubles(data)), peer, tag);
        else
            m_comm.send(std::span<const float>(floats(data)), peer, tag);
    }
    void recv(dspan data, int peer, int tag) override {
        check_peer(peer, tag, "recv");
        if (wide(data))
            m_comm.recv(doubles(data), peer, tag);
        else
            m_comm.recv(floats(data), peer, tag);
    }

private:
    static bool wide(dspan s) {
        WLB_EXPECTS(is_floating(s.type), "host device comm: {} data", dtype_name(s.type));
        WLB_EXPECTS(s.element_bytes == (s.type == dtype::f64 ? 8u : 4u),
                    "host device comm: {} stored in {} bytes is not a host device's buffer",
                    dtype_name(s.type), s.element_bytes);
        return s.type == dtype::f64;
    }
    static std::span<float> floats(dspan s) { return {s.as<float>(), s.count}; }
    static std::span<double> doubles(dspan s) { return {s.as<double>(), s.count}; }

    communicator& m_comm;
};

} // namespace

std::unique_ptr<device_comm> make_host_device_comm(communicator& comm) {
    return std::make_unique<host_device_comm>(comm);
}

} // namespace wlb::runtime
