// Opens an HTML report page in headless Chromium and reads what the browser saw, for the browser
// test (tests/integration/test_html_report.cpp) and the page benchmark
// (tests/bench/bench_html_page.cpp).
//
// Two sources: the page's own self-check (<pre id="wlb-check">, reports/html/assets/page.js:
// errors, failed loads, loaded resources, each chart's drawn marks and draw time, when drawing
// finished), read from the DOM Chromium dumps after the load event (--dump-dom); and Chromium's
// log (--enable-logging=stderr), where every console message appears as a CONSOLE line.
// Chromium runs with a fresh profile, no network features, no GPU and no sandbox (as root).
#pragma once

#include "support/cli_runner.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace wlb::test {

/// $WLB_CHROMIUM, else chromium (Debian), chromium-browser or google-chrome on the PATH.
inline std::optional<std::string> find_chromium() {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("WLB_CHROMIUM"); env && *env)
        return std::string(env);
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
            if (!dir.empty() && fs::exists(fs::path(dir) / name))
                return (fs::path(dir) / name).string();
    return std::nullopt;
}

struct page_load {
    int exit_code = -1;
    std::optional<nlohmann::json> check; ///< the page's self-check, as the DOM held it
    std::vector<std::string> console;    ///< Chromium's CONSOLE log lines
    std::filesystem::path screenshot;    ///< empty: none taken
    double wall_seconds = 0.0;           ///< Chromium's whole run: start, load, dump, exit
};

inline std::string unescape_html(std::string s) {
    auto replace = [&](const std::string& from, const std::string& to) {
        for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
            s.replace(at, from.size(), to);
    };
    replace("&lt;", "<");
    replace("&gt;", ">");
    replace("&quot;", "\"");
    replace("&amp;", "&");
    return s;
}

/// Opens `page` at width x height; a screenshot goes to `screenshot` unless it is empty.
inline page_load open_page(const std::string& chromium, const std::filesystem::path& page,
                           const std::filesystem::path& screenshot = {}, int width = 1280,
                           int height = 2400) {
    namespace fs = std::filesystem;
    temp_dir profile; // a fresh user data dir for each run
    const auto dom = profile / "dom.html";
    const auto log = profile / "log.txt";
    page_load r;
    r.screenshot = screenshot;
    std::string shot;
    if (!screenshot.empty()) {
        fs::create_directories(screenshot.parent_path());
        fs::remove(screenshot);
        // Virtual time lets the canvas finish painting before the picture (a resize repaints
        // over several frames); the page's own clock then runs on virtual time too, so its
        // times mean nothing in a run with a screenshot.
        shot = " --virtual-time-budget=3000 --screenshot='" + screenshot.string() + "'";
    }
    const std::string cmd =
        "DBUS_SESSION_BUS_ADDRESS=disabled: timeout 120 '" + chromium +
        "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        "--disable-background-networking --disable-component-update --disable-sync "
        "--hide-scrollbars --enable-logging=stderr --v=0 --user-data-dir='" +
        (profile / "profile").string() + "' --window-size=" + std::to_string(width) + "," +
        std::to_string(height) + shot + " --dump-dom 'file://" + fs::absolute(page).string() +
        "' >'" + dom.string() + "' 2>'" + log.string() + "' </dev/null";
    const auto start = std::chrono::steady_clock::now();
    const int status = std::system(cmd.c_str());
    r.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const auto text = read_text(dom);
    const std::string open = "<pre id=\"wlb-check\" hidden=\"\">";
    if (const auto at = text.find(open); at != std::string::npos) {
        const auto end = text.find("</pre>", at);
        auto j = nlohmann::json::parse(
            unescape_html(text.substr(at + open.size(), end - at - open.size())), nullptr, false);
        if (!j.is_discarded())
            r.check = std::move(j);
    }
    std::istringstream lines(read_text(log));
    std::string line;
    while (std::getline(lines, line))
        if (line.find(":CONSOLE") != std::string::npos)
            r.console.push_back(line);
    return r;
}

/// Everything wrong with a load; empty when the page passed: Chromium exited 0, no console
/// message, the self-check ran and saw no error or failed load, loaded nothing, finished
/// drawing, fits the window's width, every chart drew marks (no series with data drew none),
/// the charts in `charts` are among them, and the screenshot (if asked for) is not blank.
inline std::vector<std::string> problems_of(const page_load& l,
                                            const std::set<std::string>& charts) {
    namespace fs = std::filesystem;
    std::vector<std::string> out;
    if (l.exit_code != 0)
        out.push_back("chromium exited with " + std::to_string(l.exit_code));
    for (const auto& c : l.console)
        out.push_back("console: " + c);
    if (!l.check) {
        out.push_back("the page's self-check did not run (no JSON in #wlb-check)");
        return out;
    }
    const auto& k = *l.check;
    for (const auto& p : k["problems"])
        out.push_back("page: " + p.get<std::string>());
    for (const auto& res : k["resources"])
        out.push_back("loaded " + res.get<std::string>() + " (a page must load nothing)");
    if (k["ready_ms"].is_null())
        out.push_back("the page's script did not finish drawing (ready_ms null)");
    if (k["overflow_px"].get<double>() > 0)
        out.push_back("the page is " + k["overflow_px"].dump() + " px wider than the window");
    std::set<std::string> drawn;
    for (const auto& c : k["charts"]) {
        const auto id = c["id"].get<std::string>();
        if (c["marks"].get<int>() <= 0 || c["empty_series"].get<int>() > 0)
            out.push_back("chart " + id + " drew nothing: " + c.dump());
        else
            drawn.insert(id);
    }
    for (const auto& id : charts)
        if (!drawn.count(id))
            out.push_back("chart " + id + " is missing or empty");
    if (!l.screenshot.empty() && (!fs::exists(l.screenshot) || fs::file_size(l.screenshot) < 10000))
        out.push_back("no screenshot (or a blank one) at " + l.screenshot.string());
    return out;
}

} // namespace wlb::test
