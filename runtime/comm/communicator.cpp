#include "runtime/comm/communicator.hpp"

#include "base/error.hpp"
#include "runtime/parallel/layout.hpp"

#include <charconv>
#include <cstdlib>
#include <fmt/ranges.h>

namespace wlb::runtime {

std::string group_desc::describe() const {
    return fmt::format("{} group [{}]", kind, fmt::join(world_ranks, ", "));
}

std::string communicator::watchdog_message(std::string_view op, double timeout_seconds,
                                           const std::vector<int>& missing_members) const {
    std::vector<int> missing_world;
    for (int m : missing_members)
        missing_world.push_back(group().world_ranks[static_cast<std::size_t>(m)]);
    std::string missing = missing_world.empty()
                              ? std::string("none (every peer arrived; the transfer stalled)")
                              : fmt::format("[{}]", fmt::join(missing_world, ", "));
    return fmt::format("watchdog: {} on {} did not complete within {:g} s on world rank {}; "
                       "missing peers (world ranks): {}",
                       op, group().describe(), timeout_seconds, world_rank(), missing);
}

void communicator::check_gather(std::size_t block, std::size_t whole, std::string_view op) const {
    WLB_EXPECTS(whole == block * static_cast<std::size_t>(size()),
                "{} on {}: the whole buffer has {} elements, expected {} x {}", op,
                group().describe(), whole, size(), block);
}

void communicator::check_peer(int peer, int tag, std::string_view op) const {
    WLB_EXPECTS(peer >= 0 && peer < size() && peer != rank(),
                "{} on {}: peer {} is not another member of a group of {}", op, group().describe(),
                peer, size());
    WLB_EXPECTS(tag >= 0 && tag <= max_tag, "{}: tag {} outside [0, {}]", op, tag, max_tag);
}

std::vector<std::int64_t> all_gather_int64(communicator& c, std::int64_t value) {
    WLB_EXPECTS(value >= 0, "all_gather_int64 of a negative value {}", value);
    const std::vector<double> mine = {static_cast<double>(value >> 32),
                                      static_cast<double>(value & 0xffffffff)};
    std::vector<double> all(2 * static_cast<std::size_t>(c.size()));
    c.all_gather(std::span<const double>(mine), std::span<double>(all));
    std::vector<std::int64_t> out;
    for (std::size_t r = 0; r < static_cast<std::size_t>(c.size()); ++r)
        out.push_back((static_cast<std::int64_t>(all[2 * r]) << 32) +
                      static_cast<std::int64_t>(all[2 * r + 1]));
    return out;
}

communicator& group_communicators::of(int axis_index) const {
    const std::unique_ptr<communicator>* all[] = {&tp, &cp, &pp, &dp};
    WLB_EXPECTS(axis_index >= 0 && axis_index < 4 && *all[axis_index], "no communicator {}",
                axis_index);
    return **all[axis_index];
}

group_communicators make_group_communicators(communicator& world, const layout& l) {
    if (l.world_size() != world.size())
        throw input_error(fmt::format("layout {} needs {} ranks but the job has {}; start it with "
                                      "`mpirun -np {}` or change the layout",
                                      l.spec(), l.world_size(), world.size(), l.world_size()));
    group_communicators out;
    std::unique_ptr<communicator>* slots[] = {&out.tp, &out.cp, &out.pp, &out.dp};
    for (axis a : all_axes) {
        group_desc g;
        g.kind = std::string(axis_name(a));
        g.world_ranks.reserve(static_cast<std::size_t>(l.degree(a)));
        for (int member : l.group_of(world.rank(), a))
            g.world_ranks.push_back(world.group().world_ranks[static_cast<std::size_t>(member)]);
        *slots[static_cast<int>(a)] = world.split(g);
    }
    return out;
}

namespace {

bool env_int(const char* name, int& value) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0')
        return false;
    const char* end = text + std::char_traits<char>::length(text);
    auto [ptr, ec] = std::from_chars(text, end, value);
    return ec == std::errc() && ptr == end;
}

} // namespace

launch_info detect_launch() {
    struct source {
        const char* rank;
        const char* size;
        const char* name;
    };
    static constexpr source sources[] = {
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "openmpi"},
        {"PMIX_RANK", "PMIX_SIZE", "pmix"},
        {"PMI_RANK", "PMI_SIZE", "pmi"},
        {"SLURM_PROCID", "SLURM_NTASKS", "slurm"},
    };
    for (const auto& s : sources) {
        launch_info info;
        if (env_int(s.rank, info.rank) && env_int(s.size, info.size) && info.size >= 1 &&
            info.rank >= 0 && info.rank < info.size) {
            info.launcher = s.name;
            return info;
        }
    }
    return {};
}

} // namespace wlb::runtime
