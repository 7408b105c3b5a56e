#include "profiler/capture/launch/job_layout.hpp"

#include <charconv>
#include <fmt/format.h>
#include <map>

namespace wlb::profiler {
namespace {

/// Every "--flag value" and "--flag=value" of the commands (the last one wins).
std::map<std::string, std::string> flags_of(const std::vector<std::vector<std::string>>& commands) {
    std::map<std::string, std::string> out;
    for (const auto& argv : commands)
        for (std::size_t i = 0; i < argv.size(); ++i) {
            const std::string& a = argv[i];
            if (a.rfind("--", 0) != 0)
                continue;
            if (const auto eq = a.find('='); eq != std::string::npos)
                out[a.substr(0, eq)] = a.substr(eq + 1);
            else if (i + 1 < argv.size() && argv[i + 1].rfind("--", 0) != 0)
                out[a] = argv[i + 1];
            else
                out[a] = "";
        }
    return out;
}

} // namespace

std::optional<job_layout_guess>
layout_from_commands(const std::vector<std::vector<std::string>>& commands, int world,
                     std::string& problem) {
    problem.clear();
    const auto flags = flags_of(commands);
    struct degree {
        const char* axis;
        std::vector<const char*> names;
        int value = 1;
    };
    std::vector<degree> degrees = {
        {"tp", {"--tensor-model-parallel-size", "--parallelism.tensor_parallel_degree"}},
        {"cp", {"--context-parallel-size", "--parallelism.context_parallel_degree"}},
        {"pp", {"--pipeline-model-parallel-size", "--parallelism.pipeline_parallel_degree"}},
    };
    bool megatron = false, titan = false;
    auto number = [&](const std::string& name, const std::string& text) -> std::optional<int> {
        int v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1) {
            problem = fmt::format("{} \"{}\" is not a degree (a whole number >= 1)", name, text);
            return std::nullopt;
        }
        return v;
    };
    for (auto& d : degrees)
        for (const char* name : d.names)
            if (auto it = flags.find(name); it != flags.end()) {
                const auto v = number(name, it->second);
                if (!v)
                    return std::nullopt;
                d.value = *v;
                (std::string(name).rfind("--parallelism.", 0) == 0 ? titan : megatron) = true;
            }
    int vpp = 1;
    if (auto it = flags.find("--virtual-pipeline-model-parallel-size"); it != flags.end()) {
        const auto v = number(it->first, it->second);
        if (!v)
            return std::nullopt;
        vpp = *v;
        megatron = true;
    } else if (auto per = flags.find("--num-layers-per-virtual-pipeline-stage");
               per != flags.end()) {
        const auto layers_per = number(per->first, per->second);
        const auto layers = flags.find("--num-layers");
        if (!layers_per)
            return std::nullopt;
        if (layers == flags.end()) {
            problem = "--num-layers-per-virtual-pipeline-stage without --num-layers: the virtual "
                      "stages are left out";
        } else if (const auto n = number(layers->first, layers->second)) {
            const int pp = degrees[2].value;
            if (*n % (pp * *layers_per) == 0)
                vpp = *n / (pp * *layers_per);
        } else {
            return std::nullopt;
        }
        megatron = true;
    }
    if (!megatron && !titan)
        return std::nullopt;
    const int model = degrees[0].value * degrees[1].value * degrees[2].value;
    if (world < 1 || world % model != 0) {
        problem = fmt::format("the job's flags give tp x cp x pp = {}, which does not divide its "
                              "{} ranks",
                              model, world);
        return std::nullopt;
    }
    job_layout_guess g;
    g.spec = fmt::format("tp={},cp={},pp={},dp={}", degrees[0].value, degrees[1].value,
                         degrees[2].value, world / model);
    if (vpp > 1)
        g.spec += fmt::format(",vpp={}", vpp);
    g.order = flags.contains("--use-tp-pp-dp-mapping") ? "tp-cp-pp-dp" : "tp-cp-dp-pp";
    g.from =
        megatron ? "Megatron-LM flags on the command line" : "TorchTitan flags on the command line";
    return g;
}

} // namespace wlb::profiler
