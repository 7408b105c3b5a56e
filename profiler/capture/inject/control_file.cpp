#include "profiler/capture/inject/control_file.hpp"

#include "profiler/capture/inject/private_files.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

namespace wlb::profiler {
namespace {

std::string control_path(const std::string& dir) {
    return dir + "/" + std::string(control_file_name);
}

} // namespace

std::string control_text(const trigger_request& r) {
    const nlohmann::json j = {
        {"schema", control_schema}, {"id", r.id}, {"steps", r.steps}, {"seconds", r.seconds}};
    return j.dump() + "\n";
}

std::optional<trigger_request> parse_control(std::string_view text, std::string& problem) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        problem = "not a JSON object";
        return std::nullopt;
    }
    const auto schema = j.find("schema");
    if (schema == j.end() || !schema->is_string() || schema->get<std::string>() != control_schema) {
        problem = "expected \"schema\": \"" + std::string(control_schema) + "\"";
        return std::nullopt;
    }
    trigger_request r;
    const auto id = j.find("id");
    const auto steps = j.find("steps");
    const auto seconds = j.find("seconds");
    if (id == j.end() || !id->is_number_integer() || id->get<std::int64_t>() <= 0) {
        problem = "\"id\" must be an integer > 0";
        return std::nullopt;
    }
    if (steps == j.end() || !steps->is_number_integer() || steps->get<std::int64_t>() < 0) {
        problem = "\"steps\" must be an integer >= 0";
        return std::nullopt;
    }
    if (seconds == j.end() || !seconds->is_number() || !std::isfinite(seconds->get<double>()) ||
        seconds->get<double>() < 0) {
        problem = "\"seconds\" must be a number >= 0";
        return std::nullopt;
    }
    r.id = id->get<std::int64_t>();
    r.steps = steps->get<std::int64_t>();
    r.seconds = seconds->get<double>();
    return r;
}

std::optional<trigger_request> write_trigger(const std::string& dir, uid_t uid, std::int64_t steps,
                                             double seconds, std::string& problem) {
    problem = private_dir_problem(dir, uid);
    if (!problem.empty())
        return std::nullopt;
    const std::string path = control_path(dir);
    trigger_request r;
    r.id = 1;
    const auto previous = read_private_file(path, uid, 4096);
    if (!previous.problem.empty()) {
        problem = previous.problem;
        return std::nullopt;
    }
    if (previous.content) {
        std::string why;
        if (const auto p = parse_control(*previous.content, why))
            r.id = p->id + 1;
        else {
            problem = path + ": " + why + " (remove it to start over)";
            return std::nullopt;
        }
    }
    r.steps = steps;
    r.seconds = seconds;
    problem = write_private_file(path, control_text(r));
    if (!problem.empty())
        return std::nullopt;
    return r;
}

control_reader::control_reader(std::string dir, uid_t uid)
    : m_dir(std::move(dir)), m_path(control_path(m_dir)), m_uid(uid) {}

std::optional<trigger_request> control_reader::poll(std::string& problem) {
    problem.clear();
    auto report = [&](std::string p) {
        if (p != m_last_problem)
            problem = p;
        m_last_problem = std::move(p);
    };
    if (auto p = private_dir_problem(m_dir, m_uid); !p.empty()) {
        report(std::move(p));
        return std::nullopt;
    }
    const auto read = read_private_file(m_path, m_uid, 4096);
    if (!read.problem.empty()) {
        report(read.problem);
        return std::nullopt;
    }
    if (!read.content) {
        m_last_problem.clear();
        return std::nullopt;
    }
    std::string why;
    auto r = parse_control(*read.content, why);
    if (!r) {
        report(m_path + ": " + why + "; ignored");
        return std::nullopt;
    }
    m_last_problem.clear();
    r->written_ns = read.modified_ns;
    return r;
}

} // namespace wlb::profiler
