// SPDX-License-Identifier: Apache-2.0
// cairn_roofline: measures this machine's limits (bench/roofline.hpp), prints a table, then one JSON
// line that starts with '{' so scripts can pick it out with `grep '^{'`.
#include <algorithm>  // std::find_if
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>  // std::invalid_argument
#include <string>
#include <string_view>
#include <utility>  // std::pair

#include "roofline.hpp"

namespace {

constexpr std::string_view usage = R"(usage: cairn_roofline [options]
  --dir PATH         scratch directory for the disk test (default: the system temp directory)
  --size-mib N       scratch file size for write/read (default 512)
  --memcpy-mib N     bytes per memcpy repetition (default 256)
  --zstd-mib N       weight-like bytes per dtype for zstd (default 64)
  --chunk-kib N      zstd chunk size (default 1024)
  --block-kib N      bytes per write/read call (default 8192)
  --io-threads N     blocks in flight during write/read (default 4)
  --threads N        threads for the all-threads memcpy (default: all hardware threads)
  --reps N           timed repetitions per figure; medians are reported (default 5)
  --quick            a few MiB and 1 repetition: checks that the probe runs, measures nothing
)";

std::size_t parse_count(std::string_view flag, const char* text) {
  char* end = nullptr;
  unsigned long long const v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || text[0] == '-') {
    throw std::invalid_argument(std::string(flag) + " expects a non-negative integer, got \"" + text + "\"");
  }
  return static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  using cairn_bench::mib;
  try {
    bool quick = false;
    std::optional<std::size_t> size_mib, memcpy_mib, zstd_mib, chunk_kib, block_kib, io_threads, threads, reps;
    std::optional<std::string> dir;
    std::pair<std::string_view, std::optional<std::size_t>*> const counts[] = {
        {"--size-mib", &size_mib},   {"--memcpy-mib", &memcpy_mib},
        {"--zstd-mib", &zstd_mib},   {"--chunk-kib", &chunk_kib},
        {"--block-kib", &block_kib}, {"--io-threads", &io_threads},
        {"--threads", &threads},     {"--reps", &reps}};
    for (int i = 1; i < argc; ++i) {
      std::string_view const a = argv[i];
      auto value = [&]() -> const char* {
        if (i + 1 >= argc) throw std::invalid_argument(std::string(a) + " needs a value");
        return argv[++i];
      };
      auto count = std::find_if(std::begin(counts), std::end(counts), [&](const auto& c) { return c.first == a; });
      if (count != std::end(counts)) {
        *count->second = parse_count(a, value());
      } else if (a == "--quick") {
        quick = true;
      } else if (a == "--dir") {
        dir = value();
      } else if (a == "--help" || a == "-h") {
        std::cout << usage;
        return 0;
      } else {
        std::cerr << "cairn_roofline: unknown option \"" << a << "\"\n" << usage;
        return 2;
      }
    }

    cairn_bench::roofline_options o;
    if (quick) {  // a preset first, so explicit flags still override it
      o.memcpy_bytes = 8 * mib;
      o.io_bytes = 8 * mib;
      o.io_block_bytes = 1 * mib;
      o.zstd_bytes = 4 * mib;
      o.repetitions = 1;
    }
    if (dir) o.dir = *dir;
    if (size_mib) o.io_bytes = *size_mib * mib;
    if (memcpy_mib) o.memcpy_bytes = *memcpy_mib * mib;
    if (zstd_mib) o.zstd_bytes = *zstd_mib * mib;
    if (chunk_kib) o.zstd_chunk_bytes = *chunk_kib * 1024;
    if (block_kib) o.io_block_bytes = *block_kib * 1024;
    if (io_threads) o.io_threads = static_cast<unsigned>(*io_threads);
    if (threads) o.threads = static_cast<unsigned>(*threads);
    if (reps) o.repetitions = static_cast<int>(*reps);

    cairn_bench::roofline const r = cairn_bench::measure_roofline(o);
    cairn_bench::print_table(std::cout, r);
    // Printed last and only on success: its presence is what the smoke test checks.
    std::cout << '{' << cairn_bench::to_json_fields(r) << "}\n" << std::flush;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "cairn_roofline: " << e.what() << '\n';
    return 1;
  }
}
