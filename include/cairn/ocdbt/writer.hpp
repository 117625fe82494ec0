// SPDX-License-Identifier: Apache-2.0
/// \file
/// `ocdbt::writer`: commits a batch of writes as a new database or a new generation of an existing
/// one. Values larger than `max_inline_value_bytes` are appended to data files `d/<32 hex>` as they
/// arrive (on a file store with `pwrite`, from any number of threads, straight from the caller's
/// buffer); small ones are kept for the leaves. `commit` writes the B+tree nodes (split by
/// `max_decoded_node_bytes` and 2^20 entries), version-tree nodes when a bucket of generations
/// fills, syncs the data files and writes `manifest.ocdbt` last, by temporary file and rename.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/kvstore/file.hpp>
#include <cairn/kvstore/store.hpp>
#include <cairn/ocdbt/format/btree.hpp>
#include <cairn/ocdbt/format/manifest.hpp>
#include <cairn/ocdbt/reader.hpp>

namespace cairn::ocdbt {

/// Options for writing a database.
struct writer_options {
  /// Configuration of a new database (an existing one keeps its own). Default: Orbax's, random uuid.
  std::optional<ocdbt::config> config;
  /// A new data file is started once the current one would pass this size (values are never split).
  std::uint64_t target_data_file_size = std::uint64_t{2} << 30;
  /// Durability of data files and the manifest.
  kvstore::fsync_policy fsync = kvstore::fsync_policy::file;
  /// Relative directory of new data files.
  std::string data_file_prefix = "d/";
  /// zstd level of the B+tree nodes this writer compresses (when the configuration says zstd); empty:
  /// the configuration's level. Readers need only the method, so the level is the writer's choice, and
  /// the configuration keeps Orbax's. Level 1 compresses nodes — keys and the same metadata texts over
  /// and over — as small as Orbax's 0 (libzstd's 3) at twice the speed: a 60 MB leaf node of 100,000
  /// arrays came to 9.29× at 1.4 GB/s against 9.28× at 0.76 GB/s.
  std::optional<int> node_zstd_level = 1;
};

namespace detail {

inline std::string random_data_file_name(std::string_view prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32));
  static const char* digits = "0123456789abcdef";
  std::string s(prefix);
  for (int i = 0; i < 2; ++i) {
    std::uint64_t v = rng();
    for (int j = 0; j < 16; ++j) s += digits[(v >> (4 * j)) & 15];
  }
  return s;
}

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

/// Appends blobs to data files; a new file is started past the target size. On a file store the
/// bytes go to disk with pwrite at a reserved offset, so many threads write at once without copies.
class data_file_sink {
 public:
  data_file_sink(kvstore::store base, const writer_options& options) : base_(std::move(base)), options_(options) {
    if (auto* fd = dynamic_cast<kvstore::file_driver*>(base_.get_driver().get()))
      root_ = fd->root() / base_.prefix();
  }
  data_file_sink(const data_file_sink&) = delete;
  data_file_sink& operator=(const data_file_sink&) = delete;
  ~data_file_sink() {
    stop_batch_writer();
    for (auto& f : files_) {
      if (f.direct_fd >= 0) ::close(f.direct_fd);
      if (f.fd >= 0) ::close(f.fd);
    }
  }

  /// Appends `bytes` and returns where they landed.
  std::pair<data_file_id, std::uint64_t> append(byte_view bytes) {
    if (!root_.empty() && bytes.size() < direct_threshold) return append_small(bytes);
    std::string name;
    std::uint64_t offset;
    int fd = -1, direct_fd = -1;
    // Large values start on a 4096-byte boundary and take whole blocks, so that when the caller's
    // buffer is page-aligned they go to disk with O_DIRECT: no page-cache copy, disk speed.
    // (TensorStore pads large buffers to 4096 bytes too; the gaps are never referenced.)
    const bool large = bytes.size() >= direct_threshold;
    {
      std::lock_guard lock(mutex_);
      const std::uint64_t need = large ? round_up(bytes.size()) + direct_block : bytes.size();
      if (files_.empty() || (files_.back().size > 0 && files_.back().size + need > options_.target_data_file_size))
        open_new_file();
      file& f = files_.back();
      name = f.name;
      offset = large ? round_up(f.size) : f.size;
      f.size = large ? offset + round_up(bytes.size()) : offset + bytes.size();
      fd = f.fd;
      direct_fd = f.direct_fd;
      if (!f.on_disk) {  // not a file store: keep the bytes until finish()
        if (f.buffer.size() < offset) {
          const std::size_t old = f.buffer.size();
          f.buffer.resize(offset);
          std::memset(f.buffer.data() + old, 0, offset - old);
        }
        f.buffer.append(bytes);
      }
    }
    if (fd >= 0) write_to_disk(fd, direct_fd, bytes, offset, root_ / name);
    return {data_file_id{"", std::move(name)}, offset};
  }

  /// Appends a value produced in pieces by `fill(out)` (at most `max_size` bytes, through
  /// `out.space()` / `out.produced(n)`). On a file store each full piece goes to disk on another thread
  /// while the next is produced, so encoding and writing overlap and only a few pieces are ever in
  /// memory. Returns where the value landed and its size. The unused rest of the region reserved for
  /// `max_size` is never written (a hole nothing references).
  template <class Fill>
  std::tuple<data_file_id, std::uint64_t, std::uint64_t> append_streamed(std::uint64_t max_size, Fill&& fill) {
    if (root_.empty()) {  // not a file store: produce the whole value, then append it
      byte_buffer whole(static_cast<std::size_t>(max_size));
      struct into_buffer {
        byte_buffer& b;
        std::size_t used = 0;
        mutable_byte_view space() {
          if (used == b.size()) throw error(errc::invalid_argument, "streamed value exceeds its announced size");
          return mutable_byte_view(b.data() + used, b.size() - used);
        }
        void produced(std::size_t n) { used += n; }
      } out{whole};
      fill(out);
      whole.resize(out.used);
      auto [file, offset] = append(whole.view());
      return {std::move(file), offset, whole.size()};
    }
    std::string name;
    std::uint64_t offset;
    int fd = -1, direct_fd = -1;
    {
      std::lock_guard lock(mutex_);
      const std::uint64_t need = round_up(max_size) + direct_block;
      if (files_.empty() || (files_.back().size > 0 && files_.back().size + need > options_.target_data_file_size))
        open_new_file();
      file& f = files_.back();
      name = f.name;
      offset = round_up(f.size);
      f.size = offset + round_up(max_size);
      fd = f.fd;
      direct_fd = f.direct_fd;
    }
    piece_writer out(direct_fd >= 0 ? direct_fd : fd, direct_fd >= 0, offset, max_size, root_ / name);
    fill(out);
    const std::uint64_t n = out.finish();
    return {data_file_id{"", std::move(name)}, offset, n};
  }

  /// Makes every data file durable (or, on other stores, writes it) before the manifest refers to it.
  void finish() {
    drain_batches();
    std::lock_guard lock(mutex_);
    for (auto& f : files_) {
      if (f.on_disk) {
        if (f.fd < 0) continue;  // already finished
        if (!f.batch.empty()) {
          // The last batch ends the file: written as it is (no padding), the fsync below follows.
          const std::uint64_t at = f.batch_at;
          const byte_buffer last = take_batch(f);
          write_to_disk(f.fd, -1, last.view(), at, root_ / f.name);
        }
        if (options_.fsync != kvstore::fsync_policy::none && ::fsync(f.fd) != 0)
          throw io_error("fsync \"" + (root_ / f.name).string() + "\"", errno);
        if (f.direct_fd >= 0) ::close(f.direct_fd);
        f.direct_fd = -1;
        if (::close(f.fd) != 0) throw io_error("close \"" + (root_ / f.name).string() + "\"", errno);
        f.fd = -1;
      } else if (!f.written) {
        kvstore::write(base_, f.name, f.buffer.view());
        f.written = true;
        f.buffer = byte_buffer();
      }
    }
    if (!root_.empty() && options_.fsync == kvstore::fsync_policy::file_and_directory && !files_.empty())
      kvstore::file_driver::sync_directory(root_ / options_.data_file_prefix);
  }

 private:
  static constexpr std::size_t direct_block = 4096;
  static constexpr std::size_t direct_threshold = std::size_t{1} << 20;
  static std::uint64_t round_up(std::uint64_t n) { return (n + direct_block - 1) / direct_block * direct_block; }
  /// Small values are gathered into batches of this size, each written with one call. Small enough
  /// that the few buffers a writer cycles through cost little to fault in (fresh pages are the
  /// slowest part of filling them), large enough that the writes stay few and sequential.
  static constexpr std::size_t batch_capacity = std::size_t{1} << 20;
  /// Full batches queued for the disk, the one being written included.
  static constexpr std::size_t max_queued = 2;
  /// Written batches' buffers kept for the next ones: one filling and `max_queued` queued are all a
  /// writer ever holds, so buffers are allocated at most three times and never freed in between (a
  /// freed one went back to the system, and its successor faulted in every page again).
  static constexpr std::size_t max_spares = max_queued;

  void write_to_disk(int fd, int direct_fd, byte_view bytes, std::uint64_t offset, const std::filesystem::path& path) {
    const bool aligned = reinterpret_cast<std::uintptr_t>(bytes.data()) % direct_block == 0;
    if (bytes.size() >= direct_threshold && direct_fd >= 0 && aligned) {
      const std::size_t body = bytes.size() / direct_block * direct_block;
      kvstore::file_driver::write_exact(direct_fd, bytes.data(), body, offset, path);
      if (body < bytes.size()) {  // the tail goes through one zero-padded aligned block
        byte_buffer tail;
        tail.reserve(byte_buffer::large_size);  // large allocations are page-aligned, as O_DIRECT needs
        tail.resize(direct_block);
        std::memset(tail.data(), 0, direct_block);
        std::memcpy(tail.data(), bytes.data() + body, bytes.size() - body);
        kvstore::file_driver::write_exact(direct_fd, tail.data(), direct_block, offset + body, path);
      }
      return;
    }
    kvstore::file_driver::write_exact(fd, bytes.data(), bytes.size(), offset, path);
    // Start writeback of large values now, so the fsync in finish() finds little left to do and
    // the page cache does not fill with dirty data.
    if (options_.fsync != kvstore::fsync_policy::none && bytes.size() >= direct_threshold)
      ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes.size()), SYNC_FILE_RANGE_WRITE);
  }

  // Pieces of one streamed value: filled by the caller, written by a few threads of its own at their
  // offsets — several writes in flight, as a disk needs to reach its rate (the roofline probe keeps
  // four). Buffers rotate: the caller fills one while the others wait for, or are at, the disk.
  class piece_writer {
   public:
    static constexpr std::size_t piece = std::size_t{8} << 20;
    static constexpr int writers = 4;
    piece_writer(int fd, bool direct, std::uint64_t offset, std::uint64_t limit, std::filesystem::path path)
        : fd_(fd), direct_(direct), offset_(offset), limit_(limit), path_(std::move(path)) {
      for (auto& b : buffers_) {
        b = byte_buffer(piece);  // large allocations are page-aligned, as O_DIRECT needs
        free_.push_back(&b);
      }
      for (auto& t : threads_) t = std::thread([this] { run(); });
    }
    piece_writer(const piece_writer&) = delete;
    piece_writer& operator=(const piece_writer&) = delete;
    ~piece_writer() {
      {
        std::lock_guard lock(m_);
        stop_ = true;
      }
      cv_.notify_all();
      for (auto& t : threads_) t.join();
    }
    mutable_byte_view space() {
      if (current_ && used_ == piece) submit();
      if (!current_) {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return !free_.empty() || failure_; });
        if (failure_) std::rethrow_exception(failure_);
        current_ = free_.back();
        free_.pop_back();
        used_ = 0;
      }
      return mutable_byte_view(current_->data() + used_, piece - used_);
    }
    void produced(std::size_t n) {
      used_ += n;
      if (submitted_ + used_ > limit_)
        throw error(errc::invalid_argument, "write \"" + path_.string() + "\": streamed value exceeds its announced " +
                                                std::to_string(limit_) + " bytes");
    }
    // Writes what is left and waits for the disk; returns the value's size.
    std::uint64_t finish() {
      if (current_ && used_ > 0) submit();
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return (queue_.empty() && busy_ == 0) || failure_; });
      if (failure_) std::rethrow_exception(failure_);
      return submitted_;
    }

   private:
    void submit() {
      std::size_t bytes = used_;
      if (direct_ && bytes % direct_block != 0) {  // the last piece: pad to whole blocks (inside the reservation)
        const std::size_t padded = round_up(bytes);
        std::memset(current_->data() + bytes, 0, padded - bytes);
        bytes = padded;
      }
      {
        std::lock_guard lock(m_);
        queue_.push_back({current_, bytes, offset_ + submitted_});
      }
      cv_.notify_all();
      submitted_ += used_;
      current_ = nullptr;
      used_ = 0;
    }
    void run() {
      std::unique_lock lock(m_);
      for (;;) {
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        const job j = queue_.front();
        queue_.pop_front();
        ++busy_;
        lock.unlock();
        std::exception_ptr failed;
        try {
          kvstore::file_driver::write_exact(fd_, j.buffer->data(), j.bytes, j.at, path_);
        } catch (...) {
          failed = std::current_exception();
        }
        lock.lock();
        --busy_;
        free_.push_back(j.buffer);
        if (failed && !failure_) failure_ = failed;
        cv_.notify_all();
      }
    }
    struct job {
      byte_buffer* buffer;
      std::size_t bytes;  // written (padded to whole blocks with O_DIRECT)
      std::uint64_t at;
    };
    int fd_;
    bool direct_;
    std::uint64_t offset_, limit_;
    std::filesystem::path path_;
    byte_buffer buffers_[writers + 2];
    std::vector<byte_buffer*> free_;
    std::deque<job> queue_;
    byte_buffer* current_ = nullptr;  // the caller's
    std::size_t used_ = 0;
    std::uint64_t submitted_ = 0;
    int busy_ = 0;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::exception_ptr failure_;
    std::thread threads_[writers];
  };

  struct file {
    std::string name;
    std::uint64_t size = 0;
    bool on_disk = false;
    int fd = -1;
    int direct_fd = -1;  // the same file opened with O_DIRECT, when the file system allows it
    byte_buffer buffer;
    bool written = false;
    byte_buffer batch;                 // small values not yet written, from offset batch_at on
    std::uint64_t batch_at = 0;
  };
  void open_new_file() {
    file f;
    f.name = random_data_file_name(options_.data_file_prefix);
    if (!root_.empty()) {
      const auto path = root_ / f.name;
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) throw error(errc::io, "create directory \"" + path.parent_path().string() + "\": " + ec.message());
      f.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (f.fd < 0) throw io_error("create \"" + path.string() + "\"", errno);
      f.on_disk = true;
      f.direct_fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);  // -1: buffered writes only
    }
    files_.push_back(std::move(f));
  }

  // A checkpoint of many small leaves makes many small values (zarr metadata, small chunks, nodes):
  // one pwrite each costs more than the bytes (a system call and page-cache work per value). They are
  // copied into a page-aligned batch that starts on a block boundary instead, and a full batch goes to
  // disk in one write (with O_DIRECT, zero-padded to a whole block; the padding is never referenced).
  std::pair<data_file_id, std::uint64_t> append_small(byte_view bytes) {
    byte_buffer full;
    std::uint64_t full_at = 0;
    std::string name;
    std::uint64_t offset;
    int fd = -1, direct_fd = -1;
    {
      std::lock_guard lock(mutex_);
      if (files_.empty() || (files_.back().size > 0 && files_.back().size + bytes.size() > options_.target_data_file_size))
        open_new_file();
      file& f = files_.back();
      // A batch ends where the file does, unless a large value was placed after it meanwhile.
      if (!f.batch.empty() && (f.batch_at + f.batch.size() != f.size || f.batch.size() + bytes.size() > batch_capacity)) {
        full_at = f.batch_at;
        full = take_batch(f);
      }
      if (f.batch.empty()) {
        f.size = round_up(f.size);
        f.batch_at = f.size;
        if (f.batch.capacity() == 0 && !spares_.empty()) {
          f.batch = std::move(spares_.back());
          spares_.pop_back();
        }
        f.batch.clear();
        f.batch.reserve(batch_capacity + direct_block);  // ≥ large_size: page-aligned
      }
      offset = f.size;
      f.batch.append(bytes);
      f.size += bytes.size();
      name = f.name;
      fd = f.fd;
      direct_fd = f.direct_fd;
    }
    if (!full.empty()) submit_batch(batch_job{std::move(full), fd, direct_fd, full_at, root_ / name});
    return {data_file_id{"", std::move(name)}, offset};
  }

  // A full batch goes to disk on a thread of its own while the next one fills, so that the caller
  // (putting a save's small arrays) does not wait for the disk. One write is in flight at a time, and
  // one more full batch may wait behind it: the writer then goes from one write straight to the next.
  // With a single slot every batch waited for two wake-ups (the caller's, to hand it over, then the
  // writer's), which on a busy machine left the disk idle between writes for as long as it wrote.
  // A third full batch waits for the slot, which bounds the memory to three batches.
  struct batch_job {
    byte_buffer buffer;
    int fd = -1, direct_fd = -1;
    std::uint64_t at = 0;
    std::filesystem::path path;
  };
  void submit_batch(batch_job job) {
    std::unique_lock lock(jobs_mutex_);
    jobs_cv_.wait(lock, [&] { return jobs_.size() < max_queued || job_failure_; });
    if (job_failure_) std::rethrow_exception(job_failure_);
    if (!job_thread_.joinable()) {
      try {
        job_thread_ = std::thread([this] { write_batches(); });
      } catch (const std::system_error&) {  // no thread to spare: write it here
        lock.unlock();
        write_and_keep(job);
        return;
      }
    }
    jobs_.push_back(std::move(job));
    jobs_cv_.notify_all();
  }
  void write_batches() {
    std::unique_lock lock(jobs_mutex_);
    for (;;) {
      // This is the only thread that takes jobs, and a job stays at the front while it is written
      // (counted by submit_batch; a deque's push_back leaves it in place).
      jobs_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping with nothing queued
      batch_job& job = jobs_.front();
      const bool skip = job_failure_ != nullptr;  // the save has failed: its later batches are moot
      lock.unlock();
      std::exception_ptr failed;
      try {
        if (!skip) write_and_keep(job);
      } catch (...) {
        failed = std::current_exception();
      }
      lock.lock();
      jobs_.pop_front();
      if (failed && !job_failure_) job_failure_ = failed;
      jobs_cv_.notify_all();
    }
  }
  void write_and_keep(batch_job& job) {
    write_batch(job.fd, job.direct_fd, job.buffer, job.at, job.path);
    // A later batch reuses this one's memory: a fresh buffer faults in every page again.
    std::lock_guard lock(mutex_);
    if (spares_.size() < max_spares) spares_.push_back(std::move(job.buffer));
  }
  // Waits for the batches queued and in flight; rethrows the first failure of a batch write.
  void drain_batches() {
    std::unique_lock lock(jobs_mutex_);
    jobs_cv_.wait(lock, [&] { return jobs_.empty() || job_failure_; });
    if (job_failure_) std::rethrow_exception(job_failure_);
  }
  void stop_batch_writer() noexcept {
    {
      std::lock_guard lock(jobs_mutex_);
      stop_ = true;
    }
    jobs_cv_.notify_all();
    if (job_thread_.joinable()) job_thread_.join();
  }

  // Detaches `f`'s batch; later values start on the next block boundary, past the batch's padding.
  byte_buffer take_batch(file& f) {
    byte_buffer b = std::move(f.batch);
    f.batch = byte_buffer();
    f.size = round_up(f.size);
    return b;
  }

  void write_batch(int fd, int direct_fd, byte_buffer& batch, std::uint64_t at, const std::filesystem::path& path) {
    const std::size_t n = batch.size();
    if (direct_fd >= 0 && reinterpret_cast<std::uintptr_t>(batch.data()) % direct_block == 0) {
      const std::size_t padded = static_cast<std::size_t>(round_up(n));
      batch.resize(padded);
      std::memset(batch.data() + n, 0, padded - n);
      kvstore::file_driver::write_exact(direct_fd, batch.data(), padded, at, path);
      return;
    }
    write_to_disk(fd, -1, batch.view(), at, path);
  }

  kvstore::store base_;
  const writer_options& options_;
  std::filesystem::path root_;  // empty unless the store is a file store
  std::mutex mutex_;
  std::vector<file> files_;
  std::vector<byte_buffer> spares_;  // written batches' buffers, for the next batches
  std::mutex jobs_mutex_;
  std::condition_variable jobs_cv_;
  std::deque<batch_job> jobs_;  // full batches: the front one being written by job_thread_, the rest waiting
  bool stop_ = false;
  std::exception_ptr job_failure_;
  std::thread job_thread_;  // joined first thing in the destructor, before the files close
};

}  // namespace detail

/// Builds the next generation of an OCDBT database.
/// \par Thread safety
/// `put`, `put_reference` and `erase` may be called concurrently; `commit` must not overlap them.
class writer {
 public:
  /// Prepares a new generation of the database under `base` (created if it has no manifest).
  /// \throws cairn::error (errc::corrupted) if an existing manifest does not decode.
  explicit writer(kvstore::store base, writer_options options = {})
      : base_(std::move(base)), options_(std::move(options)) {
    if (!kvstore::read(base_, "manifest.ocdbt").missing()) {
      existing_.emplace(base_);
      config_ = existing_->config();
    } else {
      config_ = options_.config.value_or(config::orbax_default());
    }
    files_.reserve(64);
  }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  const ocdbt::config& config() const noexcept { return config_; }

  /// Adds or replaces `key`. Values above the inline limit are written to a data file now.
  /// \throws cairn::error (errc::invalid_argument) for a key longer than 65535 bytes; (errc::io).
  void put(std::string_view key, byte_view value) {
    if (value.size() <= config_.max_inline_value_bytes) return put_inline(key, shared_bytes::copy_of(value));
    check_key(key);
    auto [file, offset] = sink().append(value);
    put_reference(key, std::move(file), offset, value.size());
  }

  /// As `put`, taking the bytes over: a value within the inline limit is kept as it is, not copied.
  void put(std::string_view key, byte_buffer&& value) {
    if (value.size() > config_.max_inline_value_bytes) return put(key, value.view());
    put_inline(key, shared_bytes(std::move(value)));
  }
  /// As `put`, sharing `value`: one text put under many keys (the zarr metadata of a model's
  /// same-shaped arrays) is held once in memory and stored once. The first key holds it inline; when
  /// the same `shared_bytes` (same bytes, same length) is put again, it is written to a data file once
  /// and every later key refers to that copy, so the leaves carry a reference of a few bytes per key
  /// instead of the text (100,000 arrays' metadata made a 60 MB leaf node to compress). Two threads
  /// putting one value for its second time at once may both write it; the copy that loses is never
  /// referred to.
  void put(std::string_view key, shared_bytes value) {
    if (value.size() > config_.max_inline_value_bytes) return put(key, value.view());
    if (value.size() < min_shared_reference_bytes) return put_inline(key, std::move(value));
    check_key(key);
    std::unique_lock lock(mutex_);
    const std::pair<const std::byte*, std::size_t> id{value.data(), value.size()};
    const auto it = shared_.find(id);
    if (it == shared_.end()) {
      shared_.emplace(id, shared_value{value, std::nullopt});
      pending_.push_back({std::string(key), pending_entry{std::move(value)}});
      return;
    }
    shared_value& held = it->second;  // stays put while other keys are added (nodes survive a rehash)
    if (!held.ref) {
      lock.unlock();
      auto [file, offset] = sink().append(held.bytes.view());
      lock.lock();
      if (!held.ref) held.ref = out_of_line{intern(std::move(file)), offset, held.bytes.size()};
    }
    pending_.push_back({std::string(key), pending_entry{*held.ref}});
  }
  /// Shared values shorter than this stay inline under every key: a reference costs about as much.
  static constexpr std::size_t min_shared_reference_bytes = 32;

  /// Adds `key` with a value produced in pieces by `fill(out)` — at most `max_size` bytes, written
  /// through `out.space()` / `out.produced(n)` — so that a large value is written while it is encoded.
  /// \throws as `put`; whatever `fill` throws (the key is then not added).
  template <class Fill>
  void put_streamed(std::string_view key, std::uint64_t max_size, Fill&& fill) {
    check_key(key);
    // A value that came out small stays out of line: readers follow any reference, whatever its size.
    auto [file, offset, length] = sink().append_streamed(max_size, std::forward<Fill>(fill));
    put_reference(key, std::move(file), offset, length);
  }

  /// Adds `key` as a reference to bytes that already exist in a data file (paths relative to this
  /// database's directory, e.g. `{"ocdbt.process_0/", "d/…"}`) — how a merged root shares children's data.
  void put_reference(std::string_view key, data_file_id file, std::uint64_t offset, std::uint64_t length) {
    check_key(key);
    std::lock_guard lock(mutex_);
    pending_.push_back({std::string(key), pending_entry{out_of_line{intern(std::move(file)), offset, length}}});
  }

  /// Removes `key` from the new generation (a no-op if absent).
  void erase(std::string_view key) {
    std::lock_guard lock(mutex_);
    pending_.push_back({std::string(key), pending_entry{erased{}}});
  }

  /// Writes the nodes and the manifest; returns the committed version.
  /// \throws cairn::error (errc::io) on I/O failure; the previous generation stays intact then.
  version commit() {
    std::lock_guard lock(mutex_);
    // 1. The full key set of the new generation: this batch, plus whatever of the previous one it
    //    does not replace or erase (erased keys stay as markers until the leaves are written).
    //    Puts are appended in call order, so a stable sort by key puts the last put of a key last.
    std::vector<pending_put> entries = std::move(pending_);
    pending_.clear();
    shared_.clear();  // a later generation stores its values anew
    const auto by_key = [](const pending_put& a, const pending_put& b) { return a.key < b.key; };
    if (!std::is_sorted(entries.begin(), entries.end(), by_key)) std::stable_sort(entries.begin(), entries.end(), by_key);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i + 1 < entries.size() && entries[i + 1].key == entries[i].key) continue;  // replaced by a later put
      if (kept != i) entries[kept] = std::move(entries[i]);
      ++kept;
    }
    entries.resize(kept);
    if (existing_) {
      const std::size_t fresh = entries.size();
      existing_->for_each({}, [&](value_location&& l) {
        const auto at = std::lower_bound(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(fresh), l.key,
                                         [](const pending_put& e, const std::string& k) { return e.key < k; });
        if (at != entries.begin() + static_cast<std::ptrdiff_t>(fresh) && at->key == l.key) return;
        pending_entry e = l.is_inline ? pending_entry{l.inline_value}
                                      : pending_entry{out_of_line{intern(std::move(l.file)), l.offset, l.size}};
        entries.push_back({std::move(l.key), std::move(e)});
      });
      const auto mid = entries.begin() + static_cast<std::ptrdiff_t>(fresh);
      if (!std::is_sorted(mid, entries.end(), by_key)) std::sort(mid, entries.end(), by_key);
      std::inplace_merge(entries.begin(), mid, entries.end(), by_key);
    }
    std::erase_if(entries, [](const pending_put& e) { return std::holds_alternative<erased>(e.entry.value); });

    // 2. Leaves, then interior levels, until one root remains.
    version v;
    v.generation = existing_ ? existing_->latest().generation + 1 : 1;
    v.commit_time_ns = std::max(detail::now_ns(), existing_ ? existing_->latest().commit_time_ns + 1 : 0);
    if (entries.empty()) {
      v.root = location::missing();
    } else {
      std::vector<child> level = write_leaves(entries);
      entries.clear();
      int height = 0;
      while (level.size() > 1) level = write_interior(level, ++height);
      v.root_height = static_cast<std::uint8_t>(height);
      v.root = level[0].loc;
      v.stats = level[0].stats;
    }

    // 3. Version tree: older generations move into version-tree nodes when the inline bucket is full.
    manifest m;
    m.config = config_;
    std::vector<data_file_id> files;
    auto file_index = [&](const data_file_id& id) {
      auto it = std::find(files.begin(), files.end(), id);
      if (it != files.end()) return static_cast<std::uint64_t>(it - files.begin());
      files.push_back(id);
      return static_cast<std::uint64_t>(files.size() - 1);
    };
    if (!v.root.is_missing()) v.root.file = file_index(root_file_);
    if (existing_) update_version_tree(existing_->manifest(), v, m, files, file_index);
    else m.versions.push_back(v);
    m.files = std::move(files);

    // 4. Data first, manifest last: the manifest is the commit point of the database.
    if (sink_) sink_->finish();
    if (config_.kind == manifest_kind::numbered) {
      manifest single = m;
      single.config.kind = manifest_kind::single;
      kvstore::write(base_, numbered_manifest_name(v.generation), encode_manifest(single).view());
      if (!existing_) {
        manifest config_only;
        config_only.config = config_;
        kvstore::write(base_, "manifest.ocdbt", encode_manifest(config_only).view());
      }
    } else {
      kvstore::write(base_, "manifest.ocdbt", encode_manifest(m).view());
    }
    sink_.reset();
    return v;
  }

 private:
  struct out_of_line {
    std::size_t file;  // index into files_
    std::uint64_t offset;
    std::uint64_t length;
  };
  struct erased {};
  struct pending_entry {
    std::variant<shared_bytes, out_of_line, erased> value;
  };
  // One put, erase or reference, in call order until `commit` sorts them (a map of two keys per
  // leaf was a large part of saving trees of many small leaves).
  struct pending_put {
    std::string key;
    pending_entry entry;
  };
  // A value put as one `shared_bytes` (held, so its address names it until commit) and, once it has
  // been put twice, its copy in a data file.
  struct shared_value {
    shared_bytes bytes;
    std::optional<out_of_line> ref;
  };
  struct child {
    std::string first_key;
    data_file_id file;
    location loc;
    btree_stats stats;
  };

  // An inline value that is not shared with other keys.
  void put_inline(std::string_view key, shared_bytes value) {
    check_key(key);
    std::lock_guard lock(mutex_);
    pending_.push_back({std::string(key), pending_entry{std::move(value)}});
  }

  static void check_key(std::string_view key) {
    if (key.size() > max_key_length)
      throw error(errc::invalid_argument, "OCDBT key of " + std::to_string(key.size()) + " bytes exceeds 65535");
  }

  std::size_t intern(data_file_id id) {
    auto it = file_index_.find(id);
    if (it != file_index_.end()) return it->second;
    files_.push_back(id);
    file_index_.emplace(std::move(id), files_.size() - 1);
    return files_.size() - 1;
  }

  detail::data_file_sink& sink() {
    std::call_once(sink_once_, [&] { sink_ = std::make_unique<detail::data_file_sink>(base_, options_); });
    return *sink_;
  }

  // Estimated decoded size of a leaf entry, as TensorStore estimates it for node splitting.
  std::size_t leaf_cost(const std::string& key, const pending_entry& e) const {
    if (auto* v = std::get_if<shared_bytes>(&e.value)) return 16 + key.size() + v->size();
    return 16 + key.size() + 16 + files_[std::get<out_of_line>(e.value).file].path().size();
  }

  ocdbt::compression node_compression() const {
    ocdbt::compression c = config_.compression;
    if (c.kind == ocdbt::compression::method::zstd && options_.node_zstd_level) c.level = *options_.node_zstd_level;
    return c;
  }

  child write_node(btree_node& node, std::string first_key, btree_stats stats) {
    auto bytes = encode_btree_node(node, node_compression());
    auto [file, offset] = sink().append(bytes.view());
    stats.num_tree_bytes += bytes.size();
    root_file_ = file;
    return child{std::move(first_key), std::move(file), location{0, offset, bytes.size()}, stats};
  }

  std::vector<child> write_leaves(std::vector<pending_put>& entries) {
    std::vector<child> out;
    btree_node node;
    std::map<std::size_t, std::size_t> node_files;  // files_ index → node.files index
    btree_stats stats;
    std::size_t size = 0;
    auto flush = [&] {
      if (node.leaves.empty()) return;
      std::string first = node.leaves.front().key;
      out.push_back(write_node(node, std::move(first), stats));
      node = btree_node{};
      node_files.clear();
      stats = {};
      size = 0;
    };
    for (std::size_t i = 0; i < entries.size(); ++i) {
      auto& [key, e] = entries[i];
      const std::size_t cost = leaf_cost(key, e);
      if (!node.leaves.empty() && (size + cost > config_.max_decoded_node_bytes || node.leaves.size() >= max_node_entries))
        flush();
      // A node takes at most the entries left (memory they already hold as puts): no regrowth.
      if (node.leaves.empty()) node.leaves.reserve(std::min(entries.size() - i, max_node_entries));
      leaf_entry le;
      le.key = std::move(key);
      if (auto* v = std::get_if<shared_bytes>(&e.value)) {
        le.value = std::move(*v);
      } else {
        const auto& o = std::get<out_of_line>(e.value);
        auto [it, fresh] = node_files.try_emplace(o.file, node.files.size());
        if (fresh) node.files.push_back(files_[o.file]);
        le.is_inline = false;
        le.ref = location{it->second, o.offset, o.length};
        stats.num_indirect_value_bytes += o.length;
      }
      node.leaves.push_back(std::move(le));
      ++stats.num_keys;
      size += cost;
    }
    flush();
    return out;
  }

  std::vector<child> write_interior(const std::vector<child>& children, int height) {
    std::vector<child> out;
    btree_node node;
    node.height = static_cast<std::uint8_t>(height);
    btree_stats stats;
    std::size_t size = 0;
    auto flush = [&] {
      if (node.children.empty()) return;
      std::string first = node.children.front().key;
      out.push_back(write_node(node, std::move(first), stats));
      node = btree_node{};
      node.height = static_cast<std::uint8_t>(height);
      stats = {};
      size = 0;
    };
    for (const auto& c : children) {
      const std::size_t cost = 16 + c.first_key.size() + 16 + c.file.path().size() + 24;
      if (!node.children.empty() && (size + cost > config_.max_decoded_node_bytes || node.children.size() >= max_node_entries))
        flush();
      auto it = std::find(node.files.begin(), node.files.end(), c.file);
      const std::uint64_t fi = static_cast<std::uint64_t>(it - node.files.begin());
      if (it == node.files.end()) node.files.push_back(c.file);
      node.children.push_back({c.first_key, 0, location{fi, c.loc.offset, c.loc.length}, c.stats});
      stats += c.stats;
      size += cost;
    }
    flush();
    return out;
  }

  // Mirrors TensorStore's manifest update: when the new generation leaves the inline bucket, the old
  // inline versions become a height-0 version node and the per-height nodes are extended or created.
  template <class FileIndex>
  void update_version_tree(const manifest& old, version v, manifest& m, std::vector<data_file_id>&,
                           FileIndex&& file_index) {
    const unsigned log2 = old.config.version_tree_arity_log2;
    const std::uint64_t old_first = old.versions.front().generation;
    auto remap = [&](location loc, const std::vector<data_file_id>& table) {
      if (!loc.is_missing()) loc.file = file_index(table.at(loc.file));
      return loc;
    };
    if (((v.generation - 1) >> log2) == ((old_first - 1) >> log2)) {
      for (auto ov : old.versions) {
        ov.root = remap(ov.root, old.files);
        m.versions.push_back(ov);
      }
      m.versions.push_back(v);
      for (auto n : old.version_nodes) {
        n.node = remap(n.node, old.files);
        m.version_nodes.push_back(n);
      }
      return;
    }
    // The full bucket becomes a height-0 version node.
    version_tree_node leaf;
    leaf.version_tree_arity_log2 = static_cast<std::uint8_t>(log2);
    leaf.height = 0;
    leaf.files = old.files;
    leaf.versions = old.versions;
    struct ref {
      version_node_ref r;
      data_file_id file;
    };
    auto write_version_node = [&](const version_tree_node& n) {
      auto bytes = encode_version_tree_node(n, config_.compression);
      auto [file, offset] = sink().append(bytes.view());
      return std::pair<data_file_id, location>{file, location{0, offset, bytes.size()}};
    };
    ref height0;
    {
      auto [file, loc] = write_version_node(leaf);
      height0.file = file;
      height0.r = {old.versions.back().generation, loc, old.versions.size(), old.versions.front().commit_time_ns, 0};
    }
    std::vector<std::pair<std::optional<ref>, std::optional<ref>>> plan;  // (existing node, new child)
    std::size_t remaining = old.version_nodes.size();
    std::optional<ref> prev_child = height0;
    for (const auto& range : version_node_ranges(v.generation, static_cast<std::uint8_t>(log2))) {
      std::optional<ref> old_node;
      if (remaining > 0 && old.version_nodes[remaining - 1].height == range.height) {
        const auto& n = old.version_nodes[--remaining];
        old_node = ref{n, old.files.at(n.node.file)};
      }
      auto within = [&](const std::optional<ref>& x) {
        return x && x->r.generation >= range.min_generation && x->r.generation <= range.max_generation;
      };
      const bool keep_old = within(old_node), add_child = within(prev_child);
      if (keep_old || add_child)
        plan.emplace_back(keep_old ? old_node : std::nullopt, add_child ? prev_child : std::nullopt);
      prev_child = old_node;
    }
    std::reverse(plan.begin(), plan.end());
    for (auto& [existing, fresh] : plan) {
      ref out;
      if (!existing) {
        version_tree_node node;
        node.version_tree_arity_log2 = static_cast<std::uint8_t>(log2);
        node.height = static_cast<std::uint8_t>(fresh->r.height + 1);
        node.files = {fresh->file};
        version_node_ref c = fresh->r;
        c.node.file = 0;
        node.children = {c};
        auto [file, loc] = write_version_node(node);
        out.file = file;
        out.r = {fresh->r.generation, loc, fresh->r.num_generations, fresh->r.commit_time_ns, node.height};
      } else if (!fresh) {
        out = *existing;
      } else {
        auto bytes = kvstore::read_required(base_, existing->file.path(), {existing->r.node.offset, existing->r.node.length});
        auto node = decode_version_tree_node(bytes.view(), existing->file.base_path, static_cast<std::uint8_t>(log2),
                                             "OCDBT version node \"" + existing->file.path() + "\"");
        for (auto& f : node.files) f.base_path.erase(0, existing->file.base_path.size());
        version_node_ref c = fresh->r;
        auto it = std::find(node.files.begin(), node.files.end(), fresh->file);
        c.node.file = static_cast<std::uint64_t>(it - node.files.begin());
        if (it == node.files.end()) node.files.push_back(fresh->file);
        node.children.push_back(c);
        auto [file, loc] = write_version_node(node);
        out.file = file;
        out.r = {fresh->r.generation, loc, existing->r.num_generations + fresh->r.num_generations,
                 existing->r.commit_time_ns, existing->r.height};
      }
      out.r.node.file = file_index(out.file);
      m.version_nodes.push_back(out.r);
    }
    m.versions.push_back(v);
  }

  kvstore::store base_;
  writer_options options_;
  ocdbt::config config_;
  std::optional<reader> existing_;
  std::mutex mutex_;
  std::vector<pending_put> pending_;
  struct shared_key_hash {
    std::size_t operator()(const std::pair<const std::byte*, std::size_t>& k) const noexcept {
      return std::hash<const std::byte*>{}(k.first) ^ (k.second * 0x9E3779B97F4A7C15ull);
    }
  };
  std::unordered_map<std::pair<const std::byte*, std::size_t>, shared_value, shared_key_hash> shared_;
  std::vector<data_file_id> files_;
  std::map<data_file_id, std::size_t> file_index_;
  std::once_flag sink_once_;
  std::unique_ptr<detail::data_file_sink> sink_;
  data_file_id root_file_;
};

/// Writes a root database under `root` that holds every key of the child databases in the
/// subdirectories `children` (e.g. "ocdbt.process_0/"): inline values are copied, out-of-line values
/// are referenced in the children's data files through base paths (orbax-format.md §3.10).
/// `on_key` sees every merged key (e.g. to check that a multi-process save wrote every chunk).
/// \throws cairn::error (errc::not_found) if a child has no manifest; (errc::invalid_argument) if two
///         children hold the same key.
inline version merge(kvstore::store root, const std::vector<std::string>& children, writer_options options = {},
                     const std::function<void(std::string_view key)>& on_key = {}) {
  writer w(root, std::move(options));
  std::map<std::string, std::string> owner;
  for (const auto& dir : children) {
    std::string base = dir;
    if (!base.empty() && base.back() != '/') base += '/';
    reader child(root / base, "\"" + base + "\"");
    child.for_each({}, [&](value_location&& l) {
      if (auto [it, fresh] = owner.emplace(l.key, base); !fresh)
        throw error(errc::invalid_argument, "merge: key \"" + l.key + "\" is in both \"" + it->second + "\" and \"" + base + "\"");
      if (on_key) on_key(l.key);
      if (l.is_inline) w.put(l.key, l.inline_value.view());
      else w.put_reference(l.key, data_file_id{base + l.file.base_path, l.file.relative_path}, l.offset, l.size);
    });
  }
  return w.commit();
}

}  // namespace cairn::ocdbt
