// Nsight Systems SQLite exports (`nsys export --type sqlite`), written here with sqlite3 in the
// schema docs/formats.md documents (the tables and columns of Nsight Systems 2024.6, export
// schema 3.16): kernels with their names and streams, memory copies, CUDA runtime launches, NVTX
// ranges and marks; the rank from the file name or an NVTX payload; steps and passes from NVTX
// ranges; a file that is not an export is refused with its name.
#include "base/error.hpp"
#include "profiler/analysis/analysis.hpp"
#include "support/cli_runner.hpp"

#include <fmt/format.h>
#include <fstream>
#include <gtest/gtest.h>
#include <sqlite3.h>

namespace wlb::profiler {
namespace {

namespace fs = std::filesystem;
using wlb::test::temp_dir;

// An export being written: the documented tables, filled by the test.
class nsys_export {
public:
    explicit nsys_export(const fs::path& path) {
        fs::remove(path);
        EXPECT_EQ(sqlite3_open(path.string().c_str(), &m_db), SQLITE_OK);
        exec(R"(
CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE TARGET_INFO_SESSION_START_TIME (utcEpochNs INTEGER, utcTime TEXT, localTime TEXT);
CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL,
  deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL, greenContextId INTEGER,
  streamId INTEGER NOT NULL, correlationId INTEGER, globalPid INTEGER,
  demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL, mangledName INTEGER,
  launchType INTEGER, cacheConfig INTEGER, registersPerThread INTEGER NOT NULL,
  gridX INTEGER NOT NULL, gridY INTEGER NOT NULL, gridZ INTEGER NOT NULL,
  blockX INTEGER NOT NULL, blockY INTEGER NOT NULL, blockZ INTEGER NOT NULL,
  staticSharedMemory INTEGER NOT NULL, dynamicSharedMemory INTEGER NOT NULL,
  localMemoryPerThread INTEGER NOT NULL, localMemoryTotal INTEGER NOT NULL,
  gridId INTEGER NOT NULL, sharedMemoryExecuted INTEGER, graphNodeId INTEGER,
  sharedMemoryLimitConfig INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL,
  deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL, greenContextId INTEGER,
  streamId INTEGER NOT NULL, correlationId INTEGER, globalPid INTEGER, bytes INTEGER NOT NULL,
  copyKind INTEGER NOT NULL, deprecatedSrcId INTEGER, srcKind INTEGER, dstKind INTEGER,
  srcDeviceId INTEGER, srcContextId INTEGER, dstDeviceId INTEGER, dstContextId INTEGER,
  migrationCause INTEGER, graphNodeId INTEGER, virtualAddress INTEGER);
CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL,
  eventClass INTEGER NOT NULL, globalTid INTEGER, correlationId INTEGER,
  nameId INTEGER NOT NULL, returnValue INTEGER NOT NULL, callchainId INTEGER);
CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL,
  rangeId INTEGER, category INTEGER, color INTEGER, text TEXT, globalTid INTEGER,
  endGlobalTid INTEGER, textId INTEGER, domainId INTEGER, uint64Value INTEGER,
  int64Value INTEGER, doubleValue REAL, uint32Value INTEGER, int32Value INTEGER,
  floatValue REAL, jsonTextId INTEGER, jsonText TEXT, binaryData TEXT);
)");
        exec("INSERT INTO StringIds VALUES (1, 'cudaLaunchKernel')");
        exec("BEGIN");
    }
    ~nsys_export() { close(); }
    nsys_export(const nsys_export&) = delete;
    nsys_export& operator=(const nsys_export&) = delete;

    void close() {
        if (!m_db)
            return;
        exec("COMMIT");
        sqlite3_close(m_db);
        m_db = nullptr;
    }
    void session_start(std::int64_t epoch_ns) {
        exec(fmt::format("INSERT INTO TARGET_INFO_SESSION_START_TIME VALUES ({}, '', '')",
                         epoch_ns));
    }
    // A kernel launched 5 us before it runs (on CPU thread 100).
    void kernel(const std::string& name, int stream, std::int64_t start, std::int64_t end) {
        const std::int64_t id = string_id(name);
        const std::int64_t corr = ++m_corr;
        exec(fmt::format("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, contextId, "
                         "streamId, correlationId, globalPid, demangledName, shortName, "
                         "registersPerThread, gridX, gridY, gridZ, blockX, blockY, blockZ, "
                         "staticSharedMemory, dynamicSharedMemory, localMemoryPerThread, "
                         "localMemoryTotal, gridId) VALUES ({}, {}, 0, 1, {}, {}, 7, {}, {}, 32, "
                         "1, 1, 1, 128, 1, 1, 0, 0, 0, 0, {})",
                         start, end, stream, corr, id, id, corr));
        launch(corr, start - 5'000);
    }
    void memcpy(int stream, std::int64_t start, std::int64_t end, std::int64_t bytes) {
        const std::int64_t corr = ++m_corr;
        exec(fmt::format("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY (start, end, deviceId, contextId, "
                         "streamId, correlationId, bytes, copyKind) VALUES ({}, {}, 0, 1, {}, {}, "
                         "{}, 8)",
                         start, end, stream, corr, bytes));
        launch(corr, start - 5'000);
    }
    // A push/pop range (eventType 59), its text in StringIds when `registered`.
    void range(const std::string& text, std::int64_t start, std::int64_t end,
               bool registered = false) {
        if (registered)
            exec(fmt::format("INSERT INTO NVTX_EVENTS (start, end, eventType, textId, globalTid) "
                             "VALUES ({}, {}, 59, {}, 100)",
                             start, end, string_id(text)));
        else
            exec(fmt::format("INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid) "
                             "VALUES ({}, {}, 59, '{}', 100)",
                             start, end, text));
    }
    // A mark (eventType 34) "rank" with an int64 payload.
    void rank_mark(std::int64_t rank) {
        exec(fmt::format("INSERT INTO NVTX_EVENTS (start, end, eventType, text, int64Value, "
                         "globalTid) VALUES (0, NULL, 34, 'rank', {}, 100)",
                         rank));
    }

private:
    void exec(const std::string& sql) {
        char* err = nullptr;
        EXPECT_EQ(sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
            << (err ? err : "") << "\n"
            << sql;
        sqlite3_free(err);
    }
    void launch(std::int64_t corr, std::int64_t at) {
        exec(fmt::format("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES ({}, {}, 1, 100, {}, 1, "
                         "0, NULL)",
                         at, at + 3'000, corr));
    }
    std::int64_t string_id(const std::string& s) {
        auto it = m_ids.find(s);
        if (it != m_ids.end())
            return it->second;
        const std::int64_t id = static_cast<std::int64_t>(m_ids.size()) + 10;
        exec(fmt::format("INSERT INTO StringIds VALUES ({}, '{}')", id, s));
        m_ids.emplace(s, id);
        return id;
    }

    sqlite3* m_db = nullptr;
    std::int64_t m_corr = 0;
    std::map<std::string, std::int64_t> m_ids;
};

constexpr const char* gemm = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n";
constexpr const char* flash = "void flash_fwd_kernel<Flash_fwd_kernel_traits<128>>";
constexpr const char* allreduce = "ncclDevKernel_AllReduce_Sum_bf16_RING_LL";

// One rank of a dp=2 job: per step, per micro-batch a forward (GEMM + FlashAttention) and a
// backward (two GEMMs) inside Megatron-named NVTX ranges (the second micro-batch's with
// registered strings), then a device copy and an all-reduce; `slow` scales its GEMMs.
void write_rank(nsys_export& f, int steps, double slow) {
    auto d = [&](std::int64_t ns) {
        return static_cast<std::int64_t>(std::llround(ns * slow));
    };
    std::int64_t t = 1'000'000;
    for (int s = 0; s < steps; ++s) {
        const std::int64_t step_start = t - 20'000;
        for (int m = 0; m < 2; ++m) // 1F1B with one stage: forward then backward
            for (int pass = 0; pass < 2; ++pass) {
                const std::int64_t begin = t - 10'000;
                if (pass == 0) {
                    f.kernel(gemm, 7, t, t + d(400'000));
                    t += d(400'000) + 10'000;
                    f.kernel(flash, 7, t, t + 300'000);
                    t += 300'000 + 10'000;
                } else {
                    f.kernel(gemm, 7, t, t + d(500'000));
                    t += d(500'000) + 10'000;
                    f.kernel(gemm, 7, t, t + d(300'000));
                    t += d(300'000) + 10'000;
                }
                f.range(pass == 0 ? "forward-compute" : "backward-compute", begin, t - 5'000,
                        m == 1);
            }
        f.memcpy(7, t, t + 50'000, 1 << 20);
        f.kernel(allreduce, 20, t + 20'000, t + 220'000);
        t += 300'000;
        f.range(fmt::format("ProfilerStep#{}", s), step_start, t);
        t += 100'000;
    }
}

TEST(NsysIngest, RanksFromFileNamesAndNvtxPayloadsKernelsCopiesAndSteps) {
    temp_dir dir;
    {
        nsys_export r0(dir / "trace_rank_0.sqlite");
        r0.session_start(1'700'000'000'000'000'000);
        write_rank(r0, 2, 1.0);
    }
    {
        // Named by host; the rank comes from an NVTX mark's payload. Its session started 3 ms
        // later.
        nsys_export r1(dir / "node-b.sqlite");
        r1.session_start(1'700'000'000'003'000'000);
        r1.rank_mark(1);
        write_rank(r1, 2, 1.3);
    }
    ingest_options o;
    o.job_layout = runtime::layout::parse("dp=2");
    analysis_options a;
    a.ingest = o;
    const auto r = analyze({dir.path().string()}, a);
    const auto& job = r.job;
    EXPECT_EQ(job.format, "nsys");
    ASSERT_EQ(job.ranks.size(), 2u);
    EXPECT_NE(job.ranks[0].file.find("trace_rank_0"), std::string::npos);
    EXPECT_NE(job.ranks[1].file.find("node-b"), std::string::npos);
    EXPECT_EQ(job.steps, (std::vector<std::int64_t>{0, 1}));
    ASSERT_EQ(r.breakdown.size(), 2u);
    for (const auto& rb : r.breakdown[0].ranks) {
        const double slow = rb.rank == 1 ? 1.3 : 1.0;
        EXPECT_NEAR(rb.attention_s, 2 * 300e-6, 1e-9);
        EXPECT_NEAR(rb.linear_s, 2 * (400e-6 + 500e-6 + 300e-6) * slow, 1e-8);
        EXPECT_NEAR(rb.memory_s, 50e-6, 1e-9);
        EXPECT_NEAR(rb.comm[static_cast<std::size_t>(runtime::lane::dp)].total_s, 200e-6, 1e-9);
    }
    // The session start times put the two files on one clock: rank 1 started 3 ms later (no
    // collective is matched across an export's ranks, so the clocks stay as recorded).
    EXPECT_EQ(job.ranks[1].summaries[0].first_ns - job.ranks[0].summaries[0].first_ns, 3'000'000);
    // Passes from the NVTX ranges (plain and registered text): the what-if names the slow
    // worker, compared across the DP replicas on the same micro-batches.
    ASSERT_EQ(r.attribution.attributed_steps, 2) << r.attribution.steps[0].skipped_reason;
    ASSERT_TRUE(r.attribution.dominant.has_value());
    EXPECT_EQ(*r.attribution.dominant, cause::slow_worker);
    EXPECT_EQ(r.attribution.steps[0].causes[static_cast<int>(cause::slow_worker)].involved[0].rank,
              1);
    bool said = false;
    for (const auto& w : job.warnings)
        said = said || w.message.find("names no communicator") != std::string::npos;
    EXPECT_TRUE(said) << "NCCL kernels of an export are not matched across ranks, and it says so";
}

TEST(NsysIngest, NotAnExportIsRefusedWithItsName) {
    temp_dir dir;
    const auto other = dir / "other.sqlite";
    {
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open(other.string().c_str(), &db), SQLITE_OK);
        sqlite3_exec(db, "CREATE TABLE t (x INTEGER)", nullptr, nullptr, nullptr);
        sqlite3_close(db);
    }
    try {
        (void)ingest({other.string()}, {});
        ADD_FAILURE() << "accepted an SQLite file that is not an Nsight export";
    } catch (const input_error& e) {
        EXPECT_NE(std::string(e.what()).find("other.sqlite"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("not an Nsight Systems export"), std::string::npos)
            << e.what();
    }
    // A file cut short after its header.
    const auto cut = dir / "cut.sqlite";
    std::ofstream(cut, std::ios::binary)
        << std::string("SQLite format 3\0", 16) << std::string(200, '\x7f');
    EXPECT_THROW((void)ingest({cut.string()}, {}), input_error);
}

} // namespace
} // namespace wlb::profiler
