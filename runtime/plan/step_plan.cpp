#include "runtime/plan/step_plan.hpp"

#include "base/error.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace wlb::runtime {
namespace {

std::int64_t shard_tokens(const cp_shard& s) {
    std::int64_t n = 0;
    for (const auto& c : s.chunks)
        n += c.q_tokens;
    return n;
}

// Global ranks of a unit's group along the given axes (TP coordinate 0).
std::vector<int> members_of(const layout& l, const coords& c, bool along_cp, bool along_dp) {
    std::vector<int> ranks;
    const int cps = along_cp ? l.cp() : 1;
    const int dps = along_dp ? l.dp() : 1;
    for (int d = 0; d < dps; ++d)
        for (int k = 0; k < cps; ++k) {
            coords m = c;
            m.tp = 0;
            if (along_cp)
                m.cp = k;
            if (along_dp)
                m.dp = d;
            ranks.push_back(l.rank_of(m));
        }
    return ranks;
}

} // namespace

int step_plan::unit_of_rank(int rank) const {
    const coords c = job_layout.coords_of(rank);
    return unit_of(c.cp, c.pp, c.dp);
}

step_plan build_step_plan(const layout& l, const sharded_step& batch, const duration_model& model,
                          const plan_options& options) {
    const int tp = l.tp(), cp = l.cp(), pp = l.pp(), dp = l.dp(), vpp = l.vpp();
    const int chunks = pp * vpp;
    const plan_shape shape = model.shape();
    step_plan plan;
    plan.job_layout = l;
    plan.step = batch.step;
    plan.partition = options.partition.layers.empty()
                         ? make_stage_partition("even", shape.layers, chunks)
                         : options.partition;
    if (plan.partition.chunks() != chunks)
        throw input_error(fmt::format("stage partition {} has {} model chunks; layout {} has {}",
                                      plan.partition.describe(), plan.partition.chunks(), l.spec(),
                                      chunks));
    if (plan.partition.total_layers() != shape.layers)
        throw input_error(fmt::format("stage partition {} holds {} layers; the model has {}",
                                      plan.partition.describe(), plan.partition.total_layers(),
                                      shape.layers));
    plan.schedule = options.schedule.describe(pp, vpp);
    if (static_cast<int>(batch.replicas.size()) != dp)
        throw input_error(fmt::format("step {}: the batch has {} DP replicas; layout {} has dp={}",
                                      batch.step, batch.replicas.size(), l.spec(), dp));
    int max_mb = 0;
    plan.micro_batches.resize(static_cast<std::size_t>(dp));
    plan.tokens.resize(static_cast<std::size_t>(dp));
    for (int d = 0; d < dp; ++d) {
        const auto& rep = batch.replicas[static_cast<std::size_t>(d)];
        if (rep.empty())
            throw input_error(
                fmt::format("step {}: DP replica {} has no micro-batch", batch.step, d));
        for (std::size_t m = 0; m < rep.size(); ++m) {
            if (static_cast<int>(rep[m].ranks.size()) != cp)
                throw input_error(fmt::format(
                    "step {}: DP replica {} micro-batch {} is sharded over {} CP ranks; the "
                    "layout has cp={}",
                    batch.step, d, m, rep[m].ranks.size(), cp));
            std::int64_t n = 0;
            for (const auto& s : rep[m].ranks)
                n += shard_tokens(s);
            plan.tokens[static_cast<std::size_t>(d)].push_back(n);
        }
        plan.micro_batches[static_cast<std::size_t>(d)] = static_cast<int>(rep.size());
        max_mb = std::max(max_mb, static_cast<int>(rep.size()));
    }

    // Units.
    const int units = cp * pp * dp;
    plan.units.resize(static_cast<std::size_t>(units));
    for (int d = 0; d < dp; ++d)
        for (int p = 0; p < pp; ++p)
            for (int c = 0; c < cp; ++c) {
                auto& u = plan.units[static_cast<std::size_t>(plan.unit_of(c, p, d))];
                u.where = coords{0, c, p, d};
                u.rank = l.rank_of(u.where);
            }

    // Per-layer costs: index ((d * max_mb + m) * cp + c) * 2 + pass, then * pp + p for TP
    // (TP groups of different stages may sit differently across nodes).
    plan.costs.resize(static_cast<std::size_t>(dp * max_mb * cp * 2 * pp));
    auto cost_index = [&](int d, int m, int c, pass ph, int p) {
        return ((((d * max_mb + m) * cp + c) * 2 + static_cast<int>(ph)) * pp + p);
    };
    std::vector<std::vector<int>> tp_groups(static_cast<std::size_t>(pp * cp * dp));
    for (int u = 0; u < units; ++u)
        tp_groups[static_cast<std::size_t>(u)] =
            l.group_of(plan.units[static_cast<std::size_t>(u)].rank, axis::tp);
    for (int d = 0; d < dp; ++d) {
        const auto& rep = batch.replicas[static_cast<std::size_t>(d)];
        for (int m = 0; m < static_cast<int>(rep.size()); ++m)
            for (int c = 0; c < cp; ++c) {
                const cp_shard& shard =
                    rep[static_cast<std::size_t>(m)].ranks[static_cast<std::size_t>(c)];
                const std::int64_t tokens = shard_tokens(shard);
                const layer_cost f{model.linear_fwd_seconds(tokens),
                                   model.attention_fwd_seconds(shard), 0.0};
                const layer_cost b{model.linear_bwd_seconds(tokens),
                                   model.attention_bwd_seconds(shard), 0.0};
                const double tp_bytes = static_cast<double>(tokens) * shape.tp_bytes_per_token;
                for (int p = 0; p < pp; ++p) {
                    double tp_seconds = 0.0;
                    if (tp > 1) {
                        const auto& g = tp_groups[static_cast<std::size_t>(plan.unit_of(c, p, d))];
                        tp_seconds =
                            2.0 *
                            (model.collective_seconds(collective_kind::all_gather, tp_bytes, g) +
                             model.collective_seconds(collective_kind::reduce_scatter, tp_bytes,
                                                      g));
                    }
                    auto& cf =
                        plan.costs[static_cast<std::size_t>(cost_index(d, m, c, pass::fwd, p))];
                    cf = f;
                    cf.tp_seconds = tp_seconds;
                    auto& cb =
                        plan.costs[static_cast<std::size_t>(cost_index(d, m, c, pass::bwd, p))];
                    cb = b;
                    cb.tp_seconds = tp_seconds;
                }
            }
    }

    // Streams. Sends are keyed by (d, c, m, chunk, pass) so that receives can find them.
    std::vector<int> send_of(static_cast<std::size_t>(dp * cp * max_mb * chunks * 2), -1);
    auto send_key = [&](int d, int c, int m, int chunk, pass ph) {
        return (((d * cp + c) * max_mb + m) * chunks + chunk) * 2 + static_cast<int>(ph);
    };
    std::vector<std::pair<int, int>> pending_recvs; // (recv op, send key)
    auto add_op = [&](int unit, plan_op op) {
        op.unit = unit;
        const int id = static_cast<int>(plan.ops.size());
        plan.ops.push_back(op);
        plan.units[static_cast<std::size_t>(unit)].main.push_back(id);
        return id;
    };
    // last_bwd[(unit * vpp + v)] = the layers op of the chunk's last backward on the unit.
    std::vector<int> last_bwd(static_cast<std::size_t>(units * vpp), -1);

    for (int d = 0; d < dp; ++d) {
        const int m_count = plan.micro_batches[static_cast<std::size_t>(d)];
        const auto& toks = plan.tokens[static_cast<std::size_t>(d)];
        for (int p = 0; p < pp; ++p) {
            const auto order = pipeline_order(pp, vpp, m_count, p, options.schedule);
            const std::vector<int> cp_members = members_of(l, coords{0, 0, p, d}, true, false);
            for (const auto& slot : order) {
                const int chunk = slot.virtual_stage * pp + p;
                const int layers = plan.partition.layers[static_cast<std::size_t>(chunk)];
                const bool last = chunk == chunks - 1;
                const bool fwd = slot.phase == pass::fwd;
                const phase ph = fwd ? phase::fwd : phase::bwd;
                const std::int64_t mb_tokens = toks[static_cast<std::size_t>(slot.micro_batch)];
                // The CP collective of every layer of this stage and micro-batch.
                double cp_seconds = 0.0;
                const double kv_bytes = static_cast<double>(mb_tokens) * shape.kv_bytes_per_token;
                if (cp > 1) {
                    // Forward gathers keys and values; backward reduce-scatters their
                    // gradients (the gathered K and V are kept from the forward).
                    cp_seconds = model.collective_seconds(fwd ? collective_kind::all_gather
                                                              : collective_kind::reduce_scatter,
                                                          kv_bytes, cp_members);
                }
                const int group = static_cast<int>(plan.groups.size());
                plan.groups.emplace_back();
                for (int c = 0; c < cp; ++c) {
                    const int unit = plan.unit_of(c, p, d);
                    const auto& shard = batch
                                            .replicas[static_cast<std::size_t>(d)]
                                                     [static_cast<std::size_t>(slot.micro_batch)]
                                            .ranks[static_cast<std::size_t>(c)];
                    const std::int64_t tokens = shard_tokens(shard);
                    const double act_bytes = static_cast<double>(tokens) * shape.pp_bytes_per_token;
                    plan_op base;
                    base.ph = ph;
                    base.micro_batch = slot.micro_batch;
                    base.stage = p;
                    base.virtual_stage = slot.virtual_stage;
                    // Receive the input (forward: activation from chunk - 1; backward:
                    // gradient from chunk + 1), unless it comes from this same rank.
                    const int from = fwd ? chunk - 1 : chunk + 1;
                    if (from >= 0 && from < chunks && from % pp != p) {
                        plan_op r = base;
                        r.kind = op_kind::recv;
                        r.where = lane::pp;
                        r.bytes = act_bytes;
                        r.name = fwd ? "recv activation" : "recv gradient";
                        const int id = add_op(unit, r);
                        pending_recvs.emplace_back(
                            id, send_key(d, c, slot.micro_batch, from, slot.phase));
                    }
                    if (!fwd && last) {
                        plan_op o = base;
                        o.kind = op_kind::compute;
                        o.seconds = model.output_layer_bwd_seconds(tokens);
                        o.name = "output layer bwd";
                        add_op(unit, o);
                    }
                    plan_op lay = base;
                    lay.kind = op_kind::layers;
                    lay.where = lane::compute;
                    lay.layers = layers;
                    lay.cost = cost_index(d, slot.micro_batch, c, slot.phase, p);
                    lay.seconds = cp_seconds;
                    lay.bytes = cp > 1 ? kv_bytes : 0.0;
                    lay.group = group;
                    lay.name = fwd ? "layers fwd" : "layers bwd";
                    const int lay_id = add_op(unit, lay);
                    plan.groups.back().push_back(lay_id);
                    if (!fwd)
                        last_bwd[static_cast<std::size_t>(unit * vpp + slot.virtual_stage)] =
                            lay_id;
                    if (fwd && last) {
                        plan_op o = base;
                        o.kind = op_kind::compute;
                        o.seconds = model.output_layer_fwd_seconds(tokens);
                        o.name = "output layer fwd";
                        add_op(unit, o);
                    }
                    const int to = fwd ? chunk + 1 : chunk - 1;
                    if (to >= 0 && to < chunks && to % pp != p) {
                        plan_op s = base;
                        s.kind = op_kind::send;
                        s.where = lane::pp;
                        s.bytes = act_bytes;
                        const coords dst{0, c, to % pp, d};
                        s.seconds = model.p2p_seconds(act_bytes, l.rank_of(coords{0, c, p, d}),
                                                      l.rank_of(dst));
                        s.name = fwd ? "send activation" : "send gradient";
                        send_of[static_cast<std::size_t>(
                            send_key(d, c, slot.micro_batch, chunk, slot.phase))] = add_op(unit, s);
                    }
                }
            }
        }
    }
    for (auto [recv, key] : pending_recvs) {
        const int send = send_of[static_cast<std::size_t>(key)];
        WLB_EXPECTS(send >= 0, "receive op {} has no matching send", recv);
        plan.ops[static_cast<std::size_t>(recv)].peer = send;
        plan.ops[static_cast<std::size_t>(send)].peer = recv;
    }

    // Gradient buckets over the DP x CP group, chunk by chunk in the order their last
    // backwards finish (the highest virtual stage first), then the optimizer step.
    const int reduce_size = dp * cp;
    for (int p = 0; p < pp; ++p) {
        const std::vector<int> members = members_of(l, coords{0, 0, p, 0}, true, true);
        for (int v = vpp - 1; v >= 0; --v) {
            const int chunk = v * pp + p;
            const int layers = plan.partition.layers[static_cast<std::size_t>(chunk)];
            double params = shape.layer_params * layers;
            if (chunk == 0)
                params += shape.embedding_params;
            if (chunk == chunks - 1)
                params += shape.output_params;
            const bool given = !options.chunk_buckets.empty();
            if (given && options.chunk_buckets.size() != static_cast<std::size_t>(chunks))
                throw input_error(fmt::format("chunk_buckets has {} entries; layout {} has {} "
                                              "model chunks",
                                              options.chunk_buckets.size(), l.spec(), chunks));
            if (reduce_size < 2 || params <= 0.0 ||
                (given && options.chunk_buckets[static_cast<std::size_t>(chunk)] <= 0))
                continue;
            const int buckets =
                given ? options.chunk_buckets[static_cast<std::size_t>(chunk)]
                      : std::max(1, std::min(layers, static_cast<int>(std::ceil(
                                                         params / options.bucket_params))));
            const double bytes = params / buckets * shape.grad_bytes_per_param;
            const double seconds =
                model.collective_seconds(collective_kind::all_reduce, bytes, members);
            for (int b = 0; b < buckets; ++b) {
                const int group = static_cast<int>(plan.groups.size());
                plan.groups.emplace_back();
                for (int d = 0; d < dp; ++d)
                    for (int c = 0; c < cp; ++c) {
                        const int unit = plan.unit_of(c, p, d);
                        plan_op op;
                        op.kind = op_kind::collective;
                        op.where = lane::dp;
                        op.ph = phase::bwd;
                        op.unit = unit;
                        op.stage = p;
                        op.virtual_stage = v;
                        op.seconds = seconds;
                        op.bytes = bytes;
                        op.group = group;
                        op.peer = last_bwd[static_cast<std::size_t>(unit * vpp + v)];
                        op.after_layers = options.overlap_grad_reduce
                                              ? (layers * (b + 1) + buckets - 1) / buckets
                                              : layers;
                        op.name = "grad all-reduce";
                        const int id = static_cast<int>(plan.ops.size());
                        plan.ops.push_back(op);
                        plan.units[static_cast<std::size_t>(unit)].dp.push_back(id);
                        plan.groups.back().push_back(id);
                    }
            }
        }
    }
    for (int u = 0; u < units; ++u) {
        auto& unit = plan.units[static_cast<std::size_t>(u)];
        double params = 0.0;
        for (int v = 0; v < vpp; ++v) {
            const int chunk = v * pp + unit.where.pp;
            params += shape.layer_params * plan.partition.layers[static_cast<std::size_t>(chunk)];
            if (chunk == 0)
                params += shape.embedding_params;
            if (chunk == chunks - 1)
                params += shape.output_params;
        }
        plan_op op;
        op.kind = op_kind::compute;
        op.where = lane::compute;
        op.ph = phase::optimizer;
        op.seconds = model.optimizer_seconds(params);
        op.stage = unit.where.pp;
        op.peer = unit.dp.empty() ? -1 : unit.dp.back();
        op.name = "optimizer step";
        add_op(u, op);
    }
    return plan;
}

} // namespace wlb::runtime
