// wlb_mpi_probe: an MPI program the integration tests start with mpirun to check the MPI side of
// the communicator seam. Scenarios (argv[1]):
//   collectives LAYOUT          every collective on the world and on each TP/CP/PP/DP group of
//                               LAYOUT against its closed form; send/recv around the world
//   watchdog SECONDS SILENT     every world rank but SILENT enters a world all_reduce; SILENT
//                               sleeps, so the watchdog must abort the job within SECONDS
// Exit code 0 when every check held; a failed check prints "wlb_mpi_probe: FAIL ..." and exits 1.
#include "runtime/communicator.hpp"
#include "runtime/error.hpp"
#include "runtime/layout.hpp"

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <string>
#include <thread>
#include <vector>

using namespace wlb::runtime;

namespace {

[[noreturn]] void fail(const std::string& what) {
    fmt::print(stderr, "wlb_mpi_probe: FAIL {}\n", what);
    std::fflush(stderr);
    std::exit(1);
}

template <typename T>
T value(int m, std::size_t i) {
    return static_cast<T>(1000 * (m + 1) + static_cast<int>(i));
}

template <typename T>
void check_collectives(communicator& c) {
    const int n = c.size();
    const int me = c.rank();
    const std::size_t block = 7;
    std::vector<T> mine(block);
    for (std::size_t i = 0; i < block; ++i)
        mine[i] = value<T>(me, i);
    std::vector<T> all(block * static_cast<std::size_t>(n));
    c.all_gather(std::span<const T>(mine), std::span<T>(all));
    for (int m = 0; m < n; ++m)
        for (std::size_t i = 0; i < block; ++i)
            if (all[static_cast<std::size_t>(m) * block + i] != value<T>(m, i))
                fail(fmt::format("all_gather on {}", c.group().describe()));
    std::vector<T> whole(block * static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < whole.size(); ++i)
        whole[i] = value<T>(me, i);
    std::vector<T> part(block);
    c.reduce_scatter(std::span<const T>(whole), std::span<T>(part));
    for (std::size_t i = 0; i < block; ++i) {
        T expect = 0;
        for (int m = 0; m < n; ++m)
            expect += value<T>(m, static_cast<std::size_t>(me) * block + i);
        if (part[i] != expect)
            fail(fmt::format("reduce_scatter on {}", c.group().describe()));
    }
    std::vector<T> data = mine;
    c.all_reduce(std::span<T>(data));
    for (std::size_t i = 0; i < block; ++i) {
        T expect = 0;
        for (int m = 0; m < n; ++m)
            expect += value<T>(m, i);
        if (data[i] != expect)
            fail(fmt::format("all_reduce on {}", c.group().describe()));
    }
    if (n > 1) {
        const int next = (me + 1) % n;
        const int prev = (me + n - 1) % n;
        c.send(std::span<const T>(mine), next, 11);
        std::vector<T> got(block);
        c.recv(std::span<T>(got), prev, 11);
        for (std::size_t i = 0; i < block; ++i)
            if (got[i] != value<T>(prev, i))
                fail(fmt::format("send/recv on {}", c.group().describe()));
    }
    c.barrier();
}

int collectives(const std::string& spec) {
    auto world = make_world_communicator({.watchdog_seconds = 20.0});
    const layout l = layout::parse(spec);
    check_collectives<float>(*world);
    check_collectives<double>(*world);
    auto groups = make_group_communicators(*world, l);
    for (axis a : all_axes) {
        communicator& c = groups.of(static_cast<int>(a));
        if (c.group().world_ranks != l.group_of(world->rank(), a) ||
            c.rank() != l.coords_of(world->rank())[a])
            fail(fmt::format("{} does not match the layout", c.group().describe()));
        check_collectives<double>(c);
    }
    if (world->rank() == 0)
        fmt::print("collectives ok on {} ranks, layout {}\n", world->size(), l.spec());
    return 0;
}

int watchdog(double seconds, int silent) {
    auto world = make_world_communicator({.watchdog_seconds = seconds});
    if (world->rank() == silent) {
        std::this_thread::sleep_for(std::chrono::duration<double>(10 * seconds + 30));
        fail("the silent rank was not aborted");
    }
    std::vector<double> x(16, 1.0);
    world->all_reduce(std::span<double>(x));
    fail("the all_reduce completed without the silent rank");
}

} // namespace

int main(int argc, char** argv) {
    try {
        const std::string scenario = argc > 1 ? argv[1] : "";
        if (scenario == "collectives" && argc == 3)
            return collectives(argv[2]);
        if (scenario == "watchdog" && argc == 4)
            return watchdog(std::stod(argv[2]), std::stoi(argv[3]));
        fmt::print(stderr, "usage: wlb_mpi_probe collectives LAYOUT | watchdog SECONDS SILENT\n");
        return 2;
    } catch (const wlb::error& e) {
        fmt::print(stderr, "wlb_mpi_probe: error: {}\n", e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        fmt::print(stderr, "wlb_mpi_probe: error: {}\n", e.what());
        return 1;
    }
}
