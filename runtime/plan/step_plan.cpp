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

namespace {

// Builds one step's plan in named steps; build_step_plan calls them in order. Op ids are the
// order ops are added in, which the simulator and the tests rely on.
class plan_builder {
public:
    plan_builder(const layout& l, const sharded_step& batch, const duration_model& model,
                 const plan_options& options)
        : m_l(l), m_batch(batch), m_model(model), m_options(options), m_shape(model.shape()),
          m_tp(l.tp()), m_cp(l.cp()), m_pp(l.pp()), m_dp(l.dp()), m_vpp(l.vpp()),
          m_chunks(m_pp * m_vpp) {
        m_plan.job_layout = l;
        m_plan.step = batch.step;
    }

    step_plan build() && {
        check_partition();
        check_batch();
        place_units();
        layer_costs();
        pipeline_ops();
        pair_transfers();
        gradient_buckets();
        optimizer_steps();
        return std::move(m_plan);
    }

private:
    /// The partition given (or an even one) must cut the model's layers into the layout's chunks.
    void check_partition() {
        m_plan.partition = m_options.partition.layers.empty()
                               ? make_stage_partition("even", m_shape.layers, m_chunks)
                               : m_options.partition;
        const auto& part = m_plan.partition;
        if (part.chunks() != m_chunks)
            throw input_error(fmt::format("stage partition {} has {} model chunks; layout {} has "
                                          "{}",
                                          part.describe(), part.chunks(), m_l.spec(), m_chunks));
        if (part.total_layers() != m_shape.layers)
            throw input_error(fmt::format("stage partition {} holds {} layers; the model has {}",
                                          part.describe(), part.total_layers(), m_shape.layers));
        m_plan.schedule = m_options.schedule.describe(m_pp, m_vpp);
    }

    /// One replica per DP rank, each with micro-batches sharded over every CP rank; records the
    /// micro-batch counts and tokens.
    void check_batch() {
        if (static_cast<int>(m_batch.replicas.size()) != m_dp)
            throw input_error(fmt::format("step {}: the batch has {} DP replicas; layout {} has "
                                          "dp={}",
                                          m_batch.step, m_batch.replicas.size(), m_l.spec(), m_dp));
        m_plan.micro_batches.resize(static_cast<std::size_t>(m_dp));
        m_plan.tokens.resize(static_cast<std::size_t>(m_dp));
        for (int d = 0; d < m_dp; ++d) {
            const auto& rep = m_batch.replicas[static_cast<std::size_t>(d)];
            if (rep.empty())
                throw input_error(
                    fmt::format("step {}: DP replica {} has no micro-batch", m_batch.step, d));
            for (std::size_t m = 0; m < rep.size(); ++m) {
                if (static_cast<int>(rep[m].ranks.size()) != m_cp)
                    throw input_error(fmt::format(
                        "step {}: DP replica {} micro-batch {} is sharded over {} CP ranks; the "
                        "layout has cp={}",
                        m_batch.step, d, m, rep[m].ranks.size(), m_cp));
                std::int64_t n = 0;
                for (const auto& sh : rep[m].ranks)
                    n += shard_tokens(sh);
                m_plan.tokens[static_cast<std::size_t>(d)].push_back(n);
            }
            m_plan.micro_batches[static_cast<std::size_t>(d)] = static_cast<int>(rep.size());
            m_max_mb = std::max(m_max_mb, static_cast<int>(rep.size()));
        }
    }

    /// One unit per (cp, pp, dp) coordinate, standing for its TP group.
    void place_units() {
        m_units = m_cp * m_pp * m_dp;
        m_plan.units.resize(static_cast<std::size_t>(m_units));
        for (int d = 0; d < m_dp; ++d)
            for (int p = 0; p < m_pp; ++p)
                for (int c = 0; c < m_cp; ++c) {
                    auto& u = m_plan.units[static_cast<std::size_t>(m_plan.unit_of(c, p, d))];
                    u.where = coords{0, c, p, d};
                    u.rank = m_l.rank_of(u.where);
                }
    }

    // Per-layer costs: index ((d * max_mb + m) * cp + c) * 2 + pass, then * pp + p for TP
    // (TP groups of different stages may sit differently across nodes).
    [[nodiscard]] int cost_index(int d, int m, int c, pass ph, int p) const {
        return ((((d * m_max_mb + m) * m_cp + c) * 2 + static_cast<int>(ph)) * m_pp + p);
    }

    /// Every (replica, micro-batch, CP rank, pass, stage) layer's linear, attention and TP time.
    void layer_costs() {
        m_plan.costs.resize(static_cast<std::size_t>(m_dp * m_max_mb * m_cp * 2 * m_pp));
        std::vector<std::vector<int>> tp_groups(static_cast<std::size_t>(m_units));
        for (int u = 0; u < m_units; ++u)
            tp_groups[static_cast<std::size_t>(u)] =
                m_l.group_of(m_plan.units[static_cast<std::size_t>(u)].rank, axis::tp);
        for (int d = 0; d < m_dp; ++d) {
            const auto& rep = m_batch.replicas[static_cast<std::size_t>(d)];
            for (int m = 0; m < static_cast<int>(rep.size()); ++m)
                for (int c = 0; c < m_cp; ++c) {
                    const cp_shard& shard =
                        rep[static_cast<std::size_t>(m)].ranks[static_cast<std::size_t>(c)];
                    const std::int64_t tokens = shard_tokens(shard);
                    const layer_cost f{m_model.linear_fwd_seconds(tokens),
                                       m_model.attention_fwd_seconds(shard), 0.0};
                    const layer_cost b{m_model.linear_bwd_seconds(tokens),
                                       m_model.attention_bwd_seconds(shard), 0.0};
                    const double tp_bytes =
                        static_cast<double>(tokens) * m_shape.tp_bytes_per_token;
                    for (int p = 0; p < m_pp; ++p) {
                        double tp_seconds = 0.0;
                        if (m_tp > 1) {
                            const auto& g =
                                tp_groups[static_cast<std::size_t>(m_plan.unit_of(c, p, d))];
                            tp_seconds = 2.0 * (m_model.collective_seconds(
                                                    collective_kind::all_gather, tp_bytes, g) +
                                                m_model.collective_seconds(
                                                    collective_kind::reduce_scatter, tp_bytes, g));
                        }
                        auto& cf =
                            m_plan
                                .costs[static_cast<std::size_t>(cost_index(d, m, c, pass::fwd, p))];
                        cf = f;
                        cf.tp_seconds = tp_seconds;
                        auto& cb =
                            m_plan
                                .costs[static_cast<std::size_t>(cost_index(d, m, c, pass::bwd, p))];
                        cb = b;
                        cb.tp_seconds = tp_seconds;
                    }
                }
        }
    }

    int add_op(int unit, plan_op op) {
        op.unit = unit;
        const int id = static_cast<int>(m_plan.ops.size());
        m_plan.ops.push_back(op);
        m_plan.units[static_cast<std::size_t>(unit)].main.push_back(id);
        return id;
    }

    // Sends are keyed by (d, c, m, chunk, pass) so that receives can find them.
    [[nodiscard]] int send_key(int d, int c, int m, int chunk, pass ph) const {
        return (((d * m_cp + c) * m_max_mb + m) * m_chunks + chunk) * 2 + static_cast<int>(ph);
    }

    /// Every stage's slots in its pipeline schedule order, for every replica.
    void pipeline_ops() {
        m_send_of.assign(static_cast<std::size_t>(m_dp * m_cp * m_max_mb * m_chunks * 2), -1);
        m_last_bwd.assign(static_cast<std::size_t>(m_units * m_vpp), -1);
        for (int d = 0; d < m_dp; ++d) {
            const int m_count = m_plan.micro_batches[static_cast<std::size_t>(d)];
            for (int p = 0; p < m_pp; ++p) {
                const std::vector<int> cp_members =
                    members_of(m_l, coords{0, 0, p, d}, true, false);
                for (const auto& slot : pipeline_order(m_pp, m_vpp, m_count, p, m_options.schedule))
                    slot_ops(d, p, slot, cp_members);
            }
        }
    }

    /// One slot (a micro-batch's pass through a model chunk) on every CP rank of the stage:
    /// receive its input from the neighbouring chunk, the output layer where it sits, the
    /// chunk's layers (CP-synchronized: one group), and send the result on.
    void slot_ops(int d, int p, const pipeline_slot& slot, const std::vector<int>& cp_members) {
        const int chunk = slot.virtual_stage * m_pp + p;
        const int layers = m_plan.partition.layers[static_cast<std::size_t>(chunk)];
        const bool last = chunk == m_chunks - 1;
        const bool fwd = slot.phase == pass::fwd;
        const std::int64_t mb_tokens =
            m_plan.tokens[static_cast<std::size_t>(d)][static_cast<std::size_t>(slot.micro_batch)];
        // The CP collective of every layer of this stage and micro-batch: forward gathers keys
        // and values; backward reduce-scatters their gradients (the gathered K and V are kept
        // from the forward).
        double cp_seconds = 0.0;
        const double kv_bytes = static_cast<double>(mb_tokens) * m_shape.kv_bytes_per_token;
        if (m_cp > 1)
            cp_seconds = m_model.collective_seconds(fwd ? collective_kind::all_gather
                                                        : collective_kind::reduce_scatter,
                                                    kv_bytes, cp_members);
        const int group = static_cast<int>(m_plan.groups.size());
        m_plan.groups.emplace_back();
        for (int c = 0; c < m_cp; ++c) {
            const int unit = m_plan.unit_of(c, p, d);
            const auto& shard = m_batch
                                    .replicas[static_cast<std::size_t>(d)]
                                             [static_cast<std::size_t>(slot.micro_batch)]
                                    .ranks[static_cast<std::size_t>(c)];
            const std::int64_t tokens = shard_tokens(shard);
            const double act_bytes = static_cast<double>(tokens) * m_shape.pp_bytes_per_token;
            plan_op base;
            base.ph = fwd ? phase::fwd : phase::bwd;
            base.micro_batch = slot.micro_batch;
            base.stage = p;
            base.virtual_stage = slot.virtual_stage;
            // Receive the input (forward: activation from chunk - 1; backward: gradient from
            // chunk + 1), unless it comes from this same rank.
            const int from = fwd ? chunk - 1 : chunk + 1;
            if (from >= 0 && from < m_chunks && from % m_pp != p) {
                plan_op r = base;
                r.kind = op_kind::recv;
                r.where = lane::pp;
                r.bytes = act_bytes;
                r.name = fwd ? "recv activation" : "recv gradient";
                const int id = add_op(unit, r);
                m_pending_recvs.emplace_back(id,
                                             send_key(d, c, slot.micro_batch, from, slot.phase));
            }
            if (!fwd && last)
                output_layer(unit, base, m_model.output_layer_bwd_seconds(tokens),
                             "output layer bwd");
            plan_op lay = base;
            lay.kind = op_kind::layers;
            lay.where = lane::compute;
            lay.layers = layers;
            lay.cost = cost_index(d, slot.micro_batch, c, slot.phase, p);
            lay.seconds = cp_seconds;
            lay.bytes = m_cp > 1 ? kv_bytes : 0.0;
            lay.group = group;
            lay.name = fwd ? "layers fwd" : "layers bwd";
            const int lay_id = add_op(unit, lay);
            m_plan.groups.back().push_back(lay_id);
            if (!fwd)
                m_last_bwd[static_cast<std::size_t>(unit * m_vpp + slot.virtual_stage)] = lay_id;
            if (fwd && last)
                output_layer(unit, base, m_model.output_layer_fwd_seconds(tokens),
                             "output layer fwd");
            const int to = fwd ? chunk + 1 : chunk - 1;
            if (to >= 0 && to < m_chunks && to % m_pp != p) {
                plan_op sn = base;
                sn.kind = op_kind::send;
                sn.where = lane::pp;
                sn.bytes = act_bytes;
                const coords dst{0, c, to % m_pp, d};
                sn.seconds = m_model.p2p_seconds(act_bytes, m_l.rank_of(coords{0, c, p, d}),
                                                 m_l.rank_of(dst));
                sn.name = fwd ? "send activation" : "send gradient";
                m_send_of[static_cast<std::size_t>(
                    send_key(d, c, slot.micro_batch, chunk, slot.phase))] = add_op(unit, sn);
            }
        }
    }

    void output_layer(int unit, const plan_op& base, double seconds, const char* name) {
        plan_op o = base;
        o.kind = op_kind::compute;
        o.seconds = seconds;
        o.name = name;
        add_op(unit, o);
    }

    /// Every receive and its send name each other.
    void pair_transfers() {
        for (auto [recv, key] : m_pending_recvs) {
            const int send = m_send_of[static_cast<std::size_t>(key)];
            WLB_EXPECTS(send >= 0, "receive op {} has no matching send", recv);
            m_plan.ops[static_cast<std::size_t>(recv)].peer = send;
            m_plan.ops[static_cast<std::size_t>(send)].peer = recv;
        }
    }

    /// Parameters of one model chunk: its layers, the embedding on the first, the output layer
    /// on the last.
    [[nodiscard]] double chunk_params(int chunk) const {
        double params =
            m_shape.layer_params * m_plan.partition.layers[static_cast<std::size_t>(chunk)];
        if (chunk == 0)
            params += m_shape.embedding_params;
        if (chunk == m_chunks - 1)
            params += m_shape.output_params;
        return params;
    }

    /// Gradient buckets over the DP x CP group, chunk by chunk in the order their last backwards
    /// finish (the highest virtual stage first).
    void gradient_buckets() {
        const bool given = !m_options.chunk_buckets.empty();
        const int reduce_size = m_dp * m_cp;
        for (int p = 0; p < m_pp; ++p) {
            const std::vector<int> members = members_of(m_l, coords{0, 0, p, 0}, true, true);
            for (int v = m_vpp - 1; v >= 0; --v) {
                const int chunk = v * m_pp + p;
                const int layers = m_plan.partition.layers[static_cast<std::size_t>(chunk)];
                const double params = chunk_params(chunk);
                if (given && m_options.chunk_buckets.size() != static_cast<std::size_t>(m_chunks))
                    throw input_error(fmt::format("chunk_buckets has {} entries; layout {} has {} "
                                                  "model chunks",
                                                  m_options.chunk_buckets.size(), m_l.spec(),
                                                  m_chunks));
                if (reduce_size < 2 || params <= 0.0 ||
                    (given && m_options.chunk_buckets[static_cast<std::size_t>(chunk)] <= 0))
                    continue;
                const int buckets =
                    given ? m_options.chunk_buckets[static_cast<std::size_t>(chunk)]
                          : std::max(1, std::min(layers, static_cast<int>(std::ceil(
                                                             params / m_options.bucket_params))));
                const double bytes = params / buckets * m_shape.grad_bytes_per_param;
                const double seconds =
                    m_model.collective_seconds(collective_kind::all_reduce, bytes, members);
                for (int b = 0; b < buckets; ++b)
                    bucket_ops(p, v, layers, b, buckets, bytes, seconds);
            }
        }
    }

    /// Bucket b of `buckets` of chunk (p, v) on every DP x CP unit of the stage: one group.
    void bucket_ops(int p, int v, int layers, int b, int buckets, double bytes, double seconds) {
        const int group = static_cast<int>(m_plan.groups.size());
        m_plan.groups.emplace_back();
        for (int d = 0; d < m_dp; ++d)
            for (int c = 0; c < m_cp; ++c) {
                const int unit = m_plan.unit_of(c, p, d);
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
                op.peer = m_last_bwd[static_cast<std::size_t>(unit * m_vpp + v)];
                op.after_layers = m_options.overlap_grad_reduce
                                      ? (layers * (b + 1) + buckets - 1) / buckets
                                      : layers;
                op.name = "grad all-reduce";
                const int id = static_cast<int>(m_plan.ops.size());
                m_plan.ops.push_back(op);
                m_plan.units[static_cast<std::size_t>(unit)].dp.push_back(id);
                m_plan.groups.back().push_back(id);
            }
    }

    /// Each unit's optimizer step over the parameters of its chunks, after its last bucket.
    void optimizer_steps() {
        for (int u = 0; u < m_units; ++u) {
            auto& unit = m_plan.units[static_cast<std::size_t>(u)];
            double params = 0.0;
            for (int v = 0; v < m_vpp; ++v)
                params += chunk_params(v * m_pp + unit.where.pp);
            plan_op op;
            op.kind = op_kind::compute;
            op.where = lane::compute;
            op.ph = phase::optimizer;
            op.seconds = m_model.optimizer_seconds(params);
            op.stage = unit.where.pp;
            op.peer = unit.dp.empty() ? -1 : unit.dp.back();
            op.name = "optimizer step";
            add_op(u, op);
        }
    }

    const layout& m_l;
    const sharded_step& m_batch;
    const duration_model& m_model;
    const plan_options& m_options;
    const plan_shape m_shape;
    const int m_tp, m_cp, m_pp, m_dp, m_vpp, m_chunks;
    int m_max_mb = 0;
    int m_units = 0;
    step_plan m_plan;
    std::vector<int> m_send_of;                       ///< send op of each send_key, or -1
    std::vector<std::pair<int, int>> m_pending_recvs; ///< (recv op, send key)
    /// [unit * vpp + v]: the layers op of the chunk's last backward on the unit.
    std::vector<int> m_last_bwd;
};

} // namespace

step_plan build_step_plan(const layout& l, const sharded_step& batch, const duration_model& model,
                          const plan_options& options) {
    return plan_builder(l, batch, model, options).build();
}

} // namespace wlb::runtime
