// Sharder, Sharding and RankShard (python/src/bindings.hpp).
#include "base/error.hpp"
#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/objects.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/sharding/make_sharder.hpp"
#include "tuner/sharding/sharding.hpp"

#include <fmt/format.h>
#include <mutex>
#include <pybind11/stl.h>
#include <type_traits>

namespace wlb::python {
namespace {

using sharding_ptr = std::shared_ptr<cp_sharding>;

struct sharder_handle {
    sharder_handle(const tuner::sharding_spec& s, std::shared_ptr<tuner::cost_model> c)
        : cost(std::move(c)), sharder(tuner::make_sharder(s, *cost)) {}

    std::shared_ptr<tuner::cost_model> cost; // never changed: the Python class has no setter
    std::unique_ptr<tuner::sharder> sharder;
    std::mutex mutex; // sharders are const, but not promised to be thread-safe
};

sharding_ptr shard(sharder_handle& h, runtime::micro_batch mb) {
    py::gil_scoped_release nogil;
    tuner::check_shardable(mb);
    const std::lock_guard lock(h.mutex);
    return cp_sharding::from(h.sharder->shard(mb));
}

rank_shard_ref rank_at(const sharding_ptr& s, int rank) {
    const auto cp = static_cast<int>(s->decision.sharded.ranks.size());
    if (rank < 0 || rank >= cp)
        throw py::index_error(fmt::format("CP rank {} out of range (cp = {})", rank, cp));
    return {s, static_cast<std::size_t>(rank)};
}

void bind_sharding_types(py::module_& m) {
    static_assert(sizeof(runtime::chunk) == 3 * sizeof(std::int64_t) &&
                  std::is_standard_layout_v<runtime::chunk>);
    py::class_<rank_shard_ref>(m, "RankShard", R"doc(
What one CP rank holds of a micro-batch, and what a varlen attention kernel takes for it
(tuner/sharding/varlen_shapes.hpp). The rank lays its chunks' query tokens out one after the
other, in order. Chunk c holds tokens q_offsets[c] .. q_offsets[c] + q_tokens - 1 of its
document as queries [cu_seqlens_q[c], cu_seqlens_q[c + 1]) and attends the document's keys
0 .. q_offsets[c] + q_tokens - 1, laid out at [cu_seqlens_k[c], cu_seqlens_k[c + 1]): a causal
mask aligned to the bottom right, as flash_attn_varlen_func(..., causal=True) applies it.

  chunks        (n, 3) int64 view: [doc_id, q_offset, q_tokens] per chunk, as a plan records it
  cu_seqlens_q  (n + 1) int32
  cu_seqlens_k  (n + 1) int32
  q_offsets     (n) int32: per chunk, the key offset of its first query (earlier tokens of its
                document); position ids are q_offsets[c] + arange(q_tokens)
)doc")
        .def_property_readonly("cp_rank", [](const rank_shard_ref& r) { return r.rank; })
        .def_property_readonly("chunks",
                               [](py::object self) {
                                   const auto& r = self.cast<const rank_shard_ref&>();
                                   const auto& c = r.chunks();
                                   return view(reinterpret_cast<const std::int64_t*>(c.data()),
                                               {py::ssize_t(c.size()), 3}, self);
                               })
        .def_property_readonly("cu_seqlens_q",
                               [](py::object self) {
                                   const auto& v = self.cast<const rank_shard_ref&>().shapes();
                                   return view(v.cu_seqlens_q.data(),
                                               {py::ssize_t(v.cu_seqlens_q.size())}, self);
                               })
        .def_property_readonly("cu_seqlens_k",
                               [](py::object self) {
                                   const auto& v = self.cast<const rank_shard_ref&>().shapes();
                                   return view(v.cu_seqlens_k.data(),
                                               {py::ssize_t(v.cu_seqlens_k.size())}, self);
                               })
        .def_property_readonly("q_offsets",
                               [](py::object self) {
                                   const auto& v = self.cast<const rank_shard_ref&>().shapes();
                                   return view(v.q_offsets.data(),
                                               {py::ssize_t(v.q_offsets.size())}, self);
                               })
        .def_property_readonly("max_seqlen_q",
                               [](const rank_shard_ref& r) { return r.shapes().max_seqlen_q; })
        .def_property_readonly("max_seqlen_k",
                               [](const rank_shard_ref& r) { return r.shapes().max_seqlen_k; })
        .def_property_readonly(
            "tokens", [](const rank_shard_ref& r) { return r.shapes().cu_seqlens_q.back(); },
            "Query tokens this rank holds.")
        .def("__len__", [](const rank_shard_ref& r) { return r.chunks().size(); })
        .def("__repr__", [](const rank_shard_ref& r) {
            return fmt::format("<RankShard cp rank {}: {} chunks, {} tokens>", r.rank,
                               r.chunks().size(), r.shapes().cu_seqlens_q.back());
        });

    py::class_<cp_sharding, sharding_ptr>(m, "Sharding", R"doc(
A micro-batch split over the CP ranks: the layout applied (per-seq or per-doc, what adaptive
chose; hybrid, or what it fell back to) and each rank's chunks (rank(r), ranks()).
)doc")
        .def_property_readonly(
            "applied", [](const cp_sharding& s) { return tuner::to_string(s.decision.applied); })
        .def_property_readonly(
            "threshold_tokens", [](const cp_sharding& s) { return s.decision.threshold_tokens; },
            "hybrid applied: documents of at least this many tokens were sharded per document; "
            "None otherwise, or when every document was kept whole.")
        .def_property_readonly("fell_back",
                               [](const cp_sharding& s) { return s.decision.fell_back; })
        .def_property_readonly("cp",
                               [](const cp_sharding& s) { return s.decision.sharded.ranks.size(); })
        .def("rank", &rank_at, py::arg("cp_rank"), "What CP rank `cp_rank` holds (RankShard).")
        .def("ranks",
             [](const sharding_ptr& s) {
                 std::vector<rank_shard_ref> out;
                 for (std::size_t r = 0; r < s->decision.sharded.ranks.size(); ++r)
                     out.push_back({s, r});
                 return out;
             })
        .def("__repr__", [](const cp_sharding& s) {
            return fmt::format("<Sharding {} over cp={}>", tuner::to_string(s.decision.applied),
                               s.decision.sharded.ranks.size());
        });
}

void bind_sharder(py::module_& m) {
    py::class_<sharder_handle>(m, "Sharder", R"doc(
The CP sharder of a ShardingSpec (tuner/sharding/), over the CostModel's cp ranks: the same
chunks `wlbtune shard` records for a micro-batch. The GIL is released while it shards.

    sharder = wlbtune.Sharder(config.sharding, config.cost_model())
    mine = sharder.shard(micro_batch).rank(cp_rank)
    flash_attn_varlen_func(q, k, v, mine.cu_seqlens_q, mine.cu_seqlens_k,
                           mine.max_seqlen_q, mine.max_seqlen_k, causal=True)
)doc")
        .def(
            py::init([](const tuner::sharding_spec& spec, std::shared_ptr<tuner::cost_model> cost) {
                if (!cost)
                    throw input_error("Sharder: a CostModel is required");
                return std::make_unique<sharder_handle>(spec, std::move(cost));
            }),
            py::arg("spec"), py::arg("cost"))
        .def(
            "shard",
            [](sharder_handle& h, const micro_batch_ref& mb) {
                return shard(h, mb.step->micro_batch(mb.k));
            },
            py::arg("micro_batch"), "Shards a MicroBatch of a packed Step.")
        .def(
            "shard",
            [](sharder_handle& h, const int64_arg& ids, const int64_arg& lengths) {
                const auto id_span = as_span(ids, "ids");
                const auto length_span = as_span(lengths, "lengths");
                if (id_span.size() != length_span.size())
                    throw input_error(fmt::format("shard: {} document ids but {} lengths",
                                                  id_span.size(), length_span.size()));
                runtime::micro_batch mb;
                mb.docs.reserve(id_span.size());
                for (std::size_t i = 0; i < id_span.size(); ++i)
                    mb.docs.push_back({id_span[i], length_span[i], 0});
                return shard(h, std::move(mb));
            },
            py::arg("ids"), py::arg("lengths"), R"doc(
Shards a micro-batch of documents ids[i] of lengths[i] tokens, in packing order. ValueError on
different sizes, a negative or repeated id, or a length below 1.
)doc")
        .def_property_readonly("spec", [](const sharder_handle& h) { return h.sharder->spec(); })
        .def_property_readonly("cp", [](const sharder_handle& h) { return h.cost->layout().cp(); })
        .def_property_readonly("cost", [](const sharder_handle& h) { return h.cost; })
        .def("__repr__",
             [](const sharder_handle& h) {
                 return fmt::format("<Sharder {} over cp={}>",
                                    tuner::describe_sharding(h.sharder->spec()),
                                    h.cost->layout().cp());
             })
        .def(py::pickle(
            [](const sharder_handle& h) { return py::make_tuple(h.sharder->spec(), h.cost); },
            [](const py::tuple& t) {
                if (t.size() != 2)
                    throw input_error("Sharder: a pickled sharder is (spec, cost)");
                return std::make_unique<sharder_handle>(
                    t[0].cast<tuner::sharding_spec>(),
                    t[1].cast<std::shared_ptr<tuner::cost_model>>());
            }));
}

} // namespace

void bind_sharding(py::module_& m) {
    bind_sharding_types(m);
    bind_sharder(m);
}

} // namespace wlb::python
