// The wlbtune command that wrote a trace (its manifest or Perfetto export records it), read so
// that analyze can print a change as a command that runs as printed: the same job with one
// option changed, or `wlbtune tune` on the same documents, model and layout. Output options
// (--trace-dir, --trace, --json, -o) are left out of the commands made from it, so that running
// them never overwrites the trace under analysis.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wlb::reports {

class job_command {
public:
    /// argv as recorded (argv[0] "wlbtune"); empty, or not a `wlbtune simulate` / `run`: a
    /// command that tells nothing (empty()).
    static job_command parse(const std::vector<std::string>& argv);

    [[nodiscard]] bool empty() const noexcept { return m_sub.empty(); }
    [[nodiscard]] const std::string& subcommand() const noexcept { return m_sub; }
    /// The value of the option under any of `names` (the last one given).
    [[nodiscard]] std::optional<std::string>
    value(std::initializer_list<std::string_view> names) const;
    [[nodiscard]] bool has(std::initializer_list<std::string_view> names) const;
    /// The packing and sharding policies the job ran with (the option, else the command's
    /// default); nullopt when a batch file or a tuned config fixed them.
    [[nodiscard]] std::optional<std::string> packing() const;
    [[nodiscard]] std::optional<std::string> sharding() const;

    /// The same job as `wlbtune simulate` (a `run` translated: the options simulate takes),
    /// with `option` set to `value`, shell-quoted. Predicts without running. "" when the job
    /// applied a tuned config (simulate --config takes no packing, sharding or partition).
    [[nodiscard]] std::string simulate_with(std::string_view option, std::string_view value) const;
    /// `wlbtune tune` on the job's documents, model and layout, shell-quoted; "" when the job
    /// read no documents (--batch, --config).
    [[nodiscard]] std::string tune() const;

private:
    struct option {
        std::string name;  ///< as given ("-p" or "--packing")
        std::string value; ///< empty for a flag
        bool flag = false;
    };
    std::string m_sub;
    std::vector<option> m_options;
};

/// `s` quoted for a POSIX shell when it needs to be.
std::string shell_quote(std::string_view s);

} // namespace wlb::reports
