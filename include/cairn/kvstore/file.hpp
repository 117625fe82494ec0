// SPDX-License-Identifier: Apache-2.0
/// \file
/// `file_driver`: one file per key under a root directory (`a/b/c` → `<root>/a/b/c`). Writes go to a
/// temporary file that is renamed over the key, so readers never see a partial value; fsync is a
/// policy. Keys are validated before any path is formed — empty, absolute, `.`/`..` segments, empty
/// segments and NUL are rejected — so nothing is read or written outside the root.
#pragma once

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // pread, pwrite, fsync, close

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>  // std::memcpy
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/kvstore/driver.hpp>
#include <cairn/kvstore/store.hpp>

namespace cairn::kvstore {

/// When written data is forced to stable storage.
enum class fsync_policy {
  none,            ///< leave it to the OS (fast; a crash may lose recent writes)
  file,            ///< fsync each value before the rename
  file_and_directory,  ///< also fsync the directory after the rename, so the rename itself is durable
};

namespace detail {
/// Closes a file descriptor on scope exit.
class unique_fd {
 public:
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  /// Closes now and reports failure (close can report deferred write errors).
  int release_and_close() noexcept {
    int r = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

inline constexpr std::string_view temp_marker = ".__cairn_tmp.";
}  // namespace detail

/// Checks that `key` names a file strictly inside a store's root directory.
/// \throws cairn::error (errc::invalid_argument) naming the key and the rule it breaks.
inline void validate_file_key(std::string_view key) {
  auto fail = [&](std::string_view why) {
    return error(errc::invalid_argument, "key \"" + std::string(key) + "\": " + std::string(why));
  };
  if (key.empty()) throw fail("empty key");
  if (key.find('\0') != std::string_view::npos) throw fail("keys may not contain NUL");
  if (key.front() == '/') throw fail("keys may not start with '/'");
  if (key.back() == '/') throw fail("keys may not end with '/'");
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view seg = key.substr(start, end - start);
    if (seg.empty()) throw fail("keys may not contain empty segments ('//')");
    if (seg == "." || seg == "..") throw fail("keys may not contain '.' or '..' segments");
    if (seg.find(detail::temp_marker) != std::string_view::npos) throw fail("reserved for temporary files");
    start = end + 1;
  }
}

/// A directory of files as a key-value store.
/// \par Thread safety
/// All members may be called concurrently; concurrent writers of the same key race, and the last rename wins.
class file_driver final : public driver {
 public:
  /// Opens (and creates, if needed) the directory `root`.
  /// \throws cairn::error (errc::io) if it cannot be created.
  explicit file_driver(std::filesystem::path root, fsync_policy policy = fsync_policy::file)
      : root_(std::move(root)), policy_(policy) {
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    if (ec) throw error(errc::io, "create directory \"" + root_.string() + "\": " + ec.message());
  }

  const std::filesystem::path& root() const noexcept { return root_; }
  fsync_policy policy() const noexcept { return policy_; }

  read_result read(std::string_view key, byte_range range = {}) override {
    auto value = open_value(key);
    if (!value) return read_result::missing_key();
    auto [offset, length] = resolve_range(range, value->size(), "file \"" + (root_ / std::string(key)).string() + "\"");
    return {value->read(offset, length)};
  }

  /// Opens the file once; every range read is then one `pread`. Large block-aligned reads bypass the
  /// page cache (O_DIRECT), as a restore reads each byte once.
  std::shared_ptr<value_reader> open_value(std::string_view key) override {
    validate_file_key(key);
    auto path = root_ / std::string(key);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return nullptr;
      throw io_error("open \"" + path.string() + "\"", errno);
    }
    auto handle = std::make_shared<file_value>(fd, std::move(path));
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw io_error("stat \"" + handle->path.string() + "\"", errno);
    if (S_ISDIR(st.st_mode)) return nullptr;
    handle->bytes = static_cast<std::uint64_t>(st.st_size);
    return handle;
  }

  void write(std::string_view key, byte_view value) override {
    validate_file_key(key);
    const auto path = root_ / std::string(key);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) throw error(errc::io, "create directory \"" + path.parent_path().string() + "\": " + ec.message());
    const auto tmp = temp_path(path);
    detail::unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw io_error("create \"" + tmp.string() + "\"", errno);
    try {
      // A value that will be synced anyway goes to disk past the page cache: copying megabytes of
      // JSON text into fresh cache pages cost more than writing them (see write_direct).
      const std::size_t direct = policy_ != fsync_policy::none && value.size() >= direct_threshold ? write_direct(tmp, value) : 0;
      write_exact(fd.get(), value.data() + direct, value.size() - direct, direct, tmp);
      if (policy_ != fsync_policy::none && ::fsync(fd.get()) != 0) throw io_error("fsync \"" + tmp.string() + "\"", errno);
      if (fd.release_and_close() != 0) throw io_error("close \"" + tmp.string() + "\"", errno);
      if (::rename(tmp.c_str(), path.c_str()) != 0) throw io_error("rename \"" + tmp.string() + "\" to \"" + path.string() + "\"", errno);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
    if (policy_ == fsync_policy::file_and_directory) sync_directory(path.parent_path());
  }

  bool erase(std::string_view key) override {
    validate_file_key(key);
    const auto path = root_ / std::string(key);
    if (::unlink(path.c_str()) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) return false;
    throw io_error("remove \"" + path.string() + "\"", errno);
  }

  std::vector<list_entry> list(const key_range& range = {}) override {
    std::vector<list_entry> out;
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(root_, ec), end;
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) return out;
      throw error(errc::io, "list \"" + root_.string() + "\": " + ec.message());
    }
    for (; it != end; it.increment(ec)) {
      if (ec) throw error(errc::io, "list \"" + root_.string() + "\": " + ec.message());
      if (!it->is_regular_file(ec)) continue;
      std::string key = it->path().lexically_relative(root_).generic_string();
      if (key.find(detail::temp_marker) != std::string::npos) continue;  // in-flight writes are invisible
      if (!range.contains(key)) continue;
      out.push_back({std::move(key), static_cast<std::uint64_t>(it->file_size(ec))});
    }
    std::sort(out.begin(), out.end(), [](const list_entry& a, const list_entry& b) { return a.key < b.key; });
    return out;
  }

  std::string describe() const override { return "file store \"" + root_.string() + "\""; }

  /// Reads exactly `n` bytes at `offset`, retrying short reads.
  /// \throws cairn::error (errc::corrupted) if the file ends early, (errc::io) on failure.
  static void read_exact(int fd, std::byte* dst, std::size_t n, std::uint64_t offset, const std::filesystem::path& path) {
    while (n > 0) {
      ssize_t got = ::pread(fd, dst, n, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw io_error("read \"" + path.string() + "\"", errno);
      }
      if (got == 0) throw error(errc::corrupted, "read \"" + path.string() + "\": file ends " + std::to_string(n) + " bytes early");
      dst += got;
      n -= static_cast<std::size_t>(got);
      offset += static_cast<std::uint64_t>(got);
    }
  }
  /// Writes exactly `n` bytes at `offset`, retrying short writes.
  /// \throws cairn::error (errc::io) on failure.
  static void write_exact(int fd, const std::byte* src, std::size_t n, std::uint64_t offset, const std::filesystem::path& path) {
    while (n > 0) {
      ssize_t put = ::pwrite(fd, src, n, static_cast<off_t>(offset));
      if (put < 0) {
        if (errno == EINTR) continue;
        throw io_error("write \"" + path.string() + "\"", errno);
      }
      src += put;
      n -= static_cast<std::size_t>(put);
      offset += static_cast<std::uint64_t>(put);
    }
  }
  /// Makes a rename or file creation in `dir` durable.
  static void sync_directory(const std::filesystem::path& dir) {
    detail::unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) throw io_error("open directory \"" + dir.string() + "\"", errno);
    if (::fsync(fd.get()) != 0) throw io_error("fsync directory \"" + dir.string() + "\"", errno);
  }

 private:
  static constexpr std::uint64_t direct_block = 4096;
  static constexpr std::uint64_t direct_threshold = std::uint64_t{1} << 20;
  static constexpr std::size_t direct_bounce = std::size_t{4} << 20;

  // A file kept open for range reads (`open_value`).
  struct file_value final : value_reader {
    file_value(int fd_, std::filesystem::path p) : fd(fd_), path(std::move(p)) {}
    std::uint64_t size() const noexcept override { return bytes; }
    shared_bytes read(std::uint64_t offset, std::uint64_t length) override {
      if (offset > bytes || length > bytes - offset)
        resolve_range({offset, length}, bytes, "file \"" + path.string() + "\"");  // throws, naming the range
      byte_buffer buf(length);  // large allocations are page-aligned: read_into can use O_DIRECT
      read_into(offset, buf.mutable_view());
      return shared_bytes(std::move(buf));
    }
    // The whole blocks go straight to `dst` when it is block-aligned (a large host array is); the rest,
    // and everything when O_DIRECT is refused, through the page cache.
    void read_into(std::uint64_t offset, mutable_byte_view dst) override {
      const std::uint64_t length = dst.size();
      if (offset > bytes || length > bytes - offset)
        resolve_range({offset, length}, bytes, "file \"" + path.string() + "\"");  // throws, naming the range
      std::uint64_t direct = 0;
      if (length >= direct_threshold && offset % direct_block == 0 && reinterpret_cast<std::uintptr_t>(dst.data()) % direct_block == 0)
        direct = read_direct_into(path, offset, dst.first(static_cast<std::size_t>(length / direct_block * direct_block)));
      if (direct < length) read_exact(fd.get(), dst.data() + direct, static_cast<std::size_t>(length - direct), offset + direct, path);
    }
    detail::unique_fd fd;
    std::filesystem::path path;
    std::uint64_t bytes = 0;
  };

  // Reads `dst.size()` bytes (whole blocks, into block-aligned memory) at `offset` with O_DIRECT;
  // returns how many whole blocks' bytes arrived (0 when the file system refuses O_DIRECT), the caller
  // reading the rest through the page cache.
  static std::uint64_t read_direct_into(const std::filesystem::path& path, std::uint64_t offset, mutable_byte_view dst) {
    detail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    if (fd.get() < 0) return 0;
    std::uint64_t done = 0;
    while (done < dst.size()) {
      ssize_t got = ::pread(fd.get(), dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL) break;
        throw io_error("read \"" + path.string() + "\"", errno);
      }
      if (got == 0) break;  // the caller's read reports a file that ends early
      done += static_cast<std::uint64_t>(got);
      if (done % direct_block != 0) break;  // unaligned short read: the rest goes through the cache
    }
    return done / direct_block * direct_block;
  }

  // Writes the whole blocks at the start of `value` to the (new, empty) file at `path` with O_DIRECT,
  // through a page-aligned bounce buffer of at most `direct_bounce` bytes unless `value` is aligned
  // itself; returns how many bytes were written (a multiple of the block; 0 when the file system
  // refuses O_DIRECT), the caller writing the rest through the page cache.
  static std::size_t write_direct(const std::filesystem::path& path, byte_view value) {
    detail::unique_fd fd(::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
    if (fd.get() < 0) return 0;
    const std::size_t body = static_cast<std::size_t>(value.size() / direct_block * direct_block);
    const bool aligned = reinterpret_cast<std::uintptr_t>(value.data()) % direct_block == 0;
    byte_buffer bounce;
    if (!aligned) bounce.resize(std::min<std::size_t>(body, direct_bounce));  // large: page-aligned
    std::size_t done = 0;
    while (done < body) {
      const std::size_t n = aligned ? body - done : std::min(body - done, bounce.size());
      const std::byte* src = value.data() + done;
      if (!aligned) src = static_cast<const std::byte*>(std::memcpy(bounce.data(), src, n));
      ssize_t put = ::pwrite(fd.get(), src, n, static_cast<off_t>(done));
      if (put < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL) break;  // not for this file system after all: the rest goes through the cache
        throw io_error("write \"" + path.string() + "\"", errno);
      }
      done += static_cast<std::size_t>(put);
      if (done % direct_block != 0) break;  // unaligned short write: the caller rewrites the partial block
    }
    return done / direct_block * direct_block;
  }

  std::filesystem::path temp_path(const std::filesystem::path& path) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    return path.string() + std::string(detail::temp_marker) + std::to_string(rng());
  }

  std::filesystem::path root_;
  fsync_policy policy_;
};

/// Returns a store over the directory `root` (created if needed).
inline store open_file(const std::filesystem::path& root, fsync_policy policy = fsync_policy::file) {
  return store(std::make_shared<file_driver>(root, policy));
}

}  // namespace cairn::kvstore
