// NVTX ranges in the `wlbtune` domain (profiler/capture/range_marker.hpp), one category per range
// level. NVTX3 is header-only: without an attached tool (Nsight Systems, an NVTX injection library)
// each call is a cheap no-op.
#include "profiler/capture/range_marker.hpp"

#include <cstdint>
#include <nvtx3/nvToolsExt.h>
#include <string>

namespace wlb::profiler {

namespace {

constexpr std::uint32_t level_colors[range_level_count] = {0xff4e79a7, 0xfff28e2b, 0xffe15759,
                                                           0xff76b7b2, 0xff59a14f};

class nvtx_marker final : public range_marker {
public:
    nvtx_marker() : m_domain(nvtxDomainCreateA("wlbtune")) {
        for (int l = 0; l < range_level_count; ++l) {
            const std::string name(range_level_name(static_cast<range_level>(l)));
            nvtxDomainNameCategoryA(m_domain, static_cast<std::uint32_t>(l + 1), name.c_str());
        }
    }
    ~nvtx_marker() override { nvtxDomainDestroy(m_domain); }

    void push(range_level level, std::string_view name) override {
        const std::string text(name);
        nvtxEventAttributes_t a{};
        a.version = NVTX_VERSION;
        a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
        a.category = static_cast<std::uint32_t>(level) + 1;
        a.colorType = NVTX_COLOR_ARGB;
        a.color = level_colors[static_cast<int>(level)];
        a.messageType = NVTX_MESSAGE_TYPE_ASCII;
        a.message.ascii = text.c_str();
        nvtxDomainRangePushEx(m_domain, &a);
    }

    void pop() override { nvtxDomainRangePop(m_domain); }

private:
    nvtxDomainHandle_t m_domain;
};

} // namespace

std::unique_ptr<range_marker> make_nvtx_marker() {
    return std::make_unique<nvtx_marker>();
}

} // namespace wlb::profiler
