// Fuzz target: the files a run is configured from. The first byte picks the reader, the rest
// is the file:
//   0 plan           wlbtune.plan/1 JSON Lines (tuner/plan/plan_io.hpp, read_plan)
//   1 sharded batch  wlbtune.sharded_batch/1 (runtime/trace/sharded_batch_io.hpp)
//   2 tuned config   `tune -o` output (tuner/spec/tuned_config.hpp), then the job it describes
//   3 hardware JSON  (tuner/cost/hardware.hpp, load_hardware)
//   4 model JSON     (runtime/model/model_spec.hpp, load_model)
//   5 any JSON file  (base/json_file.hpp, read_json_file)
#include "base/json_file.hpp"
#include "fuzz_support.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/trace/sharded_batch_io.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/plan/plan_io.hpp"
#include "tuner/spec/job_spec.hpp"
#include "tuner/spec/tuned_config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = wlb::fuzz::select(data, size);
    wlb::fuzz::expect_input_errors([&] {
        switch (in.selector % 6) {
        case 0:
            (void)wlb::tuner::read_plan(wlb::fuzz::write_scratch("plan.jsonl", in.rest));
            break;
        case 1:
            (void)wlb::runtime::read_sharded_batch(wlb::fuzz::write_scratch("batch.json", in.rest));
            break;
        case 2: {
            const auto path = wlb::fuzz::write_scratch("config.json", in.rest);
            const auto config = wlb::tuner::read_tuned_config(path);
            (void)wlb::tuner::job_of(config, path);
            break;
        }
        case 3:
            (void)wlb::tuner::load_hardware(wlb::fuzz::write_scratch("hw.json", in.rest));
            break;
        case 4:
            (void)wlb::runtime::load_model(wlb::fuzz::write_scratch("model.json", in.rest));
            break;
        case 5:
            (void)wlb::read_json_file(wlb::fuzz::write_scratch("any.json", in.rest));
            break;
        }
    });
    return 0;
}
