#include "runtime/train/decoder_step.hpp"

#include "base/error.hpp"
#include "kernels/ops.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <unordered_map>

namespace wlb::runtime {

namespace {

using kernels::index;

struct doc_span {
    index start = 0;
    index tokens = 0;
};

/// Where every token of a micro-batch lives: its row in the micro-batch's packed sequence
/// (documents back to back, in order) and, per CP rank, the packed rows it holds, in the order
/// of its chunks. Plus this rank's inputs and attention chunk list.
struct token_map {
    std::unordered_map<std::int64_t, doc_span> docs;
    index total = 0;
    std::vector<std::vector<index>> rank_rows; // per CP rank: packed row of each local token
    index max_rows = 0;
    // This rank:
    std::vector<std::int32_t> ids, labels;
    std::vector<index> positions;
    std::vector<index> cu_q{0}, cu_k{0}, offsets, key_start; // key_start: packed row of doc start
};

token_map map_tokens(const decoder_config& config, const micro_batch& mb,
                     const sharded_micro_batch& shard, int cp_rank) {
    token_map m;
    for (const auto& d : mb.docs) {
        m.docs[d.id] = {m.total, d.tokens};
        m.total += d.tokens;
    }
    m.rank_rows.resize(shard.ranks.size());
    for (std::size_t r = 0; r < shard.ranks.size(); ++r) {
        for (const auto& c : shard.ranks[r].chunks) {
            const doc_span& d = m.docs.at(c.doc_id);
            for (index i = 0; i < c.q_tokens; ++i)
                m.rank_rows[r].push_back(d.start + c.q_offset + i);
            if (static_cast<int>(r) != cp_rank || c.q_tokens == 0)
                continue;
            for (index i = 0; i < c.q_tokens; ++i) {
                const index p = c.q_offset + i;
                m.ids.push_back(document_token(c.doc_id, p, config.vocab));
                m.labels.push_back(p + 1 < d.tokens ? document_token(c.doc_id, p + 1, config.vocab)
                                                    : -1);
                m.positions.push_back(p);
            }
            m.cu_q.push_back(m.cu_q.back() + c.q_tokens);
            m.cu_k.push_back(m.cu_k.back() + c.q_offset + c.q_tokens);
            m.offsets.push_back(c.q_offset);
            m.key_start.push_back(d.start);
        }
        m.max_rows = std::max<index>(m.max_rows, static_cast<index>(m.rank_rows[r].size()));
    }
    return m;
}

template <typename T>
struct layer_cache {
    std::vector<T> x, rstd1, a, qkv, kv_seg, attn, lse, x2, rstd2, b, gate, up, act;
};

template <typename T>
std::vector<T> sized(index n) {
    return std::vector<T>(static_cast<std::size_t>(n), T(0));
}

// C[n x m] (=|+=) A[n x k] B[k x m]
template <typename T>
void matmul(const T* a, const T* b, T* c, index n, index k, index m, bool accumulate = false) {
    kernels::gemm<T>(false, false, n, m, k, T(1), a, k, b, m, accumulate ? T(1) : T(0), c, m);
}
// dA[n x k] (=|+=) dC[n x m] B^T
template <typename T>
void matmul_bt(const T* dc, const T* b, T* da, index n, index k, index m, bool accumulate = false) {
    kernels::gemm<T>(false, true, n, k, m, T(1), dc, m, b, m, accumulate ? T(1) : T(0), da, k);
}
// dB[k x m] += A^T[k x n] dC[n x m]
template <typename T>
void matmul_at_acc(const T* a, const T* dc, T* db, index n, index k, index m) {
    kernels::gemm<T>(true, false, k, m, n, T(1), a, k, dc, m, T(1), db, m);
}

/// Layers of the model chunks before chunk c when L layers are cut into `chunks` near-equal
/// contiguous chunks.
std::size_t layers_before(std::int64_t layers, int chunks, int c) {
    return static_cast<std::size_t>(layers * c / chunks);
}

template <typename T>
class step_runner {
public:
    step_runner(const decoder_config& config, const decoder_params<T>& p, const parallel_groups& g)
        : m_config(config), m_p(p), m_g(g), m_tp(g.tp.size()), m_h(config.hidden),
          m_heads(config.heads / m_tp), m_d(config.head_dim()), m_hl(m_heads * m_d),
          m_fl(config.ffn / m_tp) {
        const int pp = g.pp == nullptr ? 1 : g.pp->size();
        const int stage = g.pp == nullptr ? 0 : g.pp->rank();
        const int vpp = g.virtual_stages;
        std::size_t begin = 0;
        for (int v = 0; v < vpp; ++v) {
            const auto count = static_cast<std::size_t>(
                layers_before(config.layers, pp * vpp, v * pp + stage + 1) -
                layers_before(config.layers, pp * vpp, v * pp + stage));
            m_chunk_layers.emplace_back(begin, count);
            m_chunk_first_layer.push_back(
                static_cast<int>(layers_before(config.layers, pp * vpp, v * pp + stage)));
            begin += count;
        }
        WLB_EXPECTS(begin == p.layers.size(),
                    "stage {} holds {} layers, its {} virtual stages need {}", stage,
                    p.layers.size(), vpp, begin);
    }

    /// Forward of micro-batch `m` through this stage's virtual stage `v` (its v-th chunk of
    /// layers, model chunk c = v * PP + stage): the embedding for chunk 0, else the activations
    /// received from the stage of chunk c-1; for the last chunk the head, the loss and the head's
    /// backward, else the activations sent to the stage of chunk c+1. Returns the loss sum of the
    /// micro-batch's local tokens (0 except for the last chunk).
    double forward(int m, int v, const micro_batch& mb, const sharded_micro_batch& shard,
                   double grad_scale, decoder_params<T>& grads) {
        auto& st = m_in_flight[{m, v}];
        const auto [layer0, layer_count] = m_chunk_layers[static_cast<std::size_t>(v)];
        enter(op_phase::forward, m, v);
        timed("token layout", op_lane::host, 0,
              [&] { st.tokens = map_tokens(m_config, mb, shard, m_g.cp.rank()); });
        const token_map& tm = st.tokens;
        const index n = static_cast<index>(tm.ids.size());
        const index h = m_h, vocab = m_config.vocab;
        st.caches.resize(layer_count);
        std::vector<T> x = sized<T>(n * h);
        const int c = chunk(v);
        if (c == 0)
            timed("embedding fwd", op_lane::compute, 0, [&] {
                kernels::embedding_forward<T>(m_p.embed.data(), tm.ids.data(), n, h, x.data());
            });
        else
            timed_p2p("recv activation", op_type::recv, bytes_of(x), previous_stage(),
                      message(m, c, false),
                      [&] { m_g.pp->recv(std::span<T>(x), previous_stage(), tag(m, c, false)); });
        for (std::size_t l = 0; l < layer_count; ++l) {
            m_layer = m_chunk_first_layer[static_cast<std::size_t>(v)] + static_cast<int>(l);
            x = layer_forward(tm, m_p.layers[layer0 + l], st.caches[l], std::move(x));
        }
        m_layer = -1;
        if (c != last_chunk()) {
            timed_p2p("send activation", op_type::send, bytes_of(x), next_stage(),
                      message(m, c + 1, false), [&] {
                          m_g.pp->send(std::span<const T>(x), next_stage(), tag(m, c + 1, false));
                      });
            return 0;
        }
        // Head: final norm, LM head, loss, and at once their backward (reported as backward
        // work, though it runs in the forward's slot).
        double loss = 0;
        std::vector<T> y, rstd, dlogits;
        timed("output layer fwd", op_lane::compute, 0, [&] {
            y = sized<T>(n * h);
            rstd = sized<T>(n);
            std::vector<T> logits = sized<T>(n * vocab);
            kernels::rms_norm_forward<T>(x.data(), m_p.final_norm.data(), n, h, eps(), y.data(),
                                         rstd.data());
            matmul(y.data(), m_p.lm_head.data(), logits.data(), n, h, vocab);
            dlogits = sized<T>(n * vocab);
            loss = kernels::cross_entropy<T>(logits.data(), tm.labels.data(), n, vocab,
                                             static_cast<T>(grad_scale), dlogits.data());
        });
        m_phase = op_phase::backward;
        timed("output layer bwd", op_lane::compute, 0, [&] {
            matmul_at_acc(y.data(), dlogits.data(), grads.lm_head.data(), n, h, vocab);
            std::vector<T> dy = sized<T>(n * h);
            st.d_top = sized<T>(n * h);
            matmul_bt(dlogits.data(), m_p.lm_head.data(), dy.data(), n, h, vocab);
            kernels::rms_norm_backward<T>(x.data(), m_p.final_norm.data(), rstd.data(), dy.data(),
                                          n, h, st.d_top.data(), grads.final_norm.data());
        });
        return loss;
    }

    /// Backward of micro-batch `m` (after its forward) through virtual stage `v`, from the
    /// head's gradient for the last chunk or the gradient received from the stage of chunk c+1;
    /// ends in the embedding's backward for chunk 0, else sends the gradient to chunk c-1.
    void backward(int m, int v, decoder_params<T>& grads) {
        auto it = m_in_flight.find({m, v});
        WLB_EXPECTS(it != m_in_flight.end(), "backward of micro-batch {} before its forward", m);
        const auto [layer0, layer_count] = m_chunk_layers[static_cast<std::size_t>(v)];
        const int c = chunk(v);
        enter(op_phase::backward, m, v);
        auto& st = it->second;
        const token_map& tm = st.tokens;
        const index n = static_cast<index>(tm.ids.size());
        std::vector<T> dx;
        if (c == last_chunk()) {
            dx = std::move(st.d_top);
        } else {
            dx = sized<T>(n * m_h);
            timed_p2p("recv gradient", op_type::recv, bytes_of(dx), next_stage(),
                      message(m, c, true),
                      [&] { m_g.pp->recv(std::span<T>(dx), next_stage(), tag(m, c, true)); });
        }
        for (std::size_t l = layer_count; l-- > 0;) {
            m_layer = m_chunk_first_layer[static_cast<std::size_t>(v)] + static_cast<int>(l);
            dx = layer_backward(tm, m_p.layers[layer0 + l], st.caches[l], grads.layers[layer0 + l],
                                std::move(dx));
        }
        m_layer = -1;
        if (c == 0)
            timed("embedding bwd", op_lane::compute, 0, [&] {
                kernels::embedding_backward<T>(dx.data(), tm.ids.data(), n, m_h,
                                               grads.embed.data());
            });
        else
            timed_p2p("send gradient", op_type::send, bytes_of(dx), previous_stage(),
                      message(m, c - 1, true), [&] {
                          m_g.pp->send(std::span<const T>(dx), previous_stage(),
                                       tag(m, c - 1, true));
                      });
        m_in_flight.erase(it);
    }

    [[nodiscard]] bool idle() const noexcept { return m_in_flight.empty(); }

private:
    struct micro_batch_state {
        token_map tokens;
        std::vector<layer_cache<T>> caches;
        std::vector<T> d_top; // last stage: gradient at the top of the stage's layers
    };

    void enter(op_phase phase, int m, int v) noexcept {
        m_phase = phase;
        m_micro_batch = m;
        m_virtual_stage = v;
        m_layer = -1;
    }

    int stages() const noexcept { return m_g.pp == nullptr ? 1 : m_g.pp->size(); }
    int stage() const noexcept { return m_g.pp == nullptr ? 0 : m_g.pp->rank(); }
    /// Model chunk of this stage's virtual stage v: chunks go round the stages v times.
    int chunk(int v) const noexcept { return v * stages() + stage(); }
    int last_chunk() const noexcept { return stages() * m_g.virtual_stages - 1; }
    int previous_stage() const noexcept { return (stage() + stages() - 1) % stages(); }
    int next_stage() const noexcept { return (stage() + 1) % stages(); }
    /// The message into model chunk c of micro-batch m (activations forward, gradients back)
    /// gets its own tag; messages of one (peer, tag) pair arrive in order, so the wrap-around
    /// is harmless.
    int tag(int m, int c, bool backward) const noexcept {
        return static_cast<int>(message(m, c, backward) % (max_tag + 1));
    }
    /// The step's number of that message, unique within the pipeline group.
    std::int64_t message(int m, int c, bool backward) const noexcept {
        return (static_cast<std::int64_t>(m) * (last_chunk() + 1) + c) * 2 + backward;
    }

    T eps() const { return static_cast<T>(m_config.norm_eps); }

    kernels::attention_chunks chunks(const token_map& tm) const {
        return {tm.cu_q, tm.cu_k, tm.offsets,
                m_heads, m_d,     1.0 / std::sqrt(static_cast<double>(m_d))};
    }

    std::vector<T> layer_forward(const token_map& tm, const decoder_layer_params<T>& p,
                                 layer_cache<T>& c, std::vector<T> x) {
        const index n = static_cast<index>(tm.ids.size());
        const index h = m_h, hl = m_hl, w3 = 3 * hl, fl = m_fl;
        c.x = std::move(x);
        timed("attn norm fwd", op_lane::compute, 0, [&] {
            c.a = sized<T>(n * h);
            c.rstd1 = sized<T>(n);
            kernels::rms_norm_forward<T>(c.x.data(), p.norm1.data(), n, h, eps(), c.a.data(),
                                         c.rstd1.data());
        });
        timed("qkv proj fwd", op_lane::compute, 0, [&] {
            c.qkv = sized<T>(n * w3);
            matmul(c.a.data(), p.wqkv.data(), c.qkv.data(), n, h, w3);
            kernels::rotary<T>(c.qkv.data(), n, m_heads, m_d, w3, tm.positions.data(),
                               m_config.rope_base, false);
            kernels::rotary<T>(c.qkv.data() + hl, n, m_heads, m_d, w3, tm.positions.data(),
                               m_config.rope_base, false);
        });
        c.kv_seg = gather_key_segments(tm, c.qkv);
        timed("attention fwd", op_lane::compute, 0, [&] {
            c.attn = sized<T>(n * hl);
            c.lse = sized<T>(n * m_heads);
            kernels::attention_forward<T>(chunks(tm), c.qkv.data(), w3, c.kv_seg.data(), 2 * hl,
                                          c.kv_seg.data() + hl, 2 * hl, c.attn.data(), hl,
                                          c.lse.data());
        });
        std::vector<T> o = sized<T>(n * h);
        timed("out proj fwd", op_lane::compute, 0,
              [&] { matmul(c.attn.data(), p.wo.data(), o.data(), n, hl, h); });
        tp_all_reduce(o, "tp all-reduce fwd");
        timed("mlp norm fwd", op_lane::compute, 0, [&] {
            c.x2 = c.x;
            for (std::size_t i = 0; i < o.size(); ++i)
                c.x2[i] += o[i];
            c.b = sized<T>(n * h);
            c.rstd2 = sized<T>(n);
            kernels::rms_norm_forward<T>(c.x2.data(), p.norm2.data(), n, h, eps(), c.b.data(),
                                         c.rstd2.data());
        });
        std::vector<T> mlp = sized<T>(n * h);
        timed("mlp fwd", op_lane::compute, 0, [&] {
            c.gate = sized<T>(n * fl);
            c.up = sized<T>(n * fl);
            c.act = sized<T>(n * fl);
            matmul(c.b.data(), p.w_gate.data(), c.gate.data(), n, h, fl);
            matmul(c.b.data(), p.w_up.data(), c.up.data(), n, h, fl);
            kernels::swiglu_forward<T>(c.gate.data(), c.up.data(), n * fl, c.act.data());
            matmul(c.act.data(), p.w_down.data(), mlp.data(), n, fl, h);
        });
        tp_all_reduce(mlp, "tp all-reduce fwd");
        std::vector<T> out;
        timed("residual fwd", op_lane::compute, 0, [&] {
            out = c.x2;
            for (std::size_t i = 0; i < out.size(); ++i)
                out[i] += mlp[i];
        });
        return out;
    }

    std::vector<T> layer_backward(const token_map& tm, const decoder_layer_params<T>& p,
                                  layer_cache<T>& c, decoder_layer_params<T>& g,
                                  std::vector<T> dy) {
        const index n = static_cast<index>(tm.ids.size());
        const index h = m_h, hl = m_hl, w3 = 3 * hl, fl = m_fl;
        // MLP (row-parallel down, column-parallel gate/up).
        std::vector<T> db = sized<T>(n * h);
        timed("mlp bwd", op_lane::compute, 0, [&] {
            std::vector<T> dact = sized<T>(n * fl), dgate = sized<T>(n * fl),
                           dup = sized<T>(n * fl);
            matmul_bt(dy.data(), p.w_down.data(), dact.data(), n, fl, h);
            matmul_at_acc(c.act.data(), dy.data(), g.w_down.data(), n, fl, h);
            kernels::swiglu_backward<T>(c.gate.data(), c.up.data(), dact.data(), n * fl,
                                        dgate.data(), dup.data());
            matmul_bt(dgate.data(), p.w_gate.data(), db.data(), n, h, fl);
            matmul_bt(dup.data(), p.w_up.data(), db.data(), n, h, fl, true);
            matmul_at_acc(c.b.data(), dgate.data(), g.w_gate.data(), n, h, fl);
            matmul_at_acc(c.b.data(), dup.data(), g.w_up.data(), n, h, fl);
        });
        tp_all_reduce(db, "tp all-reduce bwd");
        std::vector<T> dx2 = sized<T>(n * h);
        timed("mlp norm bwd", op_lane::compute, 0, [&] {
            kernels::rms_norm_backward<T>(c.x2.data(), p.norm2.data(), c.rstd2.data(), db.data(), n,
                                          h, dx2.data(), g.norm2.data());
            for (std::size_t i = 0; i < dx2.size(); ++i)
                dx2[i] += dy[i];
        });
        // Attention (row-parallel output projection, column-parallel QKV).
        std::vector<T> dattn = sized<T>(n * hl);
        timed("out proj bwd", op_lane::compute, 0, [&] {
            matmul_bt(dx2.data(), p.wo.data(), dattn.data(), n, hl, h);
            matmul_at_acc(c.attn.data(), dx2.data(), g.wo.data(), n, hl, h);
        });
        std::vector<T> dqkv = sized<T>(n * w3);
        std::vector<T> dkv_seg(c.kv_seg.size());
        timed("attention bwd", op_lane::compute, 0, [&] {
            kernels::attention_backward<T>(chunks(tm), c.qkv.data(), w3, c.kv_seg.data(), 2 * hl,
                                           c.kv_seg.data() + hl, 2 * hl, c.attn.data(), hl,
                                           dattn.data(), hl, c.lse.data(), dqkv.data(), w3,
                                           dkv_seg.data(), 2 * hl, dkv_seg.data() + hl, 2 * hl);
        });
        scatter_key_gradients(tm, dkv_seg, dqkv);
        std::vector<T> da = sized<T>(n * h);
        timed("qkv proj bwd", op_lane::compute, 0, [&] {
            kernels::rotary<T>(dqkv.data(), n, m_heads, m_d, w3, tm.positions.data(),
                               m_config.rope_base, true);
            kernels::rotary<T>(dqkv.data() + hl, n, m_heads, m_d, w3, tm.positions.data(),
                               m_config.rope_base, true);
            matmul_bt(dqkv.data(), p.wqkv.data(), da.data(), n, h, w3);
            matmul_at_acc(c.a.data(), dqkv.data(), g.wqkv.data(), n, h, w3);
        });
        tp_all_reduce(da, "tp all-reduce bwd");
        std::vector<T> dx = sized<T>(n * h);
        timed("attn norm bwd", op_lane::compute, 0, [&] {
            kernels::rms_norm_backward<T>(c.x.data(), p.norm1.data(), c.rstd1.data(), da.data(), n,
                                          h, dx.data(), g.norm1.data());
            for (std::size_t i = 0; i < dx.size(); ++i)
                dx[i] += dx2[i];
        });
        c = {}; // free the layer's activations
        return dx;
    }

    void tp_all_reduce(std::vector<T>& data, std::string_view name) {
        timed(name, op_lane::tp, bytes_of(data), [&] { m_g.tp.all_reduce(std::span<T>(data)); });
    }

    static std::int64_t bytes_of(const std::vector<T>& v) {
        return static_cast<std::int64_t>(v.size() * sizeof(T));
    }

    /// Runs f and, when an observer is attached, reports it under the current micro-batch,
    /// virtual stage, layer and phase: compute on the compute and host lanes, a collective on
    /// the tp, cp and dp lanes. A collective of a one-member group moves nothing and is not
    /// reported.
    template <typename F>
    void timed(std::string_view name, op_lane lane, std::int64_t bytes, F&& f) {
        const bool collective = lane != op_lane::compute && lane != op_lane::host;
        if (m_g.observer == nullptr || (collective && group_size(lane) == 1)) {
            f();
            return;
        }
        report(name, lane, collective ? op_type::collective : op_type::compute, bytes, -1, -1, f);
    }

    /// Runs a send or receive to/from pipeline stage `peer` and reports it with the message's
    /// number (message()).
    template <typename F>
    void timed_p2p(std::string_view name, op_type type, std::int64_t bytes, int peer,
                   std::int64_t msg, F&& f) {
        if (m_g.observer == nullptr) {
            f();
            return;
        }
        report(name, op_lane::pp, type, bytes, m_g.pp->group().world_ranks[peer], msg, f);
    }

    template <typename F>
    void report(std::string_view name, op_lane lane, op_type type, std::int64_t bytes,
                int peer_world_rank, std::int64_t msg, F&& f) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        const auto t1 = std::chrono::steady_clock::now();
        op_record r;
        r.name = name;
        r.lane = lane;
        r.type = type;
        r.phase = m_phase;
        r.micro_batch = m_micro_batch;
        r.virtual_stage = m_virtual_stage;
        r.layer = m_layer;
        r.start_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
        r.dur_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
        r.bytes = bytes;
        r.peer_world_rank = peer_world_rank;
        r.message = msg;
        m_g.observer->record(r);
    }

    int group_size(op_lane lane) const noexcept {
        switch (lane) {
        case op_lane::tp:
            return m_g.tp.size();
        case op_lane::cp:
            return m_g.cp.size();
        case op_lane::dp:
            return m_g.dp.size();
        case op_lane::pp:
            return stages();
        default:
            return 1;
        }
    }

    /// All-gathers K and V in the CP group and returns, per local chunk, the keys and values of
    /// its document's tokens [0, q_offset + q_tokens), rows [k | v] of width 2*hl.
    std::vector<T> gather_key_segments(const token_map& tm, const std::vector<T>& qkv) {
        const index hl = m_hl, w2 = 2 * hl, w3 = 3 * hl;
        const index n = static_cast<index>(tm.ids.size());
        const int cp = m_g.cp.size();
        std::vector<T> mine = sized<T>(tm.max_rows * w2);
        std::vector<T> all = sized<T>(cp * tm.max_rows * w2);
        timed("kv layout fwd", op_lane::compute, 0, [&] {
            for (index i = 0; i < n; ++i)
                std::copy_n(qkv.begin() + i * w3 + hl, w2, mine.begin() + i * w2);
        });
        timed("cp all-gather kv", op_lane::cp, bytes_of(mine),
              [&] { m_g.cp.all_gather(std::span<const T>(mine), std::span<T>(all)); });
        std::vector<T> seg = sized<T>(tm.cu_k.back() * w2);
        timed("kv layout fwd", op_lane::compute, 0, [&] {
            std::vector<T> packed = sized<T>(tm.total * w2);
            for (int r = 0; r < cp; ++r) {
                const auto& rows = tm.rank_rows[static_cast<std::size_t>(r)];
                for (std::size_t i = 0; i < rows.size(); ++i)
                    std::copy_n(all.begin() + (r * tm.max_rows + static_cast<index>(i)) * w2, w2,
                                packed.begin() + rows[i] * w2);
            }
            for (std::size_t c = 0; c < tm.offsets.size(); ++c)
                std::copy_n(packed.begin() + tm.key_start[c] * w2,
                            (tm.cu_k[c + 1] - tm.cu_k[c]) * w2, seg.begin() + tm.cu_k[c] * w2);
        });
        return seg;
    }

    /// The inverse of gather_key_segments: sums the key segments' gradients into the packed
    /// sequence, reduce-scatters them in the CP group, and writes this rank's tokens' dK and dV
    /// into the K and V columns of dqkv.
    void scatter_key_gradients(const token_map& tm, const std::vector<T>& dseg,
                               std::vector<T>& dqkv) {
        const index hl = m_hl, w2 = 2 * hl, w3 = 3 * hl;
        const index n = static_cast<index>(tm.ids.size());
        const int cp = m_g.cp.size();
        std::vector<T> send = sized<T>(cp * tm.max_rows * w2);
        timed("kv layout bwd", op_lane::compute, 0, [&] {
            std::vector<T> packed = sized<T>(tm.total * w2);
            for (std::size_t c = 0; c < tm.offsets.size(); ++c)
                for (index j = 0; j < tm.cu_k[c + 1] - tm.cu_k[c]; ++j)
                    for (index e = 0; e < w2; ++e)
                        packed[static_cast<std::size_t>((tm.key_start[c] + j) * w2 + e)] +=
                            dseg[static_cast<std::size_t>((tm.cu_k[c] + j) * w2 + e)];
            for (int r = 0; r < cp; ++r) {
                const auto& rows = tm.rank_rows[static_cast<std::size_t>(r)];
                for (std::size_t i = 0; i < rows.size(); ++i)
                    std::copy_n(packed.begin() + rows[i] * w2, w2,
                                send.begin() + (r * tm.max_rows + static_cast<index>(i)) * w2);
            }
        });
        std::vector<T> mine = sized<T>(tm.max_rows * w2);
        timed("cp reduce-scatter dkv", op_lane::cp, bytes_of(send),
              [&] { m_g.cp.reduce_scatter(std::span<const T>(send), std::span<T>(mine)); });
        timed("kv layout bwd", op_lane::compute, 0, [&] {
            for (index i = 0; i < n; ++i)
                std::copy_n(mine.begin() + i * w2, w2, dqkv.begin() + i * w3 + hl);
        });
    }

    const decoder_config& m_config;
    const decoder_params<T>& m_p;
    const parallel_groups& m_g;
    std::map<std::pair<int, int>, micro_batch_state> m_in_flight;    // (m, v) forwarded, not back
    std::vector<std::pair<std::size_t, std::size_t>> m_chunk_layers; // per v: first local, count
    std::vector<int> m_chunk_first_layer; // per v: model index of its first layer
    // What timed() reports an operation under.
    op_phase m_phase = op_phase::forward;
    int m_micro_batch = -1;
    int m_virtual_stage = 0;
    int m_layer = -1;
    int m_tp;
    index m_h, m_heads, m_d, m_hl, m_fl;
};

/// Runs a step-level collective over `c` (gradient and loss reductions) and reports it to the
/// observer; a one-member group moves nothing and is not reported.
template <typename F>
void timed_step_collective(const parallel_groups& g, const communicator& c, std::string_view name,
                           op_lane lane, std::int64_t bytes, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    if (g.observer == nullptr || c.size() == 1)
        return;
    const auto t1 = std::chrono::steady_clock::now();
    op_record r;
    r.name = name;
    r.lane = lane;
    r.type = op_type::collective;
    r.phase = op_phase::backward;
    r.start_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    r.dur_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    r.bytes = bytes;
    g.observer->record(r);
}

template <typename T>
void all_reduce_params(const parallel_groups& g, communicator& c, op_lane lane,
                       decoder_params<T>& grads) {
    if (c.size() == 1)
        return;
    std::vector<T> flat;
    grads.for_each([&](const std::string&, const std::vector<T>& t) {
        flat.insert(flat.end(), t.begin(), t.end());
    });
    timed_step_collective(g, c, "grad all-reduce", lane,
                          static_cast<std::int64_t>(flat.size() * sizeof(T)),
                          [&] { c.all_reduce(std::span<T>(flat)); });
    std::size_t at = 0;
    grads.for_each([&](const std::string&, std::vector<T>& t) {
        std::copy_n(flat.begin() + static_cast<std::ptrdiff_t>(at), t.size(), t.begin());
        at += t.size();
    });
}

} // namespace

void validate_shard(const micro_batch& mb, const sharded_micro_batch& shard, int cp,
                    std::string_view where) {
    if (static_cast<int>(shard.ranks.size()) != cp)
        throw input_error(where, fmt::format("{} CP ranks in the shard, the layout has cp={}",
                                             shard.ranks.size(), cp));
    std::unordered_map<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>> pieces;
    for (const auto& d : mb.docs) {
        if (d.tokens < 1)
            throw input_error(where, fmt::format("document {} has {} tokens", d.id, d.tokens));
        if (!pieces.emplace(d.id, std::vector<std::pair<std::int64_t, std::int64_t>>{}).second)
            throw input_error(where, fmt::format("document {} appears twice", d.id));
    }
    for (std::size_t r = 0; r < shard.ranks.size(); ++r)
        for (const auto& c : shard.ranks[r].chunks) {
            auto it = pieces.find(c.doc_id);
            if (it == pieces.end())
                throw input_error(where, fmt::format("CP rank {} holds a chunk of document {}, "
                                                     "which is not in the micro-batch",
                                                     r, c.doc_id));
            if (c.q_offset < 0 || c.q_tokens < 0)
                throw input_error(where, fmt::format("CP rank {}: chunk of document {} at offset "
                                                     "{} with {} tokens",
                                                     r, c.doc_id, c.q_offset, c.q_tokens));
            if (c.q_tokens > 0)
                it->second.emplace_back(c.q_offset, c.q_tokens);
        }
    for (const auto& d : mb.docs) {
        auto& p = pieces[d.id];
        std::sort(p.begin(), p.end());
        std::int64_t covered = 0;
        for (const auto& [offset, tokens] : p) {
            if (offset != covered)
                throw input_error(where, fmt::format("document {} ({} tokens): chunks {} at token "
                                                     "{}, expected one starting at {}",
                                                     d.id, d.tokens,
                                                     offset < covered ? "overlap" : "leave a gap",
                                                     offset, covered));
            covered += tokens;
        }
        if (covered != d.tokens)
            throw input_error(where, fmt::format("document {} has {} tokens but its chunks cover "
                                                 "{}",
                                                 d.id, d.tokens, covered));
    }
}

sharded_micro_batch whole_documents(const micro_batch& mb) {
    sharded_micro_batch s;
    s.ranks.resize(1);
    for (const auto& d : mb.docs)
        s.ranks[0].chunks.push_back({d.id, 0, d.tokens});
    return s;
}

std::vector<stage_op> all_forward_all_backward(int micro_batches, int virtual_stages) {
    std::vector<stage_op> order;
    for (int m = 0; m < micro_batches; ++m)
        for (int v = 0; v < virtual_stages; ++v)
            order.push_back({stage_op::kind::forward, m, v});
    for (int m = micro_batches; m-- > 0;)
        for (int v = virtual_stages; v-- > 0;)
            order.push_back({stage_op::kind::backward, m, v});
    return order;
}

std::vector<stage_op> schedule_stage_ops(int pp, int vpp, int micro_batches, int stage,
                                         const schedule_options& schedule) {
    std::vector<stage_op> ops;
    for (const auto& slot : pipeline_order(pp, vpp, micro_batches, stage, schedule))
        ops.push_back({slot.phase == pass::fwd ? stage_op::kind::forward : stage_op::kind::backward,
                       slot.micro_batch, slot.virtual_stage});
    return ops;
}

namespace {

void validate_order(const std::vector<stage_op>& order, int micro_batches, int virtual_stages,
                    std::int64_t step) {
    // Per (micro-batch, virtual stage): 0 new, 1 forwarded, 2 done.
    std::vector<int> state(static_cast<std::size_t>(micro_batches * virtual_stages), 0);
    for (std::size_t i = 0; i < order.size(); ++i) {
        const auto& op = order[i];
        const bool fwd = op.op == stage_op::kind::forward;
        if (op.micro_batch < 0 || op.micro_batch >= micro_batches || op.virtual_stage < 0 ||
            op.virtual_stage >= virtual_stages)
            throw input_error(fmt::format("step {}: pipeline op {} names micro-batch {} of {}, "
                                          "virtual stage {} of {}",
                                          step, i, op.micro_batch, micro_batches, op.virtual_stage,
                                          virtual_stages));
        int& st =
            state[static_cast<std::size_t>(op.micro_batch * virtual_stages + op.virtual_stage)];
        if (st != (fwd ? 0 : 1))
            throw input_error(fmt::format("step {}: pipeline op {} is a {} of micro-batch {} {}",
                                          step, i, fwd ? "forward" : "backward", op.micro_batch,
                                          fwd ? "already forwarded" : "not forwarded or done"));
        ++st;
    }
    for (std::size_t i = 0; i < state.size(); ++i)
        if (state[i] != 2)
            throw input_error(fmt::format(
                "step {}: the pipeline order never {} micro-batch {} (virtual stage {})", step,
                state[i] == 0 ? "forwards" : "backwards", static_cast<int>(i) / virtual_stages,
                static_cast<int>(i) % virtual_stages));
}

} // namespace

template <typename T>
step_gradients<T> compute_step_gradients(const decoder_config& config,
                                         const decoder_params<T>& local, const global_batch& batch,
                                         const batch_shards& shards, const parallel_groups& groups,
                                         const std::vector<stage_op>& order) {
    config.validate(groups.tp.size());
    if (config.kv_head_count() != config.heads)
        throw input_error(fmt::format("model {}: the CPU decoder step trains multi-head attention "
                                      "(kv_heads = heads); {} KV heads for {} heads needs the "
                                      "device step",
                                      config.name, config.kv_head_count(), config.heads));
    const int pp = groups.pp == nullptr ? 1 : groups.pp->size();
    if (groups.virtual_stages < 1 || (groups.virtual_stages > 1 && pp < 2))
        throw input_error(fmt::format("vpp={} needs pp >= 2 (pp={})", groups.virtual_stages, pp));
    if (config.layers < static_cast<std::int64_t>(pp) * groups.virtual_stages)
        throw input_error(fmt::format("model: {} layers cannot fill pp={} x vpp={} model chunks",
                                      config.layers, pp, groups.virtual_stages));
    if (static_cast<int>(batch.replicas.size()) != groups.dp.size() ||
        shards.size() != batch.replicas.size())
        throw input_error(fmt::format("step {}: {} DP replicas and {} shard lists for dp={}",
                                      batch.step, batch.replicas.size(), shards.size(),
                                      groups.dp.size()));
    step_gradients<T> out;
    for (std::size_t d = 0; d < batch.replicas.size(); ++d) {
        const auto& mbs = batch.replicas[d].micro_batches;
        if (shards[d].size() != mbs.size())
            throw input_error(fmt::format("step {} replica {}: {} micro-batches but {} shards",
                                          batch.step, d, mbs.size(), shards[d].size()));
        for (std::size_t m = 0; m < mbs.size(); ++m) {
            validate_shard(mbs[m], shards[d][m], groups.cp.size(),
                           fmt::format("step {} replica {} micro-batch {}", batch.step, d, m));
            for (const auto& doc : mbs[m].docs)
                out.labelled_tokens += doc.tokens - 1;
        }
    }
    if (out.labelled_tokens == 0)
        throw input_error(
            fmt::format("step {}: no document has two tokens: nothing to predict", batch.step));
    out.grads = local.zeros_like();
    const double grad_scale = 1.0 / static_cast<double>(out.labelled_tokens);
    step_runner<T> runner(config, local, groups);
    const auto replica = static_cast<std::size_t>(groups.dp.rank());
    double loss_sum = 0;
    const auto& mbs = batch.replicas[replica].micro_batches;
    const int count = static_cast<int>(mbs.size());
    const int vpp = groups.virtual_stages;
    const auto ops = order.empty() ? all_forward_all_backward(count, vpp) : order;
    validate_order(ops, count, vpp, batch.step);
    for (const auto& op : ops) {
        const auto m = static_cast<std::size_t>(op.micro_batch);
        if (op.op == stage_op::kind::forward)
            loss_sum += runner.forward(op.micro_batch, op.virtual_stage, mbs[m], shards[replica][m],
                                       grad_scale, out.grads);
        else
            runner.backward(op.micro_batch, op.virtual_stage, out.grads);
    }
    WLB_EXPECTS(runner.idle(), "micro-batches left in flight after the step");
    // Every TP rank of the last stage holds the same loss; CP ranks and replicas hold parts of
    // it; the other stages hold none.
    std::vector<double> loss = {loss_sum};
    const std::int64_t loss_bytes = sizeof(double);
    timed_step_collective(groups, groups.cp, "loss all-reduce", op_lane::cp, loss_bytes,
                          [&] { groups.cp.all_reduce(std::span<double>(loss)); });
    timed_step_collective(groups, groups.dp, "loss all-reduce", op_lane::dp, loss_bytes,
                          [&] { groups.dp.all_reduce(std::span<double>(loss)); });
    if (groups.pp != nullptr)
        timed_step_collective(groups, *groups.pp, "loss all-reduce", op_lane::pp, loss_bytes,
                              [&] { groups.pp->all_reduce(std::span<double>(loss)); });
    out.loss = loss[0] * grad_scale;
    all_reduce_params(groups, groups.cp, op_lane::cp, out.grads);
    all_reduce_params(groups, groups.dp, op_lane::dp, out.grads);
    return out;
}

template step_gradients<float>
compute_step_gradients<float>(const decoder_config&, const decoder_params<float>&,
                              const global_batch&, const batch_shards&, const parallel_groups&,
                              const std::vector<stage_op>&);
template step_gradients<double>
compute_step_gradients<double>(const decoder_config&, const decoder_params<double>&,
                               const global_batch&, const batch_shards&, const parallel_groups&,
                               const std::vector<stage_op>&);

} // namespace wlb::runtime
