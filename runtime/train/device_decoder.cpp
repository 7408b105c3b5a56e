#include "runtime/train/device_decoder.hpp"

#include "base/error.hpp"
#include "runtime/train/token_plan.hpp"

#include <cmath>
#include <map>
#include <string_view>

namespace wlb::runtime {

namespace {

/// Bytes of one element in the job's number format (bf16: 2), what the trace reports.
std::int64_t wire_bytes(dspan s) {
    const std::int64_t e = s.type == dtype::bf16 ? 2 : (s.type == dtype::f64 ? 8 : 4);
    return static_cast<std::int64_t>(s.count) * e;
}

/// Elements [offset, end) of `s`: a strided matrix view that starts at a column.
dspan from(dspan s, std::size_t offset) {
    return s.sub(offset, s.count - offset);
}

/// One micro-batch's tokens on the device: its plan and the plan's arrays.
struct device_tokens {
    token_plan plan;
    dbuffer ids, labels, positions, kv_offsets, kv_sources, dkv_offsets, dkv_sources;
    std::unique_ptr<attention_layout> attention;
};

/// What a layer's backward needs from its forward.
struct layer_cache {
    dbuffer x;                ///< input, shard rows x hidden
    dbuffer a;                ///< normed input, rows x hidden (gathered over TP)
    dbuffer rstd1;            ///< shard rows, f32
    dbuffer qkv;              ///< rows x qkv width (rotated Q and K)
    dbuffer kv;               ///< key segments, kv_rows x 2 kv width (empty when kv_local)
    dbuffer k_heads, v_heads; ///< kv_rows x q width: K/V per query head (GQA only)
    dbuffer attn;             ///< rows x q width
    dbuffer lse;              ///< rows x local heads, f32
    dbuffer x2;               ///< after the attention's residual, shard rows x hidden
    dbuffer b;                ///< normed x2, rows x hidden (gathered)
    dbuffer rstd2;
    dbuffer gate, up, act; ///< rows x local ffn
};

struct kv_view {
    dspan k, v;
    index ldk = 0, ldv = 0;
};

} // namespace

/// One step of one rank: the CPU step_runner's structure over the device seams.
struct device_decoder::impl {
    impl(device_decoder& d, const device_groups& g, op_recorder* r, capture_ranges* c)
        : dec(d), dev(d.m_device), cfg(d.m_config), groups(g), recorder(r), capture(c),
          tp(d.m_job_layout.tp()), pp(d.m_job_layout.pp()), vpp(d.m_job_layout.vpp()),
          stage(d.m_coords.pp), h(cfg.hidden), hd(cfg.head_dim()), heads(cfg.heads / tp),
          kv_heads(cfg.kv_head_count() / tp), group(cfg.heads / cfg.kv_head_count()),
          q_w(heads * hd), kv_w(kv_heads * hd), qkv_w(cfg.qkv_width() / tp), f_l(cfg.ffn / tp),
          vocab(cfg.vocab) {
        const auto cut = decoder_chunk_layers(cfg.layers, pp * vpp);
        std::size_t first_local = 0;
        for (int v = 0; v < vpp; ++v) {
            const int model_chunk = v * pp + stage;
            int model_first = 0;
            for (int i = 0; i < model_chunk; ++i)
                model_first += cut[static_cast<std::size_t>(i)];
            const auto count = static_cast<std::size_t>(cut[static_cast<std::size_t>(model_chunk)]);
            chunks.push_back({first_local, count, model_first});
            first_local += count;
        }
    }

    struct chunk_layers {
        std::size_t first_local;
        std::size_t count;
        int first_model_layer;
    };
    struct micro_batch_state {
        std::vector<layer_cache> caches;
        dbuffer top; ///< last chunk: gradient at the top of the stage's layers
    };

    device_decoder& dec;
    compute_device& dev;
    const decoder_config& cfg;
    const device_groups& groups;
    op_recorder* recorder;
    capture_ranges* capture;
    int tp, pp, vpp, stage;
    index h, hd, heads, kv_heads, group, q_w, kv_w, qkv_w, f_l, vocab;
    std::vector<chunk_layers> chunks;
    std::map<int, device_tokens> tokens;                     // per micro-batch of the step
    std::map<std::pair<int, int>, micro_batch_state> flight; // (m, v) forwarded, not back
    double grad_scale = 1.0;
    // What an operation is reported under.
    op_phase m_phase = op_phase::forward;
    int m_micro_batch = -1;
    int m_virtual_stage = 0;
    int m_layer = -1;

    // ---- reporting --------------------------------------------------------------------------

    op_record op(std::string_view name, op_lane lane, op_type type, std::int64_t bytes = 0) const {
        op_record r;
        r.name = name;
        r.lane = lane;
        r.type = type;
        r.phase = m_phase;
        r.micro_batch = m_micro_batch;
        r.virtual_stage = m_virtual_stage;
        r.layer = m_layer;
        r.bytes = bytes;
        return r;
    }
    template <typename F>
    void timed(const op_record& r, F&& f) {
        if (recorder != nullptr)
            recorder->begin(r);
        f();
        if (recorder != nullptr)
            recorder->end();
    }
    template <typename F>
    void compute(std::string_view name, F&& f) {
        timed(op(name, op_lane::compute, op_type::compute), std::forward<F>(f));
    }

    // ---- parameters -------------------------------------------------------------------------

    dspan weight(const param_slot& s) const { return dec.m_work.sub(s.offset, s.count); }
    dspan grad(const param_slot& s) const { return dec.m_grads.sub(s.offset, s.count); }
    const device_param_layout::layer_slots& slots(std::size_t local_layer) const {
        return dec.m_layout.layer(local_layer);
    }

    dbuffer bf16(index count) { return dev.alloc(dtype::bf16, static_cast<std::size_t>(count)); }
    dbuffer f32(index count) { return dev.alloc(dtype::f32, static_cast<std::size_t>(count)); }

    // C[n x m] = A[n x k] B[k x m]
    void matmul(dspan a, dspan b, dspan c, index n, index k, index m) {
        dev.gemm(false, false, n, m, k, 1.0, a, k, b, m, 0.0, c, m);
    }
    // dA[n x k] (= or +=) dC[n x m] B^T
    void matmul_bt(dspan dc, dspan b, dspan da, index n, index k, index m, bool add = false) {
        dev.gemm(false, true, n, k, m, 1.0, dc, m, b, m, add ? 1.0 : 0.0, da, k);
    }
    // dB[k x m] (f32) += A^T[k x n] dC[n x m]
    void matmul_at_acc(dspan a, dspan dc, dspan db, index n, index k, index m) {
        dev.gemm(true, false, k, m, n, 1.0, a, k, dc, m, 1.0, db, m);
    }

    // ---- tokens -----------------------------------------------------------------------------

    template <typename T>
    dbuffer upload(dtype t, const std::vector<T>& v) {
        auto b = dev.alloc(t, v.size());
        if (!v.empty())
            dev.upload(b, v.data());
        return b;
    }

    device_tokens& tokens_of(int m, const micro_batch& mb, const sharded_micro_batch& shard) {
        auto it = tokens.find(m);
        if (it != tokens.end())
            return it->second;
        auto& t = tokens[m];
        const auto& c = dec.m_coords;
        timed(op("token layout", op_lane::host, op_type::compute), [&] {
            t.plan = plan_tokens(mb, shard, c.cp, tp, c.tp, vocab);
            t.ids = upload(dtype::i32, t.plan.shard_ids);
            t.labels = upload(dtype::i32, t.plan.shard_labels);
            t.positions = upload(dtype::i64, t.plan.positions);
            if (!t.plan.kv_local) {
                t.kv_offsets = upload(dtype::i64, t.plan.kv_offsets);
                t.kv_sources = upload(dtype::i64, t.plan.kv_sources);
                t.dkv_offsets = upload(dtype::i64, t.plan.dkv_offsets);
                t.dkv_sources = upload(dtype::i64, t.plan.dkv_sources);
            }
            if (t.plan.cu_q.size() > 1) {
                kernels::attention_chunks layout{
                    t.plan.cu_q, t.plan.cu_k, t.plan.q_offsets,
                    heads,       hd,          1.0 / std::sqrt(static_cast<double>(hd))};
                t.attention = dev.prepare_attention(layout);
            }
        });
        return t;
    }

    // ---- sequence-parallel TP ---------------------------------------------------------------

    /// rows x hidden from each TP rank's shard rows x hidden (the shard itself when tp = 1).
    dbuffer tp_gather(const dbuffer& shard, index rows, std::string_view name) {
        if (tp == 1)
            return shard;
        auto whole = bf16(rows * h);
        timed(op(name, op_lane::tp, op_type::collective, wire_bytes(shard)),
              [&] { groups.tp.all_gather(shard, whole); });
        return whole;
    }
    /// This TP rank's rows of the sum over TP of `whole` (rows x hidden).
    dbuffer tp_scatter(const dbuffer& whole, index shard_rows, std::string_view name) {
        if (tp == 1)
            return whole;
        auto shard = bf16(shard_rows * h);
        timed(op(name, op_lane::tp, op_type::collective, wire_bytes(whole)),
              [&] { groups.tp.reduce_scatter(whole, shard); });
        return shard;
    }

    // ---- one layer --------------------------------------------------------------------------

    /// K and V of every local chunk's key segment (and per query head under GQA).
    kv_view exchange_kv(const device_tokens& t, layer_cache& c) {
        const auto& p = t.plan;
        kv_view kv;
        if (p.kv_local) {
            kv = {from(c.qkv, static_cast<std::size_t>(q_w)),
                  from(c.qkv, static_cast<std::size_t>(q_w + kv_w)), qkv_w, qkv_w};
        } else {
            const index w2 = 2 * kv_w;
            auto mine = bf16(p.block_rows * w2);
            compute("kv layout fwd", [&] {
                if (p.block_rows > p.rows)
                    dev.zero(mine.rows(p.rows, p.block_rows - p.rows, w2));
                dev.copy_2d(mine, w2, from(c.qkv, static_cast<std::size_t>(q_w)), qkv_w, p.rows,
                            w2);
            });
            dbuffer all = mine;
            if (p.cp > 1) {
                all = bf16(p.cp * p.block_rows * w2);
                timed(op("cp all-gather kv", op_lane::cp, op_type::collective, wire_bytes(mine)),
                      [&] { groups.cp.all_gather(mine, all); });
            }
            c.kv = bf16(p.kv_rows * w2);
            compute("kv layout fwd",
                    [&] { dev.gather_rows(c.kv, w2, t.kv_offsets, t.kv_sources, all); });
            kv = {c.kv, from(c.kv, static_cast<std::size_t>(kv_w)), w2, w2};
        }
        if (group > 1) {
            c.k_heads = bf16(p.kv_rows * q_w);
            c.v_heads = bf16(p.kv_rows * q_w);
            compute("kv layout fwd", [&] {
                dev.expand_heads(c.k_heads, q_w, kv.k, kv.ldk, p.kv_rows, kv_heads, group, hd);
                dev.expand_heads(c.v_heads, q_w, kv.v, kv.ldv, p.kv_rows, kv_heads, group, hd);
            });
            kv = {c.k_heads, c.v_heads, q_w, q_w};
        }
        return kv;
    }

    dbuffer layer_forward(const device_tokens& t, std::size_t local_layer, layer_cache& c,
                          dbuffer x) {
        const auto& p = t.plan;
        const auto& w = slots(local_layer);
        const index n = p.rows, ns = p.shard_rows;
        c.x = std::move(x);
        auto a_s = bf16(ns * h);
        c.rstd1 = f32(ns);
        compute("attn norm fwd", [&] {
            dev.rms_norm_forward(c.x, weight(w.norm1), ns, h, cfg.norm_eps, a_s, c.rstd1);
        });
        c.a = tp_gather(a_s, n, "tp all-gather fwd");
        c.qkv = bf16(n * qkv_w);
        compute("qkv proj fwd", [&] {
            matmul(c.a, weight(w.wqkv), c.qkv, n, h, qkv_w);
            dev.rotary(c.qkv, n, heads, hd, qkv_w, t.positions, cfg.rope_base, false);
            dev.rotary(from(c.qkv, static_cast<std::size_t>(q_w)), n, kv_heads, hd, qkv_w,
                       t.positions, cfg.rope_base, false);
        });
        c.attn = bf16(n * q_w);
        c.lse = f32(n * heads);
        if (t.attention) {
            const kv_view kv = exchange_kv(t, c);
            compute("attention fwd", [&] {
                if (p.tokens < n) // padding rows belong to no chunk: zero output
                    dev.zero(c.attn);
                dev.attention_forward(*t.attention, c.qkv, qkv_w, kv.k, kv.ldk, kv.v, kv.ldv,
                                      c.attn, q_w, c.lse);
            });
        } else {
            compute("attention fwd", [&] { dev.zero(c.attn); });
        }
        auto o = bf16(n * h);
        compute("out proj fwd", [&] { matmul(c.attn, weight(w.wo), o, n, q_w, h); });
        const auto o_s = tp_scatter(o, ns, "tp reduce-scatter fwd");
        c.x2 = bf16(ns * h);
        auto b_s = bf16(ns * h);
        c.rstd2 = f32(ns);
        compute("mlp norm fwd", [&] {
            dev.add(c.x2, c.x, o_s);
            dev.rms_norm_forward(c.x2, weight(w.norm2), ns, h, cfg.norm_eps, b_s, c.rstd2);
        });
        c.b = tp_gather(b_s, n, "tp all-gather fwd");
        c.gate = bf16(n * f_l);
        c.up = bf16(n * f_l);
        c.act = bf16(n * f_l);
        auto mlp = bf16(n * h);
        compute("mlp fwd", [&] {
            matmul(c.b, weight(w.w_gate), c.gate, n, h, f_l);
            matmul(c.b, weight(w.w_up), c.up, n, h, f_l);
            dev.swiglu_forward(c.gate, c.up, c.act);
            matmul(c.act, weight(w.w_down), mlp, n, f_l, h);
        });
        const auto mlp_s = tp_scatter(mlp, ns, "tp reduce-scatter fwd");
        auto out = bf16(ns * h);
        compute("residual fwd", [&] { dev.add(out, c.x2, mlp_s); });
        return out;
    }

    dbuffer layer_backward(const device_tokens& t, std::size_t local_layer, layer_cache& c,
                           const dbuffer& dy) {
        const auto& p = t.plan;
        const auto& w = slots(local_layer);
        const auto& g = slots(local_layer);
        const index n = p.rows, ns = p.shard_rows;
        // MLP: row-parallel down, column-parallel gate and up.
        const auto dmlp = tp_gather(dy, n, "tp all-gather bwd");
        auto db = bf16(n * h);
        compute("mlp bwd", [&] {
            auto dact = bf16(n * f_l), dgate = bf16(n * f_l), dup = bf16(n * f_l);
            matmul_bt(dmlp, weight(w.w_down), dact, n, f_l, h);
            matmul_at_acc(c.act, dmlp, grad(g.w_down), n, f_l, h);
            dev.swiglu_backward(c.gate, c.up, dact, dgate, dup);
            matmul_bt(dgate, weight(w.w_gate), db, n, h, f_l);
            matmul_bt(dup, weight(w.w_up), db, n, h, f_l, true);
            matmul_at_acc(c.b, dgate, grad(g.w_gate), n, h, f_l);
            matmul_at_acc(c.b, dup, grad(g.w_up), n, h, f_l);
        });
        const auto db_s = tp_scatter(db, ns, "tp reduce-scatter bwd");
        auto dx2 = bf16(ns * h);
        compute("mlp norm bwd", [&] {
            dev.rms_norm_backward(c.x2, weight(w.norm2), c.rstd2, db_s, ns, h, dx2, grad(g.norm2));
            dev.add(dx2, dx2, dy);
        });
        // Attention: row-parallel output projection, column-parallel QKV.
        const auto dout = tp_gather(dx2, n, "tp all-gather bwd");
        auto dattn = bf16(n * q_w);
        compute("out proj bwd", [&] {
            matmul_bt(dout, weight(w.wo), dattn, n, q_w, h);
            matmul_at_acc(c.attn, dout, grad(g.wo), n, q_w, h);
        });
        auto dqkv = bf16(n * qkv_w);
        attention_backward(t, c, dattn, dqkv);
        auto da = bf16(n * h);
        compute("qkv proj bwd", [&] {
            dev.rotary(dqkv, n, heads, hd, qkv_w, t.positions, cfg.rope_base, true);
            dev.rotary(from(dqkv, static_cast<std::size_t>(q_w)), n, kv_heads, hd, qkv_w,
                       t.positions, cfg.rope_base, true);
            matmul_bt(dqkv, weight(w.wqkv), da, n, h, qkv_w);
            matmul_at_acc(c.a, dqkv, grad(g.wqkv), n, h, qkv_w);
        });
        const auto da_s = tp_scatter(da, ns, "tp reduce-scatter bwd");
        auto dx = bf16(ns * h);
        compute("attn norm bwd", [&] {
            dev.rms_norm_backward(c.x, weight(w.norm1), c.rstd1, da_s, ns, h, dx, grad(g.norm1));
            dev.add(dx, dx, dx2);
        });
        c = {}; // the layer's activations go
        return dx;
    }

    /// dqkv (overwritten): dQ from the attention's backward, dK and dV summed over the query
    /// heads that share them (GQA) and over the CP ranks' chunks that read them.
    void attention_backward(const device_tokens& t, layer_cache& c, const dbuffer& dattn,
                            dbuffer& dqkv) {
        const auto& p = t.plan;
        const index w2 = 2 * kv_w;
        if (!t.attention) {
            compute("attention bwd", [&] { dev.zero(dqkv); });
            return;
        }
        const kv_view kv =
            group > 1    ? kv_view{c.k_heads, c.v_heads, q_w, q_w}
            : p.kv_local ? kv_view{from(c.qkv, static_cast<std::size_t>(q_w)),
                                   from(c.qkv, static_cast<std::size_t>(q_w + kv_w)), qkv_w, qkv_w}
                         : kv_view{c.kv, from(c.kv, static_cast<std::size_t>(kv_w)), w2, w2};
        // Where the attention writes dK and dV: per query head (GQA), straight into dqkv
        // (local keys), or into the key segments' gradient.
        dbuffer dk_heads, dv_heads, dseg;
        kv_view dkv;
        if (group > 1) {
            dk_heads = bf16(p.kv_rows * q_w);
            dv_heads = bf16(p.kv_rows * q_w);
            dkv = {dk_heads, dv_heads, q_w, q_w};
        } else if (p.kv_local) {
            dkv = {from(dqkv, static_cast<std::size_t>(q_w)),
                   from(dqkv, static_cast<std::size_t>(q_w + kv_w)), qkv_w, qkv_w};
        } else {
            dseg = bf16(p.kv_rows * w2);
            dkv = {dseg, from(dseg, static_cast<std::size_t>(kv_w)), w2, w2};
        }
        compute("attention bwd", [&] {
            dev.zero(dqkv); // padding rows and, for local keys, keys no chunk reads
            dev.attention_backward(*t.attention, c.qkv, qkv_w, kv.k, kv.ldk, kv.v, kv.ldv, c.attn,
                                   q_w, dattn, q_w, c.lse, dqkv, qkv_w, dkv.k, dkv.ldk, dkv.v,
                                   dkv.ldv);
        });
        if (group > 1) {
            if (!p.kv_local)
                dseg = bf16(p.kv_rows * w2);
            const dspan target = p.kv_local ? from(dqkv, static_cast<std::size_t>(q_w)) : dseg;
            const index ld = p.kv_local ? qkv_w : w2;
            compute("kv layout bwd", [&] {
                dev.reduce_heads(target, ld, dk_heads, q_w, p.kv_rows, kv_heads, group, hd);
                dev.reduce_heads(from(target, static_cast<std::size_t>(kv_w)), ld, dv_heads, q_w,
                                 p.kv_rows, kv_heads, group, hd);
            });
        }
        if (p.kv_local)
            return;
        auto send = bf16(p.cp * p.block_rows * w2);
        compute("kv layout bwd",
                [&] { dev.gather_rows(send, w2, t.dkv_offsets, t.dkv_sources, dseg); });
        dbuffer mine = send;
        if (p.cp > 1) {
            mine = bf16(p.block_rows * w2);
            timed(op("cp reduce-scatter dkv", op_lane::cp, op_type::collective, wire_bytes(send)),
                  [&] { groups.cp.reduce_scatter(send, mine); });
        }
        compute("kv layout bwd", [&] {
            dev.copy_2d(from(dqkv, static_cast<std::size_t>(q_w)), qkv_w, mine, w2, p.rows, w2);
        });
    }

    // ---- pipeline ---------------------------------------------------------------------------

    int chunk(int v) const noexcept { return v * pp + stage; }
    int last_chunk() const noexcept { return pp * vpp - 1; }
    int previous_stage() const noexcept { return (stage + pp - 1) % pp; }
    int next_stage() const noexcept { return (stage + 1) % pp; }
    /// The message into model chunk c of micro-batch m (runtime/train/decoder_step.cpp's rule).
    std::int64_t message(int m, int c, bool backward) const noexcept {
        return (static_cast<std::int64_t>(m) * (last_chunk() + 1) + c) * 2 + (backward ? 1 : 0);
    }
    int tag(int m, int c, bool backward) const noexcept {
        return static_cast<int>(message(m, c, backward) % (max_tag + 1));
    }
    void p2p(std::string_view name, op_type type, const dbuffer& data, int peer, std::int64_t msg,
             int t) {
        auto r = op(name, op_lane::pp, type, wire_bytes(data));
        r.peer_world_rank = groups.pp.group().world_ranks[static_cast<std::size_t>(peer)];
        r.message = msg;
        timed(r, [&] {
            if (type == op_type::send)
                groups.pp.send(data, peer, t);
            else
                groups.pp.recv(data, peer, t);
        });
    }

    void enter(op_phase ph, int m, int v) {
        m_phase = ph;
        m_micro_batch = m;
        m_virtual_stage = v;
        m_layer = -1;
    }

    /// Forward of micro-batch m through virtual stage v; returns nothing (the loss accumulates
    /// on the device).
    void forward(int m, int v, const micro_batch& mb, const sharded_micro_batch& shard) {
        const capture_scope mb_range(capture, [&](capture_ranges& c) { c.micro_batch(m); });
        const capture_scope stage_range(capture, [&](capture_ranges& c) { c.stage(stage, v); });
        const capture_scope phase_range(capture,
                                        [](capture_ranges& c) { c.phase(runtime::phase::fwd); });
        enter(op_phase::forward, m, v);
        auto& t = tokens_of(m, mb, shard);
        const auto& p = t.plan;
        auto& st = flight[{m, v}];
        const auto& ch = chunks[static_cast<std::size_t>(v)];
        st.caches.resize(ch.count);
        const int c = chunk(v);
        auto x = bf16(p.shard_rows * h);
        if (c == 0)
            compute("embedding fwd", [&] {
                dev.embedding_forward(weight(dec.m_layout.embed()), t.ids, p.shard_rows, h, x);
            });
        else
            p2p("recv activation", op_type::recv, x, previous_stage(), message(m, c, false),
                tag(m, c, false));
        for (std::size_t l = 0; l < ch.count; ++l) {
            m_layer = ch.first_model_layer + static_cast<int>(l);
            const capture_scope layer_range(capture,
                                            [&](capture_ranges& cr) { cr.layer(m_layer); });
            x = layer_forward(t, ch.first_local + l, st.caches[l], std::move(x));
        }
        m_layer = -1;
        if (c != last_chunk()) {
            p2p("send activation", op_type::send, x, next_stage(), message(m, c + 1, false),
                tag(m, c + 1, false));
            return;
        }
        // The head: final norm, LM head, loss, and at once their backward.
        const index ns = p.shard_rows;
        auto y = bf16(ns * h);
        auto rstd = f32(ns);
        auto logits = bf16(ns * vocab);
        auto dlogits = bf16(ns * vocab);
        compute("output layer fwd", [&] {
            dev.rms_norm_forward(x, weight(dec.m_layout.final_norm()), ns, h, cfg.norm_eps, y,
                                 rstd);
            matmul(y, weight(dec.m_layout.lm_head()), logits, ns, h, vocab);
            dev.cross_entropy(logits, t.labels, ns, vocab, grad_scale, dlogits, dec.m_loss);
        });
        m_phase = op_phase::backward;
        st.top = bf16(ns * h);
        compute("output layer bwd", [&] {
            matmul_at_acc(y, dlogits, grad(dec.m_layout.lm_head()), ns, h, vocab);
            auto dy = bf16(ns * h);
            matmul_bt(dlogits, weight(dec.m_layout.lm_head()), dy, ns, h, vocab);
            dev.rms_norm_backward(x, weight(dec.m_layout.final_norm()), rstd, dy, ns, h, st.top,
                                  grad(dec.m_layout.final_norm()));
        });
    }

    void backward(int m, int v) {
        const capture_scope mb_range(capture, [&](capture_ranges& c) { c.micro_batch(m); });
        const capture_scope stage_range(capture, [&](capture_ranges& c) { c.stage(stage, v); });
        const capture_scope phase_range(capture,
                                        [](capture_ranges& c) { c.phase(runtime::phase::bwd); });
        auto it = flight.find({m, v});
        WLB_EXPECTS(it != flight.end(), "backward of micro-batch {} before its forward", m);
        enter(op_phase::backward, m, v);
        const auto& t = tokens.at(m);
        const auto& p = t.plan;
        auto& st = it->second;
        const auto& ch = chunks[static_cast<std::size_t>(v)];
        const int c = chunk(v);
        dbuffer dx;
        if (c == last_chunk()) {
            dx = std::move(st.top);
        } else {
            dx = bf16(p.shard_rows * h);
            p2p("recv gradient", op_type::recv, dx, next_stage(), message(m, c, true),
                tag(m, c, true));
        }
        for (std::size_t l = ch.count; l-- > 0;) {
            m_layer = ch.first_model_layer + static_cast<int>(l);
            const capture_scope layer_range(capture,
                                            [&](capture_ranges& cr) { cr.layer(m_layer); });
            dx = layer_backward(t, ch.first_local + l, st.caches[l], dx);
        }
        m_layer = -1;
        if (c == 0)
            compute("embedding bwd", [&] {
                dev.embedding_backward(dx, t.ids, p.shard_rows, h, grad(dec.m_layout.embed()));
            });
        else
            p2p("send gradient", op_type::send, dx, previous_stage(), message(m, c - 1, true),
                tag(m, c - 1, true));
        flight.erase(it);
    }

    /// Step-level gradient all-reduce over a group (one-member groups move nothing).
    void reduce_grads(device_comm& c, op_lane lane, dspan data) {
        if (c.size() == 1 || data.count == 0)
            return;
        auto r = op("grad all-reduce", lane, op_type::collective, wire_bytes(data));
        r.micro_batch = -1;
        r.virtual_stage = 0;
        timed(r, [&] { c.all_reduce(data); });
    }
};

device_decoder::device_decoder(compute_device& device, const decoder_config& config,
                               const layout& l, int world_rank, const trainer_options& options)
    : m_device(device), m_config(config), m_job_layout(l), m_coords(l.coords_of(world_rank)),
      m_options(options),
      m_layout(local_param_sizes(config, l.tp(), l.pp(), l.coords_of(world_rank).pp, l.vpp())),
      m_sizes(local_param_sizes(config, l.tp(), l.pp(), m_coords.pp, l.vpp())) {
    config.validate(l.tp());
    if (l.vpp() > 1 && l.pp() < 2)
        throw input_error(fmt::format("vpp={} needs pp >= 2 (pp={})", l.vpp(), l.pp()));
    if (config.layers < static_cast<std::int64_t>(l.pp()) * l.vpp())
        throw input_error(fmt::format("model {}: {} layers cannot fill pp={} x vpp={} model chunks",
                                      config.name, config.layers, l.pp(), l.vpp()));
    const std::size_t total = m_layout.total();
    m_master = device.alloc(dtype::f32, total);
    m_work = device.alloc(dtype::bf16, total);
    m_grads = device.alloc(dtype::f32, total);
    m_loss = device.alloc(dtype::f64, 1);
    if (static_cast<double>(decoder_parameter_count(config)) <= host_init_parameters) {
        const auto full = init_decoder_params<float>(config, options.seed);
        const auto local = stage_decoder_params(
            shard_decoder_params(config, full, l.tp(), m_coords.tp), l.pp(), m_coords.pp, l.vpp());
        const auto flat = m_layout.flatten(local);
        device.upload(m_master, flat.data());
    } else {
        // Per tensor, a seed of (seed, tensor, TP rank, stage): CP and DP replicas agree.
        std::uint64_t tensor = 0;
        m_layout.for_each([&](const std::string& name, const param_slot& s) {
            const std::uint64_t seed = options.seed * 0x9e3779b97f4a7c15ULL + (++tensor << 20) +
                                       static_cast<std::uint64_t>(m_coords.tp) * 4096 +
                                       static_cast<std::uint64_t>(m_coords.pp);
            const auto span = m_master.sub(s.offset, s.count);
            if (device_param_layout::tp_replicated(name) && name != "embed" && name != "lm_head") {
                device.fill_uniform(span, seed, 1.0, 1.0);
                return;
            }
            // The CPU init draws N(0, 1/rows); uniform(-a, a) with a = sqrt(3 / rows) has that
            // variance. rows: the input width (ffn for w_down, hidden for every other).
            const double rows = name.ends_with("w_down") ? static_cast<double>(config.ffn) / l.tp()
                                                         : static_cast<double>(config.hidden);
            const double a = std::sqrt(3.0 / rows);
            device.fill_uniform(span, seed, -a, a);
        });
    }
    device.convert(m_work, m_master);
    device.zero(m_grads);
    device.synchronize();
}

device_decoder::~device_decoder() = default;

std::vector<stage_op> device_decoder::order(int micro_batches) const {
    return schedule_stage_ops(m_job_layout.pp(), m_job_layout.vpp(), micro_batches, m_coords.pp,
                              m_options.schedule);
}

step_result device_decoder::gradients(const global_batch& batch, const batch_shards& shards,
                                      const device_groups& groups, op_recorder* recorder,
                                      capture_ranges* capture) {
    const auto& l = m_job_layout;
    WLB_EXPECTS(groups.tp.size() == l.tp() && groups.cp.size() == l.cp() &&
                    groups.pp.size() == l.pp() && groups.dp.size() == l.dp(),
                "device groups of {} x {} x {} x {} for layout {}", groups.tp.size(),
                groups.cp.size(), groups.pp.size(), groups.dp.size(), l.spec());
    if (static_cast<int>(batch.replicas.size()) != l.dp() || shards.size() != batch.replicas.size())
        throw input_error(fmt::format("step {}: {} DP replicas and {} shard lists for dp={}",
                                      batch.step, batch.replicas.size(), shards.size(), l.dp()));
    std::int64_t labelled = 0;
    for (std::size_t d = 0; d < batch.replicas.size(); ++d) {
        const auto& mbs = batch.replicas[d].micro_batches;
        if (shards[d].size() != mbs.size())
            throw input_error(fmt::format("step {} replica {}: {} micro-batches but {} shards",
                                          batch.step, d, mbs.size(), shards[d].size()));
        for (std::size_t m = 0; m < mbs.size(); ++m) {
            validate_shard(mbs[m], shards[d][m], l.cp(),
                           fmt::format("step {} replica {} micro-batch {}", batch.step, d, m));
            for (const auto& doc : mbs[m].docs)
                labelled += doc.tokens - 1;
        }
    }
    if (labelled == 0)
        throw input_error(
            fmt::format("step {}: no document has two tokens: nothing to predict", batch.step));
    impl run(*this, groups, recorder, capture);
    run.grad_scale = 1.0 / static_cast<double>(labelled);
    const auto replica = static_cast<std::size_t>(m_coords.dp);
    const auto& mbs = batch.replicas[replica].micro_batches;
    m_device.zero(m_loss);
    for (const auto& o : order(static_cast<int>(mbs.size()))) {
        const auto m = static_cast<std::size_t>(o.micro_batch);
        if (o.op == stage_op::kind::forward)
            run.forward(o.micro_batch, o.virtual_stage, mbs[m], shards[replica][m]);
        else
            run.backward(o.micro_batch, o.virtual_stage);
    }
    WLB_EXPECTS(run.flight.empty(), "micro-batches left in flight after the step");
    run.m_phase = op_phase::backward;
    run.reduce_grads(groups.tp, op_lane::tp, m_grads.sub(0, m_layout.replicated()));
    run.reduce_grads(groups.cp, op_lane::cp, m_grads);
    run.reduce_grads(groups.dp, op_lane::dp, m_grads);
    for (device_comm* c : {&groups.tp, &groups.cp, &groups.pp, &groups.dp})
        c->wait(); // under the watchdog, before the host waits for the device
    double loss_sum = 0.0;
    m_device.download(m_loss, &loss_sum);
    const double total = groups.world_sum ? groups.world_sum(loss_sum) : loss_sum;
    return {total / static_cast<double>(labelled), labelled};
}

void device_decoder::apply(op_recorder* recorder, capture_ranges* capture) {
    const capture_scope range(capture, [](capture_ranges& c) { c.phase(phase::optimizer); });
    op_record r;
    r.name = "optimizer step";
    r.lane = op_lane::compute;
    r.type = op_type::compute;
    r.phase = op_phase::optimizer;
    if (recorder != nullptr)
        recorder->begin(r);
    m_device.sgd(m_master, m_grads, m_options.learning_rate);
    m_device.convert(m_work, m_master);
    m_device.zero(m_grads);
    if (recorder != nullptr)
        recorder->end();
}

namespace {

/// Parameters of the given names and sizes, every value zero.
decoder_params<float> zeros_of(const std::vector<std::pair<std::string, std::size_t>>& sizes) {
    decoder_params<float> p;
    std::size_t layers = 0;
    for (const auto& [name, count] : sizes)
        if (name.ends_with(".norm1"))
            ++layers;
    p.layers.resize(layers);
    std::size_t i = 0;
    p.for_each([&](const std::string& name, std::vector<float>& t) {
        WLB_EXPECTS(i < sizes.size() && sizes[i].first == name, "parameter {} out of order", name);
        t.assign(sizes[i++].second, 0.0f);
    });
    return p;
}

} // namespace

decoder_params<float> device_decoder::download_gradients() {
    std::vector<float> flat(m_layout.total());
    m_device.download(m_grads, flat.data());
    return m_layout.unflatten(flat, zeros_of(m_sizes));
}

void device_decoder::load_params(const decoder_params<float>& local) {
    const auto flat = m_layout.flatten(local);
    m_device.upload(m_master, flat.data());
    m_device.convert(m_work, m_master);
    m_device.zero(m_grads);
    m_device.synchronize();
}

decoder_params<float> device_decoder::download_params() {
    std::vector<float> flat(m_layout.total());
    m_device.download(m_master, flat.data());
    return m_layout.unflatten(flat, zeros_of(m_sizes));
}

} // namespace wlb::runtime
