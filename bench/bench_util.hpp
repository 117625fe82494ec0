// SPDX-License-Identifier: Apache-2.0
/// \file
/// Small helpers the benchmarks share: emptying the page cache of a checkpoint before a cold read, and
/// running a command (the Python comparison) and reading back the JSON line it prints.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>

namespace cairn_bench {

/// Makes every file under `dir` durable, then drops its pages from the page cache (clean pages go),
/// so the next read comes from the disk.
inline void drop_cache(const std::filesystem::path& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    int const fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

/// Quotes `s` for a POSIX shell.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// Runs a shell command and returns its stdout and exit status.
inline std::pair<std::string, int> capture(const std::string& cmd) {
  std::fflush(stdout);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {"", -1};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int const st = ::pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

/// The last line of `text` that starts with `c` (e.g. the JSON line a benchmark prints last).
inline std::string last_line_starting(const std::string& text, char c) {
  std::istringstream in(text);
  std::string line, found;
  while (std::getline(in, line))
    if (!line.empty() && line.front() == c) found = line;
  return found;
}

}  // namespace cairn_bench
