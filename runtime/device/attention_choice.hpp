// Which attention kernels a CUDA device runs (`wlbtune run --attention`), issue [cuda-run]:
//
//   auto   cuDNN's fused scaled-dot-product attention when the build and the machine have it and
//          it accepts the layout, else ours (mma where it can run, else simt)
//   cudnn  cuDNN's, or an error naming why it cannot run
//   mma    our tensor-core kernels (kernels/attention_fwd.cu, attention_bwd.cu)
//   simt   our scalar fp32 kernels (kernels/attention_simt.cu)
#pragma once

#include <cstdint>
#include <string_view>

namespace wlb::runtime {

enum class attention_choice : std::uint8_t { automatic, cudnn, mma, simt };

/// "auto", "cudnn", "mma", "simt"; anything else is wlb::input_error listing them.
[[nodiscard]] attention_choice parse_attention_choice(std::string_view text);
[[nodiscard]] std::string_view to_string(attention_choice c) noexcept;

} // namespace wlb::runtime
