// SPDX-License-Identifier: Apache-2.0
// `cairn ls ROOT`: the committed steps of a checkpoint root with their commit time, items, bytes and
// metrics, marking the latest and the best.
#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/checkpoint_metadata.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/json/writer.hpp>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "cli.hpp"

namespace fs = std::filesystem;

namespace cairn_cli {
namespace {

std::string human_bytes(std::uintmax_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string utc(std::int64_t ns) {
  const std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

int ls(const std::vector<std::string_view>& argv) {
  auto args = parse_args(argv, {"--best", "--mode", "--prefix"}, {});
  if (args.positional.size() != 1)
    throw usage_error{"usage: cairn ls ROOT [--best METRIC] [--mode min|max] [--prefix step]"};
  const fs::path root(args.positional[0]);
  if (!fs::is_directory(root)) throw cairn::error(cairn::errc::not_found, "\"" + root.string() + "\" is not a directory");
  cairn::step_naming naming;
  if (auto p = args.get("--prefix")) naming.prefix = std::string(*p);
  // Keras's default monitor when none is given.
  const std::string metric = args.has("--best") ? std::string(*args.get("--best")) : "val_loss";
  const std::string mode = args.has("--mode") ? std::string(*args.get("--mode")) : (metric.find("loss") != std::string::npos ? "min" : "max");
  if (mode != "min" && mode != "max") throw usage_error{"--mode must be min or max"};

  struct row {
    std::int64_t step;
    std::string time, items, bytes, metrics;
    std::optional<double> score;
  };
  std::vector<row> rows;
  for (const auto& s : cairn::list_steps(root, naming)) {
    row r{s.step, "-", "", "", "{}", std::nullopt};
    std::uintmax_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(s.path))
      if (e.is_regular_file()) bytes += e.file_size();
    r.bytes = human_bytes(bytes);
    for (const auto& it : cairn::list_items(s.path))
      if (it.present) r.items += (r.items.empty() ? "" : ",") + it.name;
    try {
      const auto m = cairn::parse_checkpoint_metadata(cairn::detail::read_text_file(s.path / "_CHECKPOINT_METADATA", "step"), "step");
      if (auto t = m.commit_timestamp_nsecs ? m.commit_timestamp_nsecs : m.init_timestamp_nsecs) r.time = utc(*t);
      r.metrics = cairn::json::to_string(m.metrics, {.sort_keys = true, .spaced = true});
      if (const auto* v = m.metrics.is_object() ? m.metrics.find(metric) : nullptr; v && v->is_number()) r.score = v->as_double();
    } catch (const cairn::error& e) {
      r.metrics = std::string("(unreadable _CHECKPOINT_METADATA: ") + e.what() + ")";
    }
    rows.push_back(std::move(r));
  }
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (rows[i].score && (!best || (mode == "min" ? *rows[i].score <= *rows[*best].score : *rows[i].score >= *rows[*best].score)))
      best = i;
  std::printf("%8s  %-19s  %-24s  %10s  %s\n", "step", "committed (UTC)", "items", "bytes", "metrics");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::string marks;
    if (i + 1 == rows.size()) marks += " latest";
    if (best && *best == i) marks += " best(" + metric + ")";
    std::printf("%8lld  %-19s  %-24s  %10s  %s%s\n", static_cast<long long>(rows[i].step), rows[i].time.c_str(), rows[i].items.c_str(),
                rows[i].bytes.c_str(), rows[i].metrics.c_str(), marks.c_str());
  }
  const auto tmp = cairn::list_tmp_dirs(root);
  if (!tmp.empty()) std::printf("(%zu uncommitted temporary entries, not listed)\n", tmp.size());
  return 0;
}

}  // namespace

std::vector<command> ls_commands() {
  return {{"ls", "ls ROOT [--best METRIC] [--mode min|max] [--prefix P]",
           "committed steps: commit time, items, bytes, metrics; marks latest and best (default metric val_loss)", ls}};
}

}  // namespace cairn_cli
