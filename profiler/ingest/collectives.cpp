#include "profiler/ingest/collectives.hpp"

#include "profiler/ingest/kernel_names.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace wlb::profiler {
namespace {

// Where a collective sits on its rank, without its occurrence number.
struct slot_key {
    std::int32_t group = -1;
    std::int32_t step = -1;
    std::int32_t micro_batch = -1;
    std::int32_t virtual_stage = -1;
    std::int32_t phase = 0;
    std::int32_t name = 0;
    std::int64_t seq = -1;
    friend auto operator<=>(const slot_key&, const slot_key&) = default;
};

} // namespace

std::vector<collective_instance> match_collectives(const job_trace& job) {
    // NCCL kernels of one collective may carry different names on different ranks (protocol,
    // NCCL version): they match on the operation, not the kernel name.
    std::vector<std::int32_t> match_name(job.names.size(), -1);
    auto canonical = [&](std::int32_t id) {
        auto& m = match_name[static_cast<std::size_t>(id)];
        if (m < 0) {
            const auto info = classify_kernel(job.names[id]);
            m = info.kind == kernel_kind::nccl ? static_cast<std::int32_t>(job.names.size()) +
                                                     static_cast<std::int32_t>(info.op)
                                               : id;
        }
        return m;
    };
    // (slot, occurrence) -> members; and per slot, the count on each rank.
    std::map<std::pair<slot_key, std::int64_t>, std::vector<collective_member>> by_key;
    std::map<slot_key, std::vector<std::pair<int, std::int64_t>>> counts; // (rank, count)
    for (std::size_t r = 0; r < job.ranks.size(); ++r) {
        const auto& events = job.ranks[r].events;
        std::map<slot_key, std::int64_t> seen;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            if (e.kind != runtime::event_kind::collective || e.group < 0)
                continue;
            slot_key k;
            k.group = e.group;
            if (e.seq >= 0) {
                k.seq = e.seq;
            } else {
                k.step = e.step;
                k.micro_batch = e.micro_batch;
                k.virtual_stage = e.virtual_stage;
                k.phase = static_cast<std::int32_t>(e.ph);
                k.name = canonical(e.name);
            }
            const std::int64_t occurrence = e.seq >= 0 ? 0 : seen[k]++;
            by_key[{k, occurrence}].push_back({static_cast<int>(r), i});
        }
        for (const auto& [k, n] : seen)
            counts[k].emplace_back(static_cast<int>(r), n);
    }
    std::vector<collective_instance> out;
    out.reserve(by_key.size());
    for (auto& [key, members] : by_key) {
        const auto& k = key.first;
        const auto& group = job.groups[static_cast<std::size_t>(k.group)];
        if (k.seq < 0) {
            const auto& c = counts[k];
            const bool same = std::all_of(c.begin(), c.end(),
                                          [&](const auto& x) { return x.second == c[0].second; });
            if (!same)
                continue;
        }
        // Every listed member present (those whose rank is missing from the job are absent
        // from the trace, not from the collective: keep the instance over the ranks we have).
        if (!group.ranks.empty()) {
            std::size_t present = 0;
            for (int r : group.ranks)
                if (r < static_cast<int>(job.ranks.size()) &&
                    job.ranks[static_cast<std::size_t>(r)].present)
                    ++present;
            if (members.size() != present)
                continue;
        }
        if (members.size() < 2)
            continue;
        collective_instance inst;
        inst.group = k.group;
        const auto& first =
            job.ranks[static_cast<std::size_t>(members.front().rank)].events[members.front().event];
        inst.step = first.step;
        inst.members = std::move(members);
        out.push_back(std::move(inst));
    }
    return out;
}

} // namespace wlb::profiler
