// Packer (tuner::online_packer), Step and MicroBatch (python/src/bindings.hpp).
#include "base/error.hpp"
#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/objects.hpp"
#include "tuner/cost/cost_model.hpp"
#include "tuner/packing/online_packer.hpp"
#include "tuner/packing/pack_run.hpp"

#include <fmt/format.h>
#include <mutex>
#include <pybind11/stl.h>

namespace wlb::python {
namespace {

using step_ptr = std::shared_ptr<packed_step>;

/// The online packer with the cost model it predicts with (shared with the Python CostModel, so
/// either may go first) and a lock for callers on several threads.
struct packer_handle {
    packer_handle(const tuner::packing_config& config, std::shared_ptr<tuner::cost_model> c)
        : cost(std::move(c)), packer(config, *cost) {}

    std::shared_ptr<tuner::cost_model> cost; // never changed: the Python class has no setter
    tuner::online_packer packer;
    std::mutex mutex;
};

std::optional<step_ptr> next_step(packer_handle& p) {
    py::gil_scoped_release nogil;
    const std::lock_guard lock(p.mutex);
    auto b = p.packer.next();
    if (!b)
        return std::nullopt;
    return packed_step::from(*b);
}

py::dict state_dict(packer_handle& p) {
    nlohmann::json j;
    {
        py::gil_scoped_release nogil;
        const std::lock_guard lock(p.mutex);
        j = tuner::to_json(p.packer.save_state());
    }
    return to_python(j);
}

void load_state_dict(packer_handle& p, const py::dict& d) {
    const auto j = to_json_value(d, "state_dict");
    py::gil_scoped_release nogil;
    const std::lock_guard lock(p.mutex);
    p.packer.load_state(tuner::online_packer_state_from_json(j, "state_dict"));
}

micro_batch_ref micro_batch_at(const step_ptr& s, int replica, int index) {
    if (replica < 0 || replica >= s->replicas || index < 0 || index >= s->micro_batches)
        throw py::index_error(fmt::format("micro-batch ({}, {}) out of range: {} replicas of {} "
                                          "micro-batches",
                                          replica, index, s->replicas, s->micro_batches));
    return {s, static_cast<std::size_t>(replica * s->micro_batches + index)};
}

void bind_step(py::module_& m) {
    py::class_<packed_step, step_ptr>(m, "Step", R"doc(
One packed training step: DP replicas, each of `micro_batches` micro-batches of documents. The
arrays are read-only int64 views of the step's memory (no copy): ids, lengths and drawn_steps of
every document, micro-batch after micro-batch (replica 0's first), and offsets: micro-batch k
(replica k // micro_batches) holds documents offsets[k]:offsets[k + 1].
)doc")
        .def_readonly("step", &packed_step::step, "The step number (0, 1, 2, ...).")
        .def_readonly("replicas", &packed_step::replicas, "DP replicas.")
        .def_readonly("micro_batches", &packed_step::micro_batches, "Micro-batches per replica.")
        .def_property_readonly("ids",
                               [](py::object self) {
                                   const auto& s = self.cast<const packed_step&>();
                                   return view(s.ids.data(), {py::ssize_t(s.ids.size())}, self);
                               })
        .def_property_readonly(
            "lengths",
            [](py::object self) {
                const auto& s = self.cast<const packed_step&>();
                return view(s.tokens.data(), {py::ssize_t(s.tokens.size())}, self);
            },
            "Tokens of each document (for plain, of each part of a document cut at a sequence "
            "boundary).")
        .def_property_readonly(
            "drawn_steps",
            [](py::object self) {
                const auto& s = self.cast<const packed_step&>();
                return view(s.drawn_steps.data(), {py::ssize_t(s.drawn_steps.size())}, self);
            },
            "The step each document was drawn in (its delay is step - drawn_step).")
        .def_property_readonly("offsets",
                               [](py::object self) {
                                   const auto& s = self.cast<const packed_step&>();
                                   return view(s.offsets.data(), {py::ssize_t(s.offsets.size())},
                                               self);
                               })
        .def_property_readonly(
            "tokens",
            [](const packed_step& s) {
                std::int64_t n = 0;
                for (const auto t : s.tokens)
                    n += t;
                return n;
            },
            "Tokens in the step.")
        .def_property_readonly(
            "documents", [](const packed_step& s) { return s.ids.size(); },
            "Documents in the step.")
        .def("micro_batch", &micro_batch_at, py::arg("replica"), py::arg("index"),
             "Micro-batch `index` of DP replica `replica`.")
        .def(
            "replica",
            [](const step_ptr& s, int replica) {
                std::vector<micro_batch_ref> out;
                for (int i = 0; i < s->micro_batches; ++i)
                    out.push_back(micro_batch_at(s, replica, i));
                return out;
            },
            py::arg("replica"), "The micro-batches of DP replica `replica`, in order.")
        .def("__repr__", [](const packed_step& s) {
            return fmt::format("<Step {}: {} replicas x {} micro-batches, {} documents>", s.step,
                               s.replicas, s.micro_batches, s.ids.size());
        });

    py::class_<micro_batch_ref>(m, "MicroBatch", R"doc(
One micro-batch of a Step: its documents in packing order, as read-only int64 views of the
step's memory (the micro-batch keeps the step alive).
)doc")
        .def_property_readonly("step", [](const micro_batch_ref& r) { return r.step->step; })
        .def_property_readonly(
            "replica",
            [](const micro_batch_ref& r) { return r.k / std::size_t(r.step->micro_batches); })
        .def_property_readonly(
            "index",
            [](const micro_batch_ref& r) { return r.k % std::size_t(r.step->micro_batches); })
        .def_property_readonly("ids",
                               [](py::object self) {
                                   const auto& r = self.cast<const micro_batch_ref&>();
                                   return view(r.step->ids.data() + r.begin(), {r.size()}, self);
                               })
        .def_property_readonly("lengths",
                               [](py::object self) {
                                   const auto& r = self.cast<const micro_batch_ref&>();
                                   return view(r.step->tokens.data() + r.begin(), {r.size()}, self);
                               })
        .def_property_readonly("drawn_steps",
                               [](py::object self) {
                                   const auto& r = self.cast<const micro_batch_ref&>();
                                   return view(r.step->drawn_steps.data() + r.begin(), {r.size()},
                                               self);
                               })
        .def_property_readonly("tokens",
                               [](const micro_batch_ref& r) {
                                   std::int64_t n = 0;
                                   for (std::int64_t i = 0; i < r.size(); ++i)
                                       n += r.step->tokens[std::size_t(r.begin() + i)];
                                   return n;
                               })
        .def("__len__", &micro_batch_ref::size)
        .def("__repr__", [](const micro_batch_ref& r) {
            return fmt::format("<MicroBatch step {} replica {} index {}: {} documents>",
                               r.step->step, r.k / std::size_t(r.step->micro_batches),
                               r.k % std::size_t(r.step->micro_batches), r.size());
        });
}

void bind_packer(py::module_& m) {
    py::class_<packer_handle>(m, "Packer", R"doc(
An online packer (tuner/packing/online_packer.hpp): feed it documents as the dataloader draws
them, take packed steps out. Fed the same documents in the same order, it emits exactly the
steps `wlbtune pack` writes for them, whatever the sizes of the feeds. A step comes out once the
documents fed decide it; after close() the packer drains what it holds.

    packer = wlbtune.Packer(config.packing, config.cost_model())
    for ids, lengths in batches_of_documents:
        packer.feed(ids, lengths)
        for step in packer:          # the steps the documents fed so far decide
            train(step)
    packer.close()
    for step in packer:              # the rest
        train(step)

state_dict() / load_state_dict() carry the step counter, the documents fed and not yet drawn and
the packer's queues across a checkpoint. The GIL is released while it packs.
)doc")
        .def(py::init(
                 [](const tuner::packing_config& config, std::shared_ptr<tuner::cost_model> cost) {
                     if (!cost)
                         throw input_error("Packer: a CostModel is required");
                     return std::make_unique<packer_handle>(config, std::move(cost));
                 }),
             py::arg("config"), py::arg("cost"))
        .def(
            "feed",
            [](packer_handle& p, const int64_arg& ids, const int64_arg& lengths) {
                const auto id_span = as_span(ids, "ids");
                const auto length_span = as_span(lengths, "lengths");
                py::gil_scoped_release nogil;
                const std::lock_guard lock(p.mutex);
                p.packer.feed(id_span, length_span);
            },
            py::arg("ids"), py::arg("lengths"), R"doc(
Appends documents in the dataloader's order: ids[i] has lengths[i] tokens (numpy integer arrays
or lists). ValueError, feeding none of them, on different sizes, a negative id, a length below 1
or above the context (the dataloader truncates or splits long documents), or after close().
)doc")
        .def(
            "close",
            [](packer_handle& p) {
                const std::lock_guard lock(p.mutex);
                p.packer.close();
            },
            "The end of the documents: later steps drain what the packer holds. Idempotent.")
        .def("next_step", &next_step, R"doc(
The next packed Step, or None: before close(), when the documents fed do not decide the step
yet (feed more); after close(), when every step is out (finished is then True).
)doc")
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__",
             [](packer_handle& p) {
                 auto s = next_step(p);
                 if (!s)
                     throw py::stop_iteration();
                 return *s;
             })
        .def_property_readonly("config",
                               [](packer_handle& p) {
                                   const std::lock_guard lock(p.mutex);
                                   return p.packer.config();
                               })
        .def_property_readonly("cost", [](packer_handle& p) { return p.cost; })
        .def_property_readonly(
            "step",
            [](packer_handle& p) {
                const std::lock_guard lock(p.mutex);
                return p.packer.next_step();
            },
            "The number the next packed step will have.")
        .def_property_readonly("closed",
                               [](packer_handle& p) {
                                   const std::lock_guard lock(p.mutex);
                                   return p.packer.closed();
                               })
        .def_property_readonly(
            "finished",
            [](packer_handle& p) {
                const std::lock_guard lock(p.mutex);
                return p.packer.finished();
            },
            "Closed, and every step was emitted.")
        .def_property_readonly(
            "fed_documents",
            [](packer_handle& p) {
                const std::lock_guard lock(p.mutex);
                return p.packer.fed_documents();
            },
            "Documents fed and not yet drawn into a step.")
        .def_property_readonly(
            "waiting",
            [](packer_handle& p) {
                const std::lock_guard lock(p.mutex);
                return documents_array(p.packer.waiting());
            },
            "Documents drawn and not yet in an emitted step (outlier queues, carried over), as "
            "an (n, 3) int64 array of [id, tokens, drawn_step] rows, in no particular order.")
        .def("state_dict", &state_dict, R"doc(
Everything the packer holds, as plain Python values (JSON-compatible, picklable): the schema
"wlbtune.packer_state/1", the packing configuration, the next step, whether it was closed, the
documents fed and not yet drawn, and the packer's queues and carried documents.
)doc")
        .def("load_state_dict", &load_state_dict, py::arg("state"), R"doc(
Restores a state_dict() of a packer of the same PackingConfig: the packer then emits exactly the
steps the saved one would have. ValueError, changing nothing, on another configuration or a
malformed state.
)doc")
        .def("__repr__",
             [](packer_handle& p) {
                 const std::lock_guard lock(p.mutex);
                 return fmt::format("<Packer {}: next step {}, {} documents fed and not drawn, {} "
                                    "waiting{}>",
                                    tuner::describe(p.packer.config()), p.packer.next_step(),
                                    p.packer.fed_documents(), p.packer.waiting().size(),
                                    p.packer.closed() ? ", closed" : "");
             })
        .def(py::pickle(
            [](packer_handle& p) {
                return py::make_tuple(p.packer.config(), p.cost, state_dict(p));
            },
            [](const py::tuple& t) {
                if (t.size() != 3)
                    throw input_error("Packer: a pickled packer is (config, cost, state)");
                auto p = std::make_unique<packer_handle>(
                    t[0].cast<tuner::packing_config>(),
                    t[1].cast<std::shared_ptr<tuner::cost_model>>());
                load_state_dict(*p, t[2].cast<py::dict>());
                return p;
            }));
}

} // namespace

void bind_packing(py::module_& m) {
    bind_step(m);
    bind_packer(m);
}

} // namespace wlb::python
