// The device step's host plans, without a GPU: the token plan (rows, padding, ids, labels,
// positions, the CP key/value gather map and its transpose), the parameter layout (sizes without
// values, the TP-replicated prefix), the emulated world (collectives and transfers as copies,
// virtual clocks, deadlocks and failures reported), and the op recorder's virtual clock.
#include "base/error.hpp"
#include "runtime/comm/emulated_world.hpp"
#include "runtime/device/host_device.hpp"
#include "runtime/train/device_params.hpp"
#include "runtime/train/op_recorder.hpp"
#include "runtime/train/token_plan.hpp"
#include "support/hand_shards.hpp"

#include <gtest/gtest.h>
#include <map>
#include <numeric>

using namespace wlb::runtime;
using namespace wlb::test;

namespace {

micro_batch plan_batch() {
    micro_batch mb;
    mb.docs = {{10, 9, 0}, {11, 3, 0}, {12, 1, 0}, {13, 6, 0}};
    return mb;
}

/// (document, position) of every token the CP ranks hold, at its all-gathered row.
std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>>
gathered_tokens(const sharded_micro_batch& s, std::int64_t block_rows) {
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> out;
    for (std::size_t r = 0; r < s.ranks.size(); ++r) {
        std::int64_t i = 0;
        for (const auto& c : s.ranks[r].chunks)
            for (std::int64_t k = 0; k < c.q_tokens; ++k)
                out[static_cast<std::int64_t>(r) * block_rows + i++] = {c.doc_id, c.q_offset + k};
    }
    return out;
}

TEST(TokenPlan, RowsPaddingIdsLabelsAndPositionsFollowTheChunks) {
    const auto mb = plan_batch();
    for (int cp : {1, 2, 3})
        for (int tp : {1, 2, 4}) {
            const auto shard = per_doc(mb, cp);
            std::int64_t labelled = 0;
            for (int r = 0; r < cp; ++r)
                for (int t = 0; t < tp; ++t) {
                    const auto p = plan_tokens(mb, shard, r, tp, t, 50);
                    std::int64_t tokens = 0;
                    for (const auto& c : shard.ranks[static_cast<std::size_t>(r)].chunks)
                        tokens += c.q_tokens;
                    EXPECT_EQ(p.tokens, tokens);
                    EXPECT_GE(p.rows, tokens);
                    EXPECT_LT(p.rows, std::max<std::int64_t>(tokens, 1) + tp);
                    EXPECT_EQ(p.rows % tp, 0);
                    EXPECT_EQ(p.shard_rows * tp, p.rows);
                    EXPECT_GE(p.block_rows, p.rows);
                    // The rank's tokens in chunk order; padding at position 0 with no label.
                    std::vector<std::int32_t> ids, labels;
                    std::vector<std::int64_t> positions;
                    for (const auto& c : shard.ranks[static_cast<std::size_t>(r)].chunks)
                        for (std::int64_t k = 0; k < c.q_tokens; ++k) {
                            const auto pos = c.q_offset + k;
                            const auto& d =
                                *std::find_if(mb.docs.begin(), mb.docs.end(),
                                              [&](auto& x) { return x.id == c.doc_id; });
                            ids.push_back(document_token(c.doc_id, pos, 50));
                            labels.push_back(
                                pos + 1 < d.tokens ? document_token(c.doc_id, pos + 1, 50) : -1);
                            positions.push_back(pos);
                        }
                    ids.resize(static_cast<std::size_t>(p.rows), 0);
                    labels.resize(static_cast<std::size_t>(p.rows), -1);
                    positions.resize(static_cast<std::size_t>(p.rows), 0);
                    EXPECT_EQ(p.positions, positions);
                    const auto from = static_cast<std::ptrdiff_t>(t * p.shard_rows);
                    EXPECT_EQ(p.shard_ids,
                              std::vector<std::int32_t>(ids.begin() + from,
                                                        ids.begin() + from + p.shard_rows));
                    EXPECT_EQ(p.shard_labels,
                              std::vector<std::int32_t>(labels.begin() + from,
                                                        labels.begin() + from + p.shard_rows));
                    labelled += p.labelled();
                }
            std::int64_t want = 0;
            for (const auto& d : mb.docs)
                want += d.tokens - 1;
            EXPECT_EQ(labelled, want) << "cp " << cp << " tp " << tp;
        }
}

TEST(TokenPlan, TheKeySegmentsGatherEachChunksDocumentPrefixAndTheScatterIsItsTranspose) {
    const auto mb = plan_batch();
    for (int cp : {1, 2, 4}) {
        for (const auto& shard : {per_doc(mb, cp), per_seq(mb, cp)}) {
            for (int r = 0; r < cp; ++r) {
                const auto p = plan_tokens(mb, shard, r, 2, 1, 50);
                const auto tokens = gathered_tokens(shard, p.block_rows);
                ASSERT_EQ(p.kv_offsets.size(), static_cast<std::size_t>(p.kv_rows + 1));
                std::size_t c = 0;
                for (const auto& ch : shard.ranks[static_cast<std::size_t>(r)].chunks) {
                    if (ch.q_tokens == 0)
                        continue;
                    ASSERT_LT(c, p.q_offsets.size());
                    EXPECT_EQ(p.q_offsets[c], ch.q_offset);
                    EXPECT_EQ(p.cu_k[c + 1] - p.cu_k[c], ch.q_offset + ch.q_tokens);
                    for (std::int64_t j = 0; j < ch.q_offset + ch.q_tokens; ++j) {
                        const auto row = p.cu_k[c] + j;
                        ASSERT_EQ(p.kv_offsets[static_cast<std::size_t>(row) + 1] -
                                      p.kv_offsets[static_cast<std::size_t>(row)],
                                  1);
                        const auto src = p.kv_sources[static_cast<std::size_t>(
                            p.kv_offsets[static_cast<std::size_t>(row)])];
                        EXPECT_EQ(tokens.at(src), std::make_pair(ch.doc_id, j))
                            << "cp " << cp << " rank " << r << " chunk " << c << " key " << j;
                    }
                    ++c;
                }
                // Transposed: every segment row listed once, under the row it reads.
                ASSERT_EQ(p.dkv_offsets.size(), static_cast<std::size_t>(cp * p.block_rows + 1));
                std::vector<int> seen(static_cast<std::size_t>(p.kv_rows), 0);
                for (std::int64_t t = 0; t < cp * p.block_rows; ++t)
                    for (auto i = p.dkv_offsets[static_cast<std::size_t>(t)];
                         i < p.dkv_offsets[static_cast<std::size_t>(t) + 1]; ++i) {
                        const auto j = p.dkv_sources[static_cast<std::size_t>(i)];
                        EXPECT_EQ(p.kv_sources[static_cast<std::size_t>(j)], t);
                        ++seen[static_cast<std::size_t>(j)];
                    }
                for (int s : seen)
                    EXPECT_EQ(s, 1);
                EXPECT_FALSE(p.kv_local && cp > 1);
            }
        }
    }
    // One CP rank with whole documents reads its own rows: no exchange.
    EXPECT_TRUE(plan_tokens(mb, whole_documents(mb), 0, 2, 0, 50).kv_local);
}

// ---- parameters ---------------------------------------------------------------------------

TEST(DeviceParams, SizesWithoutValuesAndTheReplicatedPrefix) {
    decoder_config mha;
    mha.vocab = 24, mha.hidden = 16, mha.heads = 4, mha.ffn = 24, mha.layers = 4;
    auto gqa = mha;
    gqa.kv_heads = 2;
    for (const auto& config : {mha, gqa}) {
        const auto full = init_decoder_params<float>(config, 3);
        for (int tp : {1, 2})
            for (int pp : {1, 2})
                for (int vpp : {1, 2}) {
                    if (vpp > 1 && pp < 2)
                        continue;
                    for (int s = 0; s < pp; ++s) {
                        const auto local = stage_decoder_params(
                            shard_decoder_params(config, full, tp, tp - 1), pp, s, vpp);
                        std::vector<std::pair<std::string, std::size_t>> actual;
                        local.for_each([&](const std::string& n, const std::vector<float>& t) {
                            actual.emplace_back(n, t.size());
                        });
                        const auto sizes = local_param_sizes(config, tp, pp, s, vpp);
                        EXPECT_EQ(sizes, actual) << tp << " " << pp << " " << s << " " << vpp;
                        const device_param_layout layout(sizes);
                        std::size_t total = 0;
                        for (const auto& [n, c] : sizes)
                            total += c;
                        EXPECT_EQ(layout.total(), total);
                        layout.for_each([&](const std::string& name, const param_slot& slot) {
                            const bool prefix = slot.offset + slot.count <= layout.replicated();
                            EXPECT_EQ(prefix, device_param_layout::tp_replicated(name)) << name;
                        });
                        const auto flat = layout.flatten(local);
                        const auto back = layout.unflatten(flat, local.zeros_like());
                        std::vector<float> a, b;
                        local.for_each([&](const std::string&, const std::vector<float>& t) {
                            a.insert(a.end(), t.begin(), t.end());
                        });
                        back.for_each([&](const std::string&, const std::vector<float>& t) {
                            b.insert(b.end(), t.begin(), t.end());
                        });
                        EXPECT_EQ(a, b);
                    }
                }
    }
}

// ---- the emulated world -------------------------------------------------------------------

group_desc group_of(std::vector<int> ranks) {
    group_desc g;
    g.kind = "test";
    g.world_ranks = std::move(ranks);
    return g;
}

TEST(EmulatedWorld, CollectivesAndTransfersMoveTheData) {
    const int n = 3;
    emulated_world world(n);
    std::vector<std::unique_ptr<compute_device>> devices;
    std::vector<std::unique_ptr<device_comm>> comms;
    for (int r = 0; r < n; ++r) {
        devices.push_back(make_host_device());
        comms.push_back(world.comm(r, group_of({0, 1, 2}), *devices.back()));
    }
    std::vector<std::vector<float>> gathered(n), scattered(n), reduced(n), received(n);
    world.run([&](int r) {
        auto& d = *devices[static_cast<std::size_t>(r)];
        auto& c = *comms[static_cast<std::size_t>(r)];
        auto mine = d.alloc(dtype::bf16, 2);
        const std::vector<float> v = {static_cast<float>(r), static_cast<float>(10 * r)};
        auto f = d.alloc(dtype::f32, 2);
        d.upload(f, v.data());
        d.convert(mine, f);
        auto all = d.alloc(dtype::bf16, 6);
        c.all_gather(mine, all);
        auto all_f = d.alloc(dtype::f32, 6);
        d.convert(all_f, all);
        gathered[static_cast<std::size_t>(r)].resize(6);
        d.download(all_f, gathered[static_cast<std::size_t>(r)].data());
        // reduce_scatter of [r, r, r, r, r, r] + index: block r summed over members.
        auto six = d.alloc(dtype::f32, 6);
        std::vector<float> s6(6);
        std::iota(s6.begin(), s6.end(), static_cast<float>(r));
        d.upload(six, s6.data());
        auto part = d.alloc(dtype::f32, 2);
        c.reduce_scatter(six, part);
        scattered[static_cast<std::size_t>(r)].resize(2);
        d.download(part, scattered[static_cast<std::size_t>(r)].data());
        c.all_reduce(f);
        reduced[static_cast<std::size_t>(r)].resize(2);
        d.download(f, reduced[static_cast<std::size_t>(r)].data());
        // A ring of two messages each, received in the other tag order.
        auto m1 = d.alloc(dtype::f32, 1), m2 = d.alloc(dtype::f32, 1);
        const float one = static_cast<float>(100 + r), two = static_cast<float>(200 + r);
        d.upload(m1, &one);
        d.upload(m2, &two);
        c.send(m1, (r + 1) % n, 1);
        c.send(m2, (r + 1) % n, 2);
        auto g2 = d.alloc(dtype::f32, 1), g1 = d.alloc(dtype::f32, 1);
        c.recv(g2, (r + n - 1) % n, 2);
        c.recv(g1, (r + n - 1) % n, 1);
        received[static_cast<std::size_t>(r)].resize(2);
        d.download(g1, &received[static_cast<std::size_t>(r)][0]);
        d.download(g2, &received[static_cast<std::size_t>(r)][1]);
    });
    for (int r = 0; r < n; ++r) {
        EXPECT_EQ(gathered[static_cast<std::size_t>(r)], (std::vector<float>{0, 0, 1, 10, 2, 20}));
        // member i brought i + index; block r (indices 2r, 2r+1) summed over i = 0, 1, 2
        const float b = static_cast<float>(3 * 2 * r + 3);
        EXPECT_EQ(scattered[static_cast<std::size_t>(r)], (std::vector<float>{b, b + 3}));
        EXPECT_EQ(reduced[static_cast<std::size_t>(r)], (std::vector<float>{3, 30}));
        const int from = (r + n - 1) % n;
        EXPECT_EQ(
            received[static_cast<std::size_t>(r)],
            (std::vector<float>{static_cast<float>(100 + from), static_cast<float>(200 + from)}));
    }
}

TEST(EmulatedWorld, VirtualClocksEndCollectivesAtTheLastArrivalPlusTheirTime) {
    emulated_comm_model model;
    model.collective_seconds = [](collective_kind, double, std::span<const int>) {
        return 0.5;
    };
    model.p2p_seconds = [](double, int, int) {
        return 0.25;
    };
    emulated_world world(3, model);
    std::vector<std::unique_ptr<compute_device>> devices;
    std::vector<std::unique_ptr<device_comm>> comms;
    for (int r = 0; r < 3; ++r) {
        devices.push_back(make_host_device());
        comms.push_back(world.comm(r, group_of({0, 1, 2}), *devices.back()));
    }
    world.clock(0).now_s = 1.0;
    world.clock(1).now_s = 3.0;
    world.clock(2).now_s = 2.0;
    world.run([&](int r) {
        auto& d = *devices[static_cast<std::size_t>(r)];
        auto x = d.alloc(dtype::f32, 4);
        d.zero(x);
        comms[static_cast<std::size_t>(r)]->all_reduce(x);
        if (r == 2)
            world.clock(r).now_s += 1.0; // rank 2 works a second before it sends
        if (r == 2)
            comms[2]->send(x, 0, 0);
        if (r == 0)
            comms[0]->recv(x, 2, 0);
    });
    EXPECT_DOUBLE_EQ(world.clock(1).now_s, 3.5);              // 3.0 latest + 0.5
    EXPECT_DOUBLE_EQ(world.clock(2).now_s, 3.5 + 1.0 + 0.25); // the send occupies its sender
    EXPECT_DOUBLE_EQ(world.clock(0).now_s, 4.75);             // the message arrives at 4.75
    world.run([&](int r) { world.clock_barrier(r); });
    for (int r = 0; r < 3; ++r)
        EXPECT_DOUBLE_EQ(world.clock(r).now_s, 4.75);
}

TEST(EmulatedWorld, ADeadlockIsReportedWithEveryRanksWaitNotHung) {
    emulated_world world(2);
    std::vector<std::unique_ptr<compute_device>> devices;
    std::vector<std::unique_ptr<device_comm>> comms;
    for (int r = 0; r < 2; ++r) {
        devices.push_back(make_host_device());
        comms.push_back(world.comm(r, group_of({0, 1}), *devices.back()));
    }
    try {
        world.run([&](int r) {
            auto x = devices[static_cast<std::size_t>(r)]->alloc(dtype::f32, 1);
            comms[static_cast<std::size_t>(r)]->recv(x, 1 - r, 0);
        });
        FAIL() << "a deadlock must not pass";
    } catch (const wlb::runtime_failure& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("no rank can continue"), std::string::npos) << what;
        EXPECT_NE(what.find("rank 0 waits in recv from member 1"), std::string::npos) << what;
        EXPECT_NE(what.find("rank 1 waits in recv from member 0"), std::string::npos) << what;
    }
}

TEST(EmulatedWorld, ARanksFailureEndsTheOthersAndIsRethrown) {
    emulated_world world(2);
    std::vector<std::unique_ptr<compute_device>> devices;
    std::vector<std::unique_ptr<device_comm>> comms;
    for (int r = 0; r < 2; ++r) {
        devices.push_back(make_host_device());
        comms.push_back(world.comm(r, group_of({0, 1}), *devices.back()));
    }
    EXPECT_THROW(world.run([&](int r) {
        auto x = devices[static_cast<std::size_t>(r)]->alloc(dtype::f32, 1);
        if (r == 1)
            throw wlb::input_error("rank 1 refuses");
        comms[0]->all_reduce(x); // waits for rank 1, which never comes
    }),
                 wlb::input_error);
}

// ---- the op recorder ----------------------------------------------------------------------

struct kept final : step_observer {
    std::vector<op_record> ops;
    void record(const op_record& op) override { ops.push_back(op); }
};

TEST(OpRecorder, TheVirtualClockLaysWorkBackToBackAndTakesTransfersFromTheWorld) {
    auto d = make_host_device();
    virtual_clock clock{2.0};
    auto rec = make_virtual_clock_recorder(*d, clock);
    rec->begin_step();
    op_record a, b, c;
    a.name = "a", b.name = "b";
    c.name = "c", c.type = op_type::collective, c.lane = op_lane::tp;
    rec->begin(a);
    rec->end();
    rec->begin(b);
    rec->end();
    rec->begin(c);
    clock.now_s += 0.75; // what the emulated collective does
    rec->end();
    kept k;
    rec->end_step(&k);
    ASSERT_EQ(k.ops.size(), 3u);
    EXPECT_EQ(k.ops[0].start_ns, 2'000'000'000);
    EXPECT_EQ(k.ops[1].start_ns, k.ops[0].start_ns + k.ops[0].dur_ns);
    EXPECT_EQ(k.ops[2].start_ns, k.ops[1].start_ns + k.ops[1].dur_ns);
    EXPECT_EQ(k.ops[2].dur_ns, 750'000'000);
    EXPECT_EQ(k.ops[2].lane, op_lane::tp);
}

TEST(OpRecorder, TheDeviceClockStartsAtTheStepAndNeverRunsBackwards) {
    auto d = make_host_device();
    auto rec = make_device_clock_recorder(*d);
    const auto before = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    rec->begin_step();
    op_record a;
    a.name = "a";
    for (int i = 0; i < 3; ++i) {
        rec->begin(a);
        rec->end();
    }
    kept k;
    rec->end_step(&k);
    ASSERT_EQ(k.ops.size(), 3u);
    std::int64_t end = before;
    for (const auto& o : k.ops) {
        EXPECT_GE(o.start_ns, end);
        EXPECT_GE(o.dur_ns, 0);
        end = o.start_ns + o.dur_ns;
    }
}

} // namespace
