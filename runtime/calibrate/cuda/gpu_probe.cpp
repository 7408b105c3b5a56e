// The GPU probe (runtime/calibrate/gpu_probe.hpp) over the CUDA kernels' host interface
// (kernels/cuda_ops.hpp) and the NCCL communicator (runtime/comm/nccl_communicator.hpp). Host
// code: no CUDA header; timing by CUDA events on one stream, each shape once untimed (warm-up),
// then `repeats` timed runs, the median kept with the spread.
#include "runtime/calibrate/gpu_probe.hpp"

#include "base/error.hpp"
#include "kernels/cuda_ops.hpp"
#include "kernels/device_query.hpp"
#include "runtime/calibrate/probe_design.hpp"
#include "runtime/comm/nccl_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

namespace wlb::runtime {
namespace {

namespace cu = wlb::kernels::cuda;
using index = kernels::index;

/// Median and spread of `repeats` timed runs of f on `stream` after one untimed run.
template <typename F>
repeat_summary timed(cu::stream_t stream, int repeats, F&& f) {
    f();
    std::vector<double> s;
    for (int r = 0; r < repeats; ++r) {
        cu::event_timer t;
        t.start(stream);
        f();
        t.stop(stream);
        s.push_back(t.seconds());
    }
    return summarize_repeats(std::move(s));
}

int local_device(int requested, int count, const communicator& world) {
    if (requested >= 0)
        return requested;
    for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
        if (const char* s = std::getenv(v))
            return std::atoi(s) % count;
    return world.rank() % count;
}

rate_sample compute_sample(rate_class what, bool backward, std::string label, repeat_summary t,
                           int repeats, std::int64_t tokens) {
    rate_sample s;
    s.what = what;
    s.backward = backward;
    s.label = std::move(label);
    s.seconds = t.median;
    s.spread = t.spread;
    s.repeats = repeats;
    s.tokens = tokens;
    return s;
}

} // namespace

bool gpu_probe_built() noexcept {
    return true;
}

rate_samples measure_gpu(const model_spec& model, communicator& world, const gpu_probe_options& o) {
    const auto devices = kernels::query_devices();
    if (devices.devices.empty())
        throw runtime_failure(
            fmt::format("calibrate --backend cuda: no CUDA device ({})", devices.reason));
    const int device = local_device(o.device, static_cast<int>(devices.devices.size()), world);
    cu::set_device(device);
    const auto& info = devices.devices[static_cast<std::size_t>(device)];

    rate_samples out;
    out.source = "cuda probe";
    out.model = model;
    out.tp = 1;
    out.bytes_per_element = 2;
    out.ranks = world.size();
    out.machine = fmt::format(
        "{} (sm_{}{}, {:.0f} GiB, {} SMs), {}", info.name, info.compute_major, info.compute_minor,
        static_cast<double>(info.memory_bytes) / (1u << 30), info.multiprocessors, describe_host());
    if (model.kv_heads != model.heads)
        out.notes.push_back(fmt::format("model {} has grouped-query attention ({} KV heads); the "
                                        "attention kernel is probed with {} heads on K and V "
                                        "(the same FLOPs per query head)",
                                        model.name, model.kv_heads, model.heads));

    const auto design = gpu_probe_design(o.quick);
    const auto probes = probe_batches(design);
    const index t = design.tokens, h = model.hidden, f = model.ffn, heads = model.heads,
                d = model.head_dim(), w3 = 3 * h, vocab = model.vocab;
    cu::stream s;
    cu::blas_handle blas;
    const std::size_t wide = static_cast<std::size_t>(std::max<index>({w3, f, vocab, 2 * h}));
    cu::device_array<kernels::bf16> x(static_cast<std::size_t>(t) * wide),
        y(static_cast<std::size_t>(t) * wide), z(static_cast<std::size_t>(t) * wide),
        w(static_cast<std::size_t>(std::max<index>(f, h)) * wide),
        gw(static_cast<std::size_t>(std::max<index>(f, h)) * wide);
    cu::fill_random(x.data(), static_cast<index>(x.size()), 1, 1.0f, s.get());
    cu::fill_random(y.data(), static_cast<index>(y.size()), 2, 1.0f, s.get());
    cu::fill_random(w.data(), static_cast<index>(w.size()), 3, 0.02f, s.get());
    cu::fill_zero(gw.data(), gw.size() * sizeof(kernels::bf16), s.get());
    const int total = static_cast<int>(probes.size()) + 3;
    int done = 0;
    auto progress = [&](const char* what) {
        if (o.progress)
            o.progress({what, ++done, total});
    };

    // GEMMs of one layer at the probe's token count, forward and backward.
    struct shape {
        index in, outc;
    };
    const std::vector<shape> shapes = {{h, w3}, {h, h}, {h, f}, {h, f}, {f, h}};
    auto g = [&](bool ta, bool tb, index m, index n, index k, const kernels::bf16* a, index lda,
                 const kernels::bf16* b, index ldb, float beta, kernels::bf16* c, index ldc) {
        cu::gemm(blas, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc, s.get());
    };
    const auto gemm_fwd = timed(s.get(), o.repeats, [&] {
        for (const auto& sh : shapes)
            g(false, false, t, sh.outc, sh.in, x.data(), sh.in, w.data(), sh.outc, 0.0f, z.data(),
              sh.outc);
    });
    const auto gemm_bwd = timed(s.get(), o.repeats, [&] {
        for (const auto& sh : shapes) {
            g(false, true, t, sh.in, sh.outc, y.data(), sh.outc, w.data(), sh.outc, 0.0f, z.data(),
              sh.in);
            g(true, false, sh.in, sh.outc, t, x.data(), sh.in, y.data(), sh.outc, 1.0f, gw.data(),
              sh.outc);
        }
    });
    out.samples.push_back(compute_sample(rate_class::gemm, false,
                                         fmt::format("layer GEMMs at {} tokens", t), gemm_fwd,
                                         o.repeats, t));
    out.samples.push_back(compute_sample(rate_class::gemm, true,
                                         fmt::format("layer GEMMs at {} tokens", t), gemm_bwd,
                                         o.repeats, t));
    progress("GEMMs");

    // Element-wise kernels of one layer.
    cu::device_array<kernels::bf16> norm_w(static_cast<std::size_t>(h));
    cu::fill_random(norm_w.data(), h, 4, 1.0f, s.get());
    cu::device_array<float> rstd(static_cast<std::size_t>(t)), dnorm_w(static_cast<std::size_t>(h));
    std::vector<index> positions(static_cast<std::size_t>(t));
    for (index i = 0; i < t; ++i)
        positions[static_cast<std::size_t>(i)] = i % 4096;
    cu::device_array<index> pos(std::span<const index>(positions), s.get());
    const auto elem_fwd = timed(s.get(), o.repeats, [&] {
        for (int n = 0; n < 2; ++n)
            cu::rms_norm_forward(x.data(), norm_w.data(), t, h, 1e-5f, z.data(), rstd.data(),
                                 s.get());
        cu::rotary(y.data(), t, heads, d, w3, pos.data(), model.rope_base, false, s.get());
        cu::rotary(y.data() + h, t, heads, d, w3, pos.data(), model.rope_base, false, s.get());
        cu::swiglu_forward(x.data(), y.data(), t * f, z.data(), s.get());
    });
    const auto elem_bwd = timed(s.get(), o.repeats, [&] {
        for (int n = 0; n < 2; ++n)
            cu::rms_norm_backward(x.data(), norm_w.data(), rstd.data(), y.data(), t, h, z.data(),
                                  dnorm_w.data(), s.get());
        cu::rotary(y.data(), t, heads, d, w3, pos.data(), model.rope_base, true, s.get());
        cu::rotary(y.data() + h, t, heads, d, w3, pos.data(), model.rope_base, true, s.get());
        cu::swiglu_backward(x.data(), y.data(), z.data(), t * f, gw.data(), x.data(), s.get());
    });
    out.samples.push_back(compute_sample(rate_class::elementwise, false, "norms, rotary, SwiGLU",
                                         elem_fwd, o.repeats, t));
    out.samples.push_back(compute_sample(rate_class::elementwise, true, "norms, rotary, SwiGLU",
                                         elem_bwd, o.repeats, t));
    progress("element-wise");

    // Output layer: final norm and LM head.
    const auto out_fwd = timed(s.get(), o.repeats, [&] {
        cu::rms_norm_forward(x.data(), norm_w.data(), t, h, 1e-5f, y.data(), rstd.data(), s.get());
        g(false, false, t, vocab, h, y.data(), h, w.data(), vocab, 0.0f, z.data(), vocab);
    });
    const auto out_bwd = timed(s.get(), o.repeats, [&] {
        g(true, false, h, vocab, t, y.data(), h, z.data(), vocab, 1.0f, gw.data(), vocab);
        g(false, true, t, h, vocab, z.data(), vocab, w.data(), vocab, 0.0f, y.data(), h);
    });
    out.samples.push_back(
        compute_sample(rate_class::output_layer, false, "LM head", out_fwd, o.repeats, t));
    out.samples.push_back(
        compute_sample(rate_class::output_layer, true, "LM head", out_bwd, o.repeats, t));
    progress("output layer");

    // Attention over every probe's chunks.
    cu::attention_workspace workspace;
    cu::device_array<float> lse(static_cast<std::size_t>(t * heads));
    for (const auto& p : probes) {
        std::vector<index> cu_q = {0}, cu_k = {0}, offsets;
        for (const auto& c : p.shard.ranks[0].chunks) {
            cu_q.push_back(cu_q.back() + c.q_tokens);
            cu_k.push_back(cu_k.back() + c.q_offset + c.q_tokens);
            offsets.push_back(c.q_offset);
        }
        const index keys = cu_k.back();
        cu::device_array<kernels::bf16> q(static_cast<std::size_t>(t * h)),
            kv(static_cast<std::size_t>(keys * 2 * h)), o_(static_cast<std::size_t>(t * h)),
            dout(static_cast<std::size_t>(t * h)), dq(static_cast<std::size_t>(t * h)),
            dkv(static_cast<std::size_t>(keys * 2 * h));
        cu::fill_random(q.data(), static_cast<index>(q.size()), 5, 1.0f, s.get());
        cu::fill_random(kv.data(), static_cast<index>(kv.size()), 6, 1.0f, s.get());
        cu::fill_random(dout.data(), static_cast<index>(dout.size()), 7, 1.0f, s.get());
        const kernels::attention_chunks ch{cu_q,  cu_k, offsets,
                                           heads, d,    1.0 / std::sqrt(static_cast<double>(d))};
        const cu::attention_plan plan(ch, cu::attention_variant::automatic, s.get());
        const auto fwd = timed(s.get(), o.repeats, [&] {
            cu::attention_forward(plan, q.data(), h, kv.data(), 2 * h, kv.data() + h, 2 * h,
                                  o_.data(), h, lse.data(), s.get());
        });
        const auto bwd = timed(s.get(), o.repeats, [&] {
            cu::attention_backward(plan, q.data(), h, kv.data(), 2 * h, kv.data() + h, 2 * h,
                                   o_.data(), h, dout.data(), h, lse.data(), dq.data(), h,
                                   dkv.data(), 2 * h, dkv.data() + h, 2 * h, workspace, s.get());
        });
        for (const bool backward : {false, true}) {
            auto x1 = compute_sample(rate_class::attention, backward, p.label, backward ? bwd : fwd,
                                     o.repeats, p.mb.tokens());
            x1.chunks = p.shard.ranks[0].chunks;
            out.samples.push_back(std::move(x1));
        }
        progress("attention probes");
    }
    cu::synchronize(s.get());

    // NCCL collectives over the launcher's ranks, one GPU each.
    if (world.size() > 1) {
        auto nccl = make_nccl_world(world, {.device = device});
        const int n = world.size();
        for (const std::size_t bytes :
             {std::size_t{8}, std::size_t{1} << 20, std::size_t{1} << 26}) {
            const std::size_t count = std::max<std::size_t>(1, bytes / 4 / n);
            cu::device_array<float> part(count), whole(count * static_cast<std::size_t>(n));
            auto add = [&](collective_op op, repeat_summary r, double b) {
                rate_sample c;
                c.what = rate_class::collective;
                c.op = op;
                c.group_size = n;
                c.bytes = b;
                c.seconds = r.median;
                c.spread = r.spread;
                c.repeats = o.repeats;
                c.intra_node = true; // refined below when the ranks span hosts
                c.label = fmt::format("NCCL {} of {} bytes", to_string(op), b);
                out.samples.push_back(std::move(c));
            };
            auto host_timed = [&](auto&& op) {
                std::vector<double> ts;
                op();
                nccl->wait();
                for (int r = 0; r < o.repeats; ++r) {
                    world.barrier();
                    const auto t0 = std::chrono::steady_clock::now();
                    op();
                    nccl->wait();
                    ts.push_back(
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                            .count());
                }
                return summarize_repeats(std::move(ts));
            };
            const double whole_bytes = static_cast<double>(whole.size() * 4);
            add(collective_op::all_reduce, host_timed([&] {
                    nccl->all_reduce_async(whole.data(), whole.size(), device_element::f32);
                }),
                whole_bytes);
            add(collective_op::all_gather, host_timed([&] {
                    nccl->all_gather_async(part.data(), whole.data(), count, device_element::f32);
                }),
                whole_bytes);
            add(collective_op::reduce_scatter, host_timed([&] {
                    nccl->reduce_scatter_async(whole.data(), part.data(), count,
                                               device_element::f32);
                }),
                whole_bytes);
        }
        // Hosts: the MPI probe's host comparison applies to NCCL's members too.
        const auto mpi = measure_world_collectives(world, 1, true);
        if (!mpi.empty() && !mpi.front().intra_node)
            for (auto& c : out.samples)
                if (c.what == rate_class::collective)
                    c.intra_node = false;
    } else {
        out.notes.push_back("collectives: one GPU process; NCCL needs several (mpirun -np N with "
                            "one GPU each): nvlink and network fields left at the preset");
    }
    progress("collectives");
    // The ranks' means.
    if (world.size() > 1) {
        std::vector<double> v;
        for (const auto& x1 : out.samples) {
            v.push_back(x1.seconds);
            v.push_back(x1.spread);
        }
        world.all_reduce(std::span<double>(v));
        for (std::size_t i = 0; i < out.samples.size(); ++i) {
            out.samples[i].seconds = v[2 * i] / world.size();
            out.samples[i].spread = v[2 * i + 1] / world.size();
        }
    }
    return out;
}

} // namespace wlb::runtime
