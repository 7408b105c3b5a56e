// Conversions between the library's values and Python's: numpy arrays that share the library's
// memory where they can (a read-only view whose base object keeps the memory alive) or own a
// moved vector otherwise (no copy either way), numpy or list arguments as spans, and JSON values
// as Python dicts and lists.
#pragma once

#include "runtime/parallel/batch.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <span>
#include <vector>

namespace wlb::python {

namespace py = pybind11;

/// An argument of int64 values: a numpy array of an integer type that casts safely to int64, or
/// a list of ints (pybind11 converts; a float array is refused with a TypeError).
using int64_arg = py::array_t<std::int64_t, py::array::c_style>;

/// The values of a one-dimensional argument; throws wlb::input_error naming `what` otherwise.
std::span<const std::int64_t> as_span(const int64_arg& a, const char* what);

/// A read-only array of `shape` over `data`, which `owner` keeps alive (no copy).
template <class T>
py::array_t<T> view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
    py::array_t<T> a(std::move(shape), data, owner);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

/// An array that takes over `values` (no copy).
template <class T>
py::array_t<T> owned(std::vector<T> values, std::vector<py::ssize_t> shape) {
    auto* held = new std::vector<T>(std::move(values));
    py::capsule owner(held, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(std::move(shape), held->data(), owner);
}

/// Documents as an (n, 3) int64 array of [id, tokens, drawn_step] rows, as a plan writes them.
py::array_t<std::int64_t> documents_array(const std::vector<runtime::document>& docs);

/// A JSON value as Python objects (dict, list, int, float, str, bool, None).
py::object to_python(const nlohmann::json& j);
/// The inverse, for the same kinds of objects (tuples as lists, numpy scalars by value); throws
/// wlb::input_error naming `where` on another kind.
nlohmann::json to_json_value(py::handle h, const std::string& where);

} // namespace wlb::python
