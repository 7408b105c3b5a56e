#include "python/src/arrays.hpp"

#include "base/error.hpp"

#include <fmt/format.h>

namespace wlb::python {

std::span<const std::int64_t> as_span(const int64_arg& a, const char* what) {
    if (a.ndim() != 1)
        throw input_error(fmt::format("{}: expected a one-dimensional array, found {} dimensions",
                                      what, a.ndim()));
    return {a.data(), static_cast<std::size_t>(a.size())};
}

py::array_t<std::int64_t> documents_array(const std::vector<runtime::document>& docs) {
    static_assert(sizeof(runtime::document) == 3 * sizeof(std::int64_t));
    std::vector<std::int64_t> rows;
    rows.reserve(docs.size() * 3);
    for (const auto& d : docs)
        rows.insert(rows.end(), {d.id, d.tokens, d.drawn_step});
    return owned(std::move(rows), {static_cast<py::ssize_t>(docs.size()), 3});
}

py::object to_python(const nlohmann::json& j) {
    switch (j.type()) {
    case nlohmann::json::value_t::null:
        return py::none();
    case nlohmann::json::value_t::boolean:
        return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
        return py::int_(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned:
        return py::int_(j.get<std::uint64_t>());
    case nlohmann::json::value_t::number_float:
        return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
        return py::str(j.get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
        py::list out(j.size());
        for (std::size_t i = 0; i < j.size(); ++i)
            out[i] = to_python(j[i]);
        return out;
    }
    case nlohmann::json::value_t::object: {
        py::dict out;
        for (auto it = j.begin(); it != j.end(); ++it)
            out[py::str(it.key())] = to_python(it.value());
        return out;
    }
    default:
        return py::none(); // binary and discarded values: not produced by the library
    }
}

nlohmann::json to_json_value(py::handle h, const std::string& where) {
    if (h.is_none())
        return nullptr;
    if (py::isinstance<py::bool_>(h))
        return h.cast<bool>();
    if (py::isinstance<py::int_>(h))
        return h.cast<std::int64_t>();
    if (py::isinstance<py::float_>(h))
        return h.cast<double>();
    if (py::isinstance<py::str>(h))
        return h.cast<std::string>();
    if (py::isinstance<py::dict>(h)) {
        auto out = nlohmann::json::object();
        for (const auto& [key, value] : h.cast<py::dict>()) {
            if (!py::isinstance<py::str>(key))
                throw input_error(fmt::format("{}: keys must be strings, found {}", where,
                                              std::string(py::repr(key))));
            const auto k = key.cast<std::string>();
            out[k] = to_json_value(value, where + "." + k);
        }
        return out;
    }
    if (py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h)) {
        auto out = nlohmann::json::array();
        std::size_t i = 0;
        for (const auto& item : h)
            out.push_back(to_json_value(item, fmt::format("{}[{}]", where, i++)));
        return out;
    }
    if (py::isinstance<py::array>(h)) // a numpy array or scalar: its values
        return to_json_value(h.attr("tolist")(), where);
    if (py::hasattr(h, "__index__")) { // numpy integer scalars
        auto value = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
        if (!value)
            throw py::error_already_set();
        return value.cast<std::int64_t>();
    }
    throw input_error(fmt::format("{}: cannot hold a {}", where,
                                  std::string(py::str(py::type::of(h).attr("__name__")))));
}

} // namespace wlb::python
