#include "reports/job_command.hpp"

#include <algorithm>
#include <array>
#include <map>

namespace wlb::reports {
namespace {

// Flags (no value) of simulate and run.
constexpr std::array<std::string_view, 3> flags = {"--compare", "--no-overlap-grad-reduce",
                                                   "--progress"};

// The long name of an option, for the short names simulate and run share.
std::string_view long_name(std::string_view n) {
    static const std::map<std::string_view, std::string_view> alias = {
        {"-p", "--packing"}, {"-s", "--sharding"}, {"-l", "--layout"}, {"-m", "--model"},
        {"-d", "--data"},    {"-c", "--context"},  {"-n", "--steps"},  {"-o", "--output"}};
    auto it = alias.find(n);
    return it != alias.end() ? it->second : n;
}

// What simulate takes of a job's options (run's are translated to these names).
constexpr std::array<std::string_view, 17> simulate_options = {
    "--data",    "--context",       "--context-policy", "--shuffle",
    "--model",   "--hardware",      "--layout",         "--order",
    "--packing", "--queues",        "--thresholds",     "--smax",
    "--window",  "--micro-batches", "--sharding",       "--hybrid-threshold",
    "--schedule"};

// What tune takes: the documents, the model and the layout.
constexpr std::array<std::string_view, 8> tune_options = {
    "--data",  "--context",  "--context-policy", "--shuffle",
    "--model", "--hardware", "--layout",         "--order"};

template <std::size_t N>
bool listed(const std::array<std::string_view, N>& list, std::string_view n) {
    return std::find(list.begin(), list.end(), n) != list.end();
}

} // namespace

std::string shell_quote(std::string_view s) {
    const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
               c == '/' || c == ',' || c == '=' || c == ':' || c == '+' || c == '@';
    });
    if (plain)
        return std::string(s);
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    out += '\'';
    return out;
}

job_command job_command::parse(const std::vector<std::string>& argv) {
    job_command out;
    if (argv.size() < 2 || (argv[1] != "simulate" && argv[1] != "run"))
        return out;
    out.m_sub = argv[1];
    for (std::size_t i = 2; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.size() < 2 || a[0] != '-')
            continue; // not an option
        option o;
        if (const auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
            o.name = a.substr(0, eq);
            o.value = a.substr(eq + 1);
        } else if (listed(flags, a)) {
            o.name = a;
            o.flag = true;
        } else {
            o.name = a;
            if (i + 1 < argv.size())
                o.value = argv[++i];
        }
        o.name = std::string(long_name(o.name));
        out.m_options.push_back(std::move(o));
    }
    return out;
}

std::optional<std::string> job_command::value(std::initializer_list<std::string_view> names) const {
    std::optional<std::string> v;
    for (const auto& o : m_options)
        for (auto n : names)
            if (o.name == long_name(n))
                v = o.value;
    return v;
}

bool job_command::has(std::initializer_list<std::string_view> names) const {
    for (const auto& o : m_options)
        for (auto n : names)
            if (o.name == long_name(n))
                return true;
    return false;
}

std::optional<std::string> job_command::packing() const {
    if (empty() || has({"--batch", "--config"}))
        return std::nullopt;
    return value({"--packing"}).value_or("wlb"); // the default of simulate and run
}

std::optional<std::string> job_command::sharding() const {
    if (empty() || has({"--batch", "--config"}))
        return std::nullopt;
    return value({"--sharding"}).value_or("adaptive");
}

std::string job_command::simulate_with(std::string_view name, std::string_view v) const {
    if (empty() || has({"--config"}))
        return {};
    std::string out = "wlbtune simulate";
    auto word = [&](std::string_view w) {
        out += ' ';
        out += w;
    };
    bool set = false;
    for (const auto& o : m_options) {
        const bool keep = m_sub == "simulate"
                              ? !listed(std::array<std::string_view, 4>{"--trace-dir", "--trace",
                                                                        "--json", "--output"},
                                        o.name)
                              : listed(simulate_options, o.name) || o.name == "--steps";
        if (!keep)
            continue;
        if (o.name == name) {
            if (!set) {
                word(name);
                word(shell_quote(v));
            }
            set = true;
            continue;
        }
        word(o.name);
        if (!o.flag)
            word(shell_quote(o.value));
    }
    if (!set) {
        word(name);
        word(shell_quote(v));
    }
    return out;
}

std::string job_command::tune() const {
    if (empty() || has({"--batch", "--config"}))
        return {};
    std::string out = "wlbtune tune";
    for (const auto& o : m_options)
        if (listed(tune_options, o.name)) {
            out += ' ';
            out += o.name;
            out += ' ';
            out += shell_quote(o.value);
        }
    return out;
}

} // namespace wlb::reports
