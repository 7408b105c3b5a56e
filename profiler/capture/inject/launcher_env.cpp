#include "profiler/capture/inject/launcher_env.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>

namespace wlb::profiler {
namespace {

struct source {
    const char* launcher;
    const char* rank;
    const char* size; ///< may be null
    std::vector<const char*> local_rank;
    std::vector<const char*> local_size;
};

const std::vector<source>& sources() {
    static const std::vector<source> list = {
        {"torchrun", "RANK", "WORLD_SIZE", {"LOCAL_RANK"}, {"LOCAL_WORLD_SIZE"}},
        {"openmpi",
         "OMPI_COMM_WORLD_RANK",
         "OMPI_COMM_WORLD_SIZE",
         {"OMPI_COMM_WORLD_LOCAL_RANK"},
         {"OMPI_COMM_WORLD_LOCAL_SIZE"}},
        {"pmix", "PMIX_RANK", nullptr, {"PMIX_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"}, {}},
        {"pmi",
         "PMI_RANK",
         "PMI_SIZE",
         {"MPI_LOCALRANKID", "PMI_LOCAL_RANK"},
         {"MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"}},
        {"slurm", "SLURM_PROCID", "SLURM_NTASKS", {"SLURM_LOCALID"}, {}},
    };
    return list;
}

/// A whole non-negative decimal number, nothing else.
std::optional<int> number(const char* text) {
    if (text == nullptr)
        return std::nullopt;
    const std::string_view s(text);
    int v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0)
        return std::nullopt;
    return v;
}

std::string quoted(const char* name, const char* value) {
    return std::string(name) + "=\"" + value + "\"";
}

} // namespace

env_lookup process_environment() {
    return [](const char* name) -> const char* {
        return std::getenv(name);
    };
}

launcher_identity identify_launcher(const env_lookup& env) {
    launcher_identity id;
    for (const auto& s : sources()) {
        const char* rank_text = env(s.rank);
        if (rank_text == nullptr)
            continue;
        const auto rank = number(rank_text);
        if (!rank) {
            id.warnings.push_back(quoted(s.rank, rank_text) + " is not a rank (a number >= 0); " +
                                  s.launcher + "'s variables are ignored");
            continue;
        }
        int size = 0;
        if (s.size != nullptr) {
            if (const char* size_text = env(s.size); size_text != nullptr) {
                const auto n = number(size_text);
                if (!n || *n == 0 || *rank >= *n) {
                    id.warnings.push_back(quoted(s.size, size_text) + " does not hold " +
                                          quoted(s.rank, rank_text) + "; " + s.launcher +
                                          "'s variables are ignored");
                    continue;
                }
                size = *n;
            }
        }
        id.rank = *rank;
        id.world_size = size;
        id.launcher = s.launcher;
        id.local_rank = -1;
        bool local_known = false;
        for (const char* name : s.local_rank)
            if (const char* text = env(name); text != nullptr && !local_known) {
                if (const auto n = number(text)) {
                    id.local_rank = *n;
                    local_known = true;
                } else {
                    id.warnings.push_back(quoted(name, text) + " is not a local rank; ignored");
                }
            }
        for (const char* name : s.local_size)
            if (const char* text = env(name); text != nullptr && id.local_world_size == 0) {
                if (const auto n = number(text); n && *n > std::max(id.local_rank, 0))
                    id.local_world_size = *n;
                else
                    id.warnings.push_back(quoted(name, text) + " is not a local size; ignored");
            }
        return id;
    }
    return id;
}

} // namespace wlb::profiler
