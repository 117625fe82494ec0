// SPDX-License-Identifier: Apache-2.0
/// \file
/// Small helpers the benchmarks share: emptying the page cache of a checkpoint before a cold read,
/// measuring a phase's peak memory in a forked child, finding the interop venv's Python, and running a
/// command (the Python comparison) and reading back the JSON line it prints.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <system_error>
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

// ---- memory of a phase, measured in a forked child ------------------------------------------------

/// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  return -1;
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0). Without it the child's VmHWM still starts at its
/// RSS at fork time (the kernel sets a new mm's high-water mark to its RSS), a close second.
bool reset_hwm() {
  int const fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool const ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

/// What a child reports through its pipe: plain data only.
struct phase_report {
  int ok = 0;
  double seconds = 0;
  long rss_before_kib = 0;
  long hwm_kib = 0;
  int hwm_reset = 0;
  std::uint64_t verified = 0;  // arrays compared with the originals
  std::uint64_t exact = 0;     // … of which bit-exact
  char error[1024] = {};
};

struct phase_result : phase_report {
  double extra_mib(std::size_t subtract_bytes = 0) const {
    return static_cast<double>(hwm_kib - rss_before_kib) / 1024.0 - static_cast<double>(subtract_bytes) / (1024.0 * 1024.0);
  }
};

/// Brackets one phase inside the child: RSS before, high-water mark reset, timing, high-water mark after.
template <class F>
void measured(phase_report& r, F&& body) {
  r.rss_before_kib = status_kib("VmRSS");
  r.hwm_reset = reset_hwm() ? 1 : 0;
  auto const t0 = std::chrono::steady_clock::now();
  body();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.hwm_kib = status_kib("VmHWM");
}

/// Runs `fn(report)` in a forked child and returns what it reported. The child shares the parent's
/// memory copy-on-write; it never returns (it ends with _exit), so nothing it allocates reaches us.
phase_result run_in_child(const std::function<void(phase_report&)>& fn) {
  std::cout.flush();
  std::fflush(stdout);
  int fds[2];
  if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  pid_t const pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    ::close(fds[0]);
    phase_report r;
    try {
      fn(r);
      r.ok = 1;
    } catch (const std::exception& e) {
      std::snprintf(r.error, sizeof r.error, "%s", e.what());
    }
    const char* p = reinterpret_cast<const char*>(&r);
    std::size_t left = sizeof r;
    while (left > 0) {
      ssize_t const n = ::write(fds[1], p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  phase_result out;
  char* p = reinterpret_cast<char*>(static_cast<phase_report*>(&out));
  std::size_t got = 0;
  while (got < sizeof(phase_report)) {
    ssize_t const n = ::read(fds[0], p + got, sizeof(phase_report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got != sizeof(phase_report)) {
    out = phase_result{};
    if (WIFSIGNALED(status))
      std::snprintf(out.error, sizeof out.error, "child killed by signal %d%s", WTERMSIG(status),
                    WTERMSIG(status) == SIGKILL ? " (out of memory?)" : "");
    else
      std::snprintf(out.error, sizeof out.error, "child exited with status %d without a report", WEXITSTATUS(status));
  }
  return out;
}

// ---- the Python comparison ------------------------------------------------------------------------

/// The interop venv's Python (scripts/interop-env.sh under `src`), or `py` when given; empty with
/// `why_not` set when there is none.
inline std::string interop_python(const std::filesystem::path& src, std::string py, std::string& why_not) {
  if (!py.empty()) return py;
  std::filesystem::path const env = src / "scripts" / "interop-env.sh";
  if (src.empty() || !std::filesystem::exists(env)) {
    why_not = "scripts/interop-env.sh not found";
    return {};
  }
  auto [out, rc] = capture("bash " + quote(env.string()) + " 2>/dev/null");
  std::string line;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) line = l;
  if (rc != 0 || line.empty() || !std::filesystem::exists(line)) {
    why_not = "the interop venv is unavailable (scripts/interop-env.sh exited " + std::to_string(rc) + ")";
    return {};
  }
  return line;
}

/// What a Python comparison script printed.
struct script_run {
  std::string json_line;  ///< its last line starting with '{'; empty when it did not run or failed
  std::string why_not;    ///< why there is no result
};

/// Runs `bench/<script> --dir <work>/py <args>` (args already quoted) with the interop venv's Python, or
/// `py` when given; `src` is the source tree. The scratch directory is removed afterwards; stderr goes
/// to a log whose tail is quoted in `why_not` on failure.
inline script_run run_python_script(const std::filesystem::path& src, const std::string& script, const std::filesystem::path& work,
                                    const std::string& args, std::string py) {
  script_run r;
  const std::filesystem::path file = src / "bench" / script;
  if (src.empty() || !std::filesystem::exists(file)) {
    r.why_not = "bench/" + script + " not found (built outside the source tree)";
    return r;
  }
  py = interop_python(src, py, r.why_not);
  if (py.empty()) return r;
  const std::filesystem::path log = work.string() + "_python.log";
  auto [out, rc] = capture(quote(py) + " -W ignore " + quote(file.string()) + " --dir " + quote((work / "py").string()) + " " + args +
                           " 2>" + quote(log.string()));
  std::filesystem::remove_all(work / "py");
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::error_code ec;
  std::filesystem::remove(log, ec);
  r.json_line = last_line_starting(out, '{');
  if (rc != 0 || r.json_line.empty()) {
    r.json_line.clear();
    r.why_not = "bench/" + script + " exited " + std::to_string(rc) + "; its stderr ends with:\n" +
                (text.size() > 2000 ? text.substr(text.size() - 2000) : text);
  }
  return r;
}

}  // namespace cairn_bench
