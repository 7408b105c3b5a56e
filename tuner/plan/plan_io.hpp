// Packing plans on disk ("wlbtune.plan/1", JSON Lines; docs/formats.md is the reference).
//
//   line 1     header: report_header() fields (schema, tool, command_line, inputs) plus
//              "layout": {"spec", "order"}, "context_tokens", "model" (runtime::model_spec JSON),
//              "hardware" (hardware_config JSON), "data" (the document stream's description),
//              "packing": {"policy", ...parameters} and, optionally, "sharding": {"policy", ...}
//              (tuner/sharding/sharding.hpp: sharding_spec, as `wlbtune pack --sharding` applied
//              it)
//   lines 2..  one per step, steps 0, 1, 2, ... in order:
//              {"step":N,"replicas":[{"micro_batches":[{"docs":[[id,tokens,drawn_step],...]}]}]}
//              with "sharding" in the header, every micro-batch also carries what was applied
//              and each CP rank's chunks (the layout's cp ranks):
//              {"docs":[...],"sharding":{"applied":"per-doc","ranks":[[[id,q_offset,q_tokens],
//              ...],...]}} (+ "threshold_tokens": N|null when hybrid was applied, "fell_back":
//              true when hybrid fell back)
//   last line  {"end":true,"steps":N,"waiting":[[id,tokens,drawn_step],...]}
//
// Sharding is an optional extension of wlbtune.plan/1: a reader that ignores it still reads
// every step. The end record makes a truncated file detectable. Files are streamed both ways: the
// writer never holds more than one step, the reader hands out one step at a time. A path ending in
// ".gz" is written gzip-compressed; the reader accepts plain or gzip files alike.
#pragma once

#include "base/provenance.hpp"
#include "runtime/model/model_spec.hpp"
#include "runtime/parallel/batch.hpp"
#include "tuner/cost/hardware.hpp"
#include "tuner/packing/packer.hpp"
#include "tuner/sharding/sharding.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wlb {
class atomic_writer;
} // namespace wlb

namespace wlb::tuner {

inline constexpr std::string_view plan_schema = "wlbtune.plan/1";

struct plan_header {
    std::vector<wlb::input_identity> inputs; ///< files the plan was made from
    std::string layout_spec = "tp=1,cp=1,pp=1,dp=1";
    std::string layout_order = "tp-cp-pp-dp";
    std::int64_t context_tokens = 0;
    runtime::model_spec model;
    hardware_config hardware;
    std::string data; ///< the document stream's description
    packing_config packing;
    /// The CP sharding applied to every micro-batch (`wlbtune pack --sharding`), over the
    /// layout's cp ranks; std::nullopt when the plan records none. With it, every step carries
    /// a shard_decision per micro-batch (plan_writer::write, plan_reader::sharding).
    std::optional<sharding_spec> sharding;
    /// The whole header line as read (reader only): for tools that want the provenance fields.
    std::string raw_json;
};

/// Writes a plan through wlb::atomic_writer: nothing appears at `path` unless finish()
/// ran; an exception or a destruction before it leaves the target untouched.
class plan_writer {
public:
    /// Writes the header line. "-" writes to standard output.
    plan_writer(const std::string& path, const plan_header& header);
    ~plan_writer();
    plan_writer(const plan_writer&) = delete;
    plan_writer& operator=(const plan_writer&) = delete;

    /// Appends one step; its number must be the count of steps written so far. `sharding`
    /// ([replica][micro-batch], over the layout's cp ranks) is required when the header carries
    /// a sharding spec and refused otherwise; every decision must hold every token once.
    void write(const runtime::global_batch& batch, const step_sharding* sharding = nullptr);
    /// Writes the end record with the documents still waiting and commits the file.
    void finish(const std::vector<runtime::document>& waiting);
    [[nodiscard]] std::int64_t steps_written() const noexcept { return m_steps; }

private:
    std::unique_ptr<wlb::atomic_writer> m_out;
    std::string m_buffer;
    std::int64_t m_steps = 0;
    bool m_sharded = false;
    int m_cp = 1;
};

/// Reads a plan line by line. Every malformed record is a wlb::input_error "FILE:LINE: what"
/// (with the JSON path inside the line where it helps); a file that ends without its end record
/// is reported as truncated. Checked: the header's schema and fields; step numbers 0, 1, 2, ...;
/// DP replicas = the layout's dp; micro-batches per replica = packing.micro_batches; every
/// document [id >= 0, tokens > 0, 0 <= drawn_step <= step]; micro-batch tokens <= the policy's
/// limit; the end record's step count; nothing after the end record. With a sharding header:
/// every micro-batch's "sharding" record, its applied layout consistent with the header's
/// policy, one chunk list per CP rank of the layout, and its chunks holding every token of the
/// micro-batch exactly once (find_sharding_error).
class plan_reader {
public:
    explicit plan_reader(const std::string& path);
    ~plan_reader();
    plan_reader(const plan_reader&) = delete;
    plan_reader& operator=(const plan_reader&) = delete;

    [[nodiscard]] const plan_header& header() const noexcept { return m_header; }
    /// The next step, or nullopt after the end record was read.
    std::optional<runtime::global_batch> next();
    /// The recorded sharding of the step next() returned last, [replica][micro-batch]; empty
    /// when the plan records none (header().sharding is std::nullopt).
    [[nodiscard]] const step_sharding& sharding() const noexcept { return m_sharding; }
    /// The layout's cp: how many ranks every recorded sharding has.
    [[nodiscard]] int cp() const noexcept { return m_cp; }
    /// Documents still waiting at the end; valid once next() returned nullopt.
    [[nodiscard]] const std::vector<runtime::document>& waiting() const;
    [[nodiscard]] const std::string& path() const noexcept { return m_path; }

private:
    bool read_line(std::string& line);
    std::string where() const;

    std::string m_path;
    void* m_gz = nullptr; // gzFile
    std::string m_buffer; // bytes read but not yet consumed
    std::size_t m_buffer_pos = 0;
    bool m_eof = false;
    std::int64_t m_line = 0;
    std::int64_t m_steps = 0;
    bool m_ended = false;
    plan_header m_header;
    int m_cp = 1;
    step_sharding m_sharding;
    std::vector<runtime::document> m_waiting;
};

/// Reads a whole plan (tests and small plans): the header, every step and what waits.
struct plan_contents {
    plan_header header;
    std::vector<runtime::global_batch> steps;
    std::vector<step_sharding> sharding; ///< one per step when the plan records it, else empty
    std::vector<runtime::document> waiting;
};
plan_contents read_plan(const std::string& path);

} // namespace wlb::tuner
