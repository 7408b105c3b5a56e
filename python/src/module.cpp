// The module's entry point and its one error translation (python/src/bindings.hpp): the
// library's input_error and usage_error become ValueError, its other errors RuntimeError, with
// the message the CLI prints after "wlbtune: error: ".
#include "base/error.hpp"
#include "python/src/bindings.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_wlbtune, m) {
    m.doc() = "wlbtune's packers, CP sharders and cost model for a training job's dataloader "
              "(docs/integration.md).";
    m.attr("__version__") = WLB_VERSION;
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p)
                std::rethrow_exception(p);
        } catch (const wlb::input_error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const wlb::usage_error& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const wlb::error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });
    wlb::python::bind_settings(m);
    wlb::python::bind_packing(m);
    wlb::python::bind_sharding(m);
    wlb::python::bind_plan(m);
}
