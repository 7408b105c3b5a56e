// read_plan and Plan (python/src/bindings.hpp).
#include "python/src/arrays.hpp"
#include "python/src/bindings.hpp"
#include "python/src/objects.hpp"
#include "runtime/parallel/layout.hpp"
#include "tuner/plan/plan_io.hpp"

#include <fmt/format.h>
#include <pybind11/stl.h>

namespace wlb::python {
namespace {

/// A whole plan file as Python objects.
struct plan {
    std::string path;
    py::object header;   ///< dict: the header line as written
    py::list steps;      ///< Step
    py::object sharding; ///< None, or per step [replica][micro-batch] Sharding
    py::object waiting;  ///< (n, 3) int64
    int cp = 1;
};

plan read(const std::string& path) {
    tuner::plan_contents contents;
    std::vector<std::shared_ptr<packed_step>> steps;
    std::vector<std::vector<std::vector<std::shared_ptr<cp_sharding>>>> sharding;
    int cp = 1;
    {
        py::gil_scoped_release nogil;
        contents = tuner::read_plan(path);
        cp = runtime::layout::parse(contents.header.layout_spec, contents.header.layout_order).cp();
        steps.reserve(contents.steps.size());
        for (const auto& s : contents.steps)
            steps.push_back(packed_step::from(s));
        for (auto& step : contents.sharding) {
            auto& out = sharding.emplace_back();
            for (auto& replica : step) {
                auto& mbs = out.emplace_back();
                for (auto& d : replica)
                    mbs.push_back(cp_sharding::from(std::move(d)));
            }
        }
    }
    plan p;
    p.path = path;
    p.header = py::module_::import("json").attr("loads")(contents.header.raw_json);
    for (auto& s : steps)
        p.steps.append(py::cast(std::move(s)));
    p.sharding = contents.header.sharding ? py::cast(sharding) : py::none();
    p.waiting = documents_array(contents.waiting);
    p.cp = cp;
    return p;
}

} // namespace

void bind_plan(py::module_& m) {
    py::class_<plan>(m, "Plan", R"doc(
A packing plan (wlbtune.plan/1, from `wlbtune pack -o`; docs/formats.md), read whole.

  header    the header line as a dict (layout, context_tokens, model, hardware, packing, ...)
  steps     list of Step, steps 0, 1, 2, ...
  sharding  None, or when the plan records CP sharding: per step, [replica][micro-batch] of
            Sharding over the layout's cp ranks
  waiting   documents still waiting at the end, an (n, 3) int64 array [id, tokens, drawn_step]
  cp        the layout's cp
)doc")
        .def_readonly("path", &plan::path)
        .def_readonly("header", &plan::header)
        .def_readonly("steps", &plan::steps)
        .def_readonly("sharding", &plan::sharding)
        .def_readonly("waiting", &plan::waiting)
        .def_readonly("cp", &plan::cp)
        .def("__len__", [](const plan& p) { return p.steps.size(); })
        .def("__repr__", [](const plan& p) {
            return fmt::format("<Plan {}: {} steps{}>", p.path, p.steps.size(),
                               p.sharding.is_none() ? "" : ", CP sharding recorded");
        });

    m.def("read_plan", &read, py::arg("path"), R"doc(
Reads a plan file (plain or .gz). ValueError "PATH:LINE: what" on a malformed or truncated one,
as `wlbtune shard --plan PATH` reports it. The GIL is released while it reads.
)doc");
}

} // namespace wlb::python
