// wlb_mpi_probe: an MPI program the integration tests start with mpirun to check the MPI side of
// the communicator seam. Scenarios (argv[1]):
//   collectives LAYOUT          every collective on the world and on each TP/CP/PP/DP group of
//                               LAYOUT against its closed form; send/recv around the world
//   watchdog SECONDS SILENT [LAYOUT]
//                               every world rank but SILENT enters an all_reduce (on the world,
//                               or on its CP group of LAYOUT); SILENT sleeps, so the watchdog
//                               must abort the job within SECONDS
//   decoder LAYOUT POLICY       one decoder step (double) with TP, CP, PP (1F1B order) and DP of
//                               LAYOUT and per_seq or per_doc chunks; every rank's loss and
//                               gradient part must equal a single-rank run within 1e-5 relative
//   run LAYOUT double|float|both
//                               the CPU trainer of `wlbtune run` (the simulator's pipeline
//                               schedule) on packer-made steps (plain and wlb packing) under
//                               every sharding policy (per-seq, per-doc, adaptive, hybrid): every
//                               rank's loss and gradients equal the single-rank run within the
//                               stated tolerance (tests/support/run_batches.hpp), 8 or 16 cases
//                               in one launch
// Exit code 0 when every check held; a failed check prints "wlb_mpi_probe: FAIL ..." and exits 1.
#include "base/error.hpp"
#include "runtime/comm/communicator.hpp"
#include "runtime/parallel/layout.hpp"
#include "support/hand_shards.hpp"
#include "support/run_batches.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
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
        // Every rank sends a message far above the eager size before anyone receives: only a
        // buffered send gets through this ring without a deadlock.
        std::vector<T> big(std::size_t{1} << 20, static_cast<T>(me));
        c.send(std::span<const T>(big), next, 12);
        c.recv(std::span<T>(big), prev, 12);
        if (big.front() != static_cast<T>(prev) || big.back() != static_cast<T>(prev))
            fail(fmt::format("large send/recv on {}", c.group().describe()));
    }
    c.barrier();
}

int collectives(const std::string& spec) {
    auto world = make_world_communicator({.watchdog_seconds = 20.0});
    const layout l = layout::parse(spec);
    auto groups = make_group_communicators(*world, l); // refuses another world size first
    check_collectives<float>(*world);
    check_collectives<double>(*world);
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

int decoder(const std::string& spec, const std::string& policy_name) {
    auto world = make_world_communicator({.watchdog_seconds = 20.0});
    const layout l = layout::parse(spec);
    if (policy_name != "per_seq" && policy_name != "per_doc")
        fail("decoder needs per_seq or per_doc");
    const auto pol =
        policy_name == "per_doc" ? wlb::test::policy::per_doc : wlb::test::policy::per_seq;
    auto groups = make_group_communicators(*world, l);
    decoder_config config = wlb::test::test_config();
    config.layers = 2 * l.vpp(); // interleaving needs pp x vpp model chunks
    const auto full = init_decoder_params<double>(config, 7);
    const auto ref = wlb::test::single_rank(full, config);
    const auto batch = wlb::test::split_over_replicas(wlb::test::test_micro_batches(), l.dp());
    const auto shards = wlb::test::shard_batch(batch, l.cp(), pol);
    const int stage = groups.pp->rank();
    const auto local = stage_decoder_params(
        shard_decoder_params(config, full, l.tp(), groups.tp->rank()), l.pp(), stage, l.vpp());
    // Pipeline stages run the 1F1B order without interleaving, all-forward-all-backward with.
    const int micro_batches = static_cast<int>(
        batch.replicas[static_cast<std::size_t>(groups.dp->rank())].micro_batches.size());
    const auto got = compute_step_gradients<double>(
        config, local, batch, shards,
        {*groups.tp, *groups.cp, *groups.dp, groups.pp.get(), l.vpp()},
        l.vpp() == 1 ? wlb::test::one_f_one_b(l.pp(), stage, micro_batches)
                     : std::vector<stage_op>{});
    double worst = std::abs(got.loss - ref.loss) / std::abs(ref.loss);
    const auto want = stage_decoder_params(
        shard_decoder_params(config, ref.grads, l.tp(), groups.tp->rank()), l.pp(), stage, l.vpp());
    std::vector<const std::vector<double>*> w;
    want.for_each([&](const std::string&, const std::vector<double>& t) { w.push_back(&t); });
    std::size_t i = 0;
    got.grads.for_each([&](const std::string& name, const std::vector<double>& t) {
        const auto& ref_t = *w[i++];
        double scale = 0;
        for (double v : ref_t)
            scale = std::max(scale, std::abs(v));
        for (std::size_t j = 0; j < t.size(); ++j) {
            const double err = std::abs(t[j] - ref_t[j]) / (std::abs(ref_t[j]) + 1e-6 * scale);
            worst = std::max(worst, err);
            if (err > 1e-5)
                fail(fmt::format("world rank {}: {}[{}] = {} but the single-rank run has {}",
                                 world->rank(), name, j, t[j], ref_t[j]));
        }
    });
    std::vector<double> max_err = {worst};
    world->all_reduce(std::span<double>(max_err)); // a sum bounds the max from above
    if (world->rank() == 0)
        fmt::print("decoder ok on {} ranks, layout {}, {}: loss {:.12f}, worst relative error "
                   "(summed over ranks) {:.3g}\n",
                   world->size(), l.spec(), policy_name, got.loss, max_err[0]);
    return 0;
}

int run_cases(const std::string& spec, const std::string& numbers) {
    if (numbers != "double" && numbers != "float" && numbers != "both")
        fail("run needs double, float or both");
    auto world = make_world_communicator({.watchdog_seconds = 30.0});
    const layout l = layout::parse(spec);
    int cases = 0;
    double worst = 0;
    for (auto packing : wlb::test::run_test_packings())
        for (auto sharding : wlb::test::run_test_shardings()) {
            std::string problem;
            if (numbers != "float") {
                problem = wlb::test::check_run_case<double>(*world, l, packing, sharding, worst);
                ++cases;
            }
            if (problem.empty() && numbers != "double") {
                problem = wlb::test::check_run_case<float>(*world, l, packing, sharding, worst);
                ++cases;
            }
            if (!problem.empty())
                fail(problem);
        }
    std::vector<double> w = {worst};
    world->all_reduce(std::span<double>(w)); // a sum bounds the max from above
    if (world->rank() == 0)
        fmt::print("run ok on {} ranks, layout {}: {} cases (plain and wlb packing x per-seq, "
                   "per-doc, adaptive, hybrid), worst error / tolerance (summed over ranks) "
                   "{:.3g}\n",
                   world->size(), l.spec(), cases, w[0]);
    return 0;
}

int watchdog(double seconds, int silent, const std::string& spec) {
    auto world = make_world_communicator({.watchdog_seconds = seconds});
    group_communicators groups;
    if (!spec.empty())
        groups = make_group_communicators(*world, layout::parse(spec));
    if (world->rank() == silent) {
        std::this_thread::sleep_for(std::chrono::duration<double>(10 * seconds + 30));
        fail("the silent rank was not aborted");
    }
    std::vector<double> x(16, 1.0);
    if (spec.empty())
        world->all_reduce(std::span<double>(x));
    else
        groups.cp->all_reduce(std::span<double>(x));
    if (spec.empty())
        fail("the all_reduce completed without the silent rank");
    // Ranks whose CP group does not hold the silent rank get here. They wait without a deadline
    // of their own, so the only watchdog that can fire is the silent rank's CP peer's, and its
    // abort must end them too.
    std::this_thread::sleep_for(std::chrono::duration<double>(10 * seconds + 30));
    fail("the silent rank's peer did not abort the job");
}

} // namespace

int main(int argc, char** argv) {
    try {
        const std::string scenario = argc > 1 ? argv[1] : "";
        if (scenario == "collectives" && argc == 3)
            return collectives(argv[2]);
        if (scenario == "decoder" && argc == 4)
            return decoder(argv[2], argv[3]);
        if (scenario == "run" && argc == 4)
            return run_cases(argv[2], argv[3]);
        if (scenario == "watchdog" && (argc == 4 || argc == 5))
            return watchdog(std::stod(argv[2]), std::stoi(argv[3]), argc == 5 ? argv[4] : "");
        fmt::print(stderr, "usage: wlb_mpi_probe collectives LAYOUT | watchdog SECONDS SILENT "
                           "[LAYOUT] | decoder LAYOUT "
                           "per_seq|per_doc | run LAYOUT double|float|both\n");
        return 2;
    } catch (const wlb::error& e) {
        fmt::print(stderr, "wlb_mpi_probe: error: {}\n", e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        fmt::print(stderr, "wlb_mpi_probe: error: {}\n", e.what());
        return 1;
    }
}
