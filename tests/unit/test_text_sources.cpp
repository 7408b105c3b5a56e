// Lengths from JSON, text, JSONL and CSV files: good files read back, bad values name the file
// and the line (and the column for CSV).
#include "base/error.hpp"
#include "support/cli_runner.hpp"
#include "support/idx_writer.hpp"
#include "tuner/data/document_stream.hpp"
#include "tuner/data/text_sources.hpp"

#include <gtest/gtest.h>

using wlb::input_error;
using wlb::test::temp_dir;
using wlb::test::write_bytes;
namespace tuner = wlb::tuner;

namespace {

std::vector<std::int64_t> read_all(tuner::document_source& s) {
    std::vector<std::int64_t> out;
    while (auto l = s.next())
        out.push_back(*l);
    return out;
}

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const input_error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no input_error";
    return {};
}

using opener = std::unique_ptr<tuner::document_source> (*)(const std::string&);

struct bad_case {
    std::string content;
    std::string place; // "LINE" or "LINE:column N"
    std::string what;
};

void expect_errors(opener open, const std::vector<bad_case>& cases) {
    temp_dir dir;
    const auto path = (dir / "lengths").string();
    for (const auto& c : cases) {
        SCOPED_TRACE(c.content);
        write_bytes(path, c.content);
        const auto message = error_of([&] { open(path); });
        EXPECT_NE(message.find(path + ":" + c.place), std::string::npos) << message;
        EXPECT_NE(message.find(c.what), std::string::npos) << message;
    }
}

TEST(TextSources, JsonArrayReadsBack) {
    temp_dir dir;
    const auto path = (dir / "a.json").string();
    write_bytes(path, " [1, 2,\n 300 , 4096.0, 4e3,2147483647]\n");
    auto src = tuner::open_json_lengths(path);
    EXPECT_EQ(read_all(*src), (std::vector<std::int64_t>{1, 2, 300, 4096, 4000, 2147483647}));
    write_bytes(path, "[]");
    EXPECT_TRUE(read_all(*tuner::open_json_lengths(path)).empty());
}

TEST(TextSources, JsonBadValuesNameTheLine) {
    expect_errors(&tuner::open_json_lengths,
                  {
                      {"[1,\n2,\n\"x\"]", "3", "element 2"},
                      {"[1,\n-4]", "2", "out of range [1, 2147483647]"},
                      {"[1,\n0]", "2", "out of range"},
                      {"[1,\n\n2.5]", "3", "expected an integer document length, found 2.5"},
                      {"[1,\n2147483648]", "2", "out of range"},
                      {"[1,\n99999999999999999999]", "2", "out of range"},
                      {"[1,\nnull]", "2", "found \"null\""},
                      {"[1,\n[2]]", "2", "element 1"},
                      {"[1 2]", "1", "expected ',' or ']'"},
                      {"[1,\n2", "2", "expected ',' or ']', found the end of the file"},
                      {"{\"a\": 1}", "1", "expected a JSON array"},
                      {"[1]\n x", "2", "after the array"},
                      {"[1,]", "1", "expected a document length, found ']'"},
                  });
}

TEST(TextSources, TextLinesSkipBlanksAndComments) {
    temp_dir dir;
    const auto path = (dir / "a.txt").string();
    write_bytes(path, "# lengths\n10\n\n  20  \r\n30 # trailing\n#40\n");
    EXPECT_EQ(read_all(*tuner::open_text_lengths(path)), (std::vector<std::int64_t>{10, 20, 30}));
}

TEST(TextSources, TextBadValuesNameTheLine) {
    expect_errors(&tuner::open_text_lengths, {
                                                 {"1\n2\nabc\n", "3", "found \"abc\""},
                                                 {"1\n\n0\n", "3", "out of range"},
                                                 {"1\n12 13\n", "2", "found \"12 13\""},
                                                 {"5\n-1", "2", "out of range"},
                                                 {"5\n3000000000", "2", "out of range"},
                                             });
}

TEST(TextSources, JsonlReadsTheKeyAndNamesTheLineOfAMissingOne) {
    temp_dir dir;
    const auto path = (dir / "a.jsonl").string();
    write_bytes(path,
                "{\"length\": 5, \"text\": \"hi\"}\n\n{\"length\": 7}\n{\"n\": 1, \"length\": 9}");
    EXPECT_EQ(read_all(*tuner::open_jsonl_lengths(path)), (std::vector<std::int64_t>{5, 7, 9}));
    write_bytes(path, "{\"tokens\": 5}\n{\"tokens\": 6}\n");
    EXPECT_EQ(read_all(*tuner::open_jsonl_lengths(path, "tokens")),
              (std::vector<std::int64_t>{5, 6}));
    const auto jsonl = [](const std::string& p) {
        return tuner::open_jsonl_lengths(p);
    };
    const std::vector<bad_case> cases = {
        {"{\"length\": 5}\n{\"text\": \"no length\"}\n", "2", "record has no \"length\" field"},
        {"{\"length\": 5}\n{\"length\": \"5\"}\n", "2", "found string"},
        {"{\"length\": 5}\n\n{\"length\": 0}\n", "3", "out of range"},
        {"{\"length\": 5}\n{\"length\": 1.5}\n", "2", "integer"},
        {"{\"length\": 5}\n{\"length\": 5\n", "2", "not a JSON record"},
        {"{\"length\": 5}\n[5]\n", "2", "expected a JSON object"},
    };
    temp_dir d2;
    const auto p2 = (d2 / "b.jsonl").string();
    for (const auto& c : cases) {
        SCOPED_TRACE(c.content);
        write_bytes(p2, c.content);
        const auto message = error_of([&] { jsonl(p2); });
        EXPECT_NE(message.find(p2 + ":" + c.place), std::string::npos) << message;
        EXPECT_NE(message.find(c.what), std::string::npos) << message;
    }
}

TEST(TextSources, CsvColumnByNameOrIndex) {
    temp_dir dir;
    const auto path = (dir / "a.csv").string();
    write_bytes(
        path, "id,\"title, quoted\",length\r\n1,\"a, b\",100\r\n2,\"say \"\"hi\"\"\",200\r\n\r\n");
    EXPECT_EQ(read_all(*tuner::open_csv_lengths(path)), (std::vector<std::int64_t>{100, 200}));
    EXPECT_EQ(read_all(*tuner::open_csv_lengths(path, "2")), (std::vector<std::int64_t>{100, 200}));
    EXPECT_EQ(read_all(*tuner::open_csv_lengths(path, "id")), (std::vector<std::int64_t>{1, 2}));
}

TEST(TextSources, CsvBadValuesNameTheLineAndColumn) {
    temp_dir dir;
    const auto path = (dir / "a.csv").string();
    const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases = {
        {"id,length\n1,10\n2,ten\n", {":3:column 2 (\"length\")", "found \"ten\""}},
        {"id,length\n1,10\n2\n", {":3:column 2 (\"length\")", "the row has 1 fields"}},
        {"id,length\n1,0\n", {":2:column 2", "out of range"}},
        {"id,size\n1,10\n", {":1", "the header has no column \"length\" (columns: id, size)"}},
        {"id,length\n1,\"10\n", {":2", "unterminated quoted field"}},
        {"", {"", "empty CSV file"}},
    };
    for (const auto& [content, expected] : cases) {
        SCOPED_TRACE(content);
        write_bytes(path, content);
        const auto message = error_of([&] { tuner::open_csv_lengths(path); });
        EXPECT_NE(message.find(path + expected.first), std::string::npos) << message;
        EXPECT_NE(message.find(expected.second), std::string::npos) << message;
    }
    write_bytes(path, "id,length\n1,10\n");
    const auto message = error_of([&] { tuner::open_csv_lengths(path, "5"); });
    EXPECT_NE(message.find("column index 5 is out of range"), std::string::npos) << message;
}

TEST(TextSources, BinaryOrEmptyFilesSayWhatTheyAre) {
    // Issue [hardening]: a BOM, gzip data or a NUL byte gave the raw byte as the message, and an
    // empty array ran on no documents with success.
    temp_dir dir;
    const auto path = (dir / "lengths").string();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"\xEF\xBB\xBF[1, 2]", "byte order mark"},
        {std::string("\x1f\x8b\x08\x00", 4), "gzip-compressed"},
        {std::string("[1, 2\0, 3]", 10), "NUL byte at byte 5"}};
    for (const opener open : {opener(&tuner::open_json_lengths), opener(&tuner::open_text_lengths)})
        for (const auto& [content, what] : cases) {
            SCOPED_TRACE(content);
            write_bytes(path, content);
            const auto message = error_of([&] { open(path); });
            EXPECT_NE(message.find(path), std::string::npos) << message;
            EXPECT_NE(message.find(what), std::string::npos) << message;
        }
}

TEST(TextSources, AStreamOverNoDocumentsIsAnError) {
    // An empty dataset packed 0 steps and succeeded; the source itself may be empty (the module
    // and tests build streams over what they hold), the stream refuses to start on nothing.
    temp_dir dir;
    const auto path = (dir / "a.json").string();
    write_bytes(path, "[]");
    tuner::stream_options o;
    o.context_tokens = 4096;
    tuner::document_stream stream(tuner::open_json_lengths(path), o);
    const auto message = error_of([&] { (void)stream.next(0); });
    EXPECT_NE(message.find("json:" + path + ": holds no documents"), std::string::npos) << message;
}

TEST(TextSources, MissingFileNamesThePath) {
    const auto message = error_of([] { tuner::open_json_lengths("/nonexistent/a.json"); });
    EXPECT_NE(message.find("/nonexistent/a.json: cannot open"), std::string::npos) << message;
}

} // namespace
