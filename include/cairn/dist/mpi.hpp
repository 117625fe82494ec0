// SPDX-License-Identifier: Apache-2.0
/// \file
/// The MPI coordinator (target `cairn::mpi`): cairn's collectives over a user-supplied communicator.
/// The only header that includes `mpi.h`.
///
/// Collectives are built from non-blocking point-to-point messages polled against a deadline, not from
/// `MPI_Barrier`/`MPI_Bcast`: a blocking MPI collective waits forever for a process that died, while
/// cairn must report which rank did not arrive within the timeout. Each collective of a channel uses
/// the next tag, so a message left over from a failed operation never satisfies a later one. Run jobs
/// that must survive a dead rank with `mpirun --enable-recovery` (Open MPI aborts the job otherwise).
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/dist/coordinator.hpp>

namespace cairn {

namespace detail {
inline void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw error(errc::io, std::string("MPI ") + what + ": " + std::string(text, static_cast<std::size_t>(len)));
}
}  // namespace detail

/// Initialises MPI for this process's lifetime scope (`MPI_THREAD_MULTIPLE`, so that a manager's
/// background saves and the caller's thread may use their own channels at once) and finalises it.
/// \throws cairn::error (errc::unsupported) if the MPI library cannot provide `MPI_THREAD_MULTIPLE`.
class mpi_session {
 public:
  mpi_session(int& argc, char**& argv) {
    int provided = 0;
    detail::check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_MULTIPLE) {
      MPI_Finalize();
      throw error(errc::unsupported, "MPI provides thread level " + std::to_string(provided) + ", cairn needs MPI_THREAD_MULTIPLE");
    }
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;
  ~mpi_session() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};

/// A `coordinator` over an MPI communicator: rank and size of `comm`, rank 0 is the primary.
/// \pre MPI is initialised (with `MPI_THREAD_MULTIPLE` if channels are used from several threads) and
///      outlives this object; `comm` outlives it unless it came from `duplicate()`.
/// \par Thread safety
/// One thread at a time per channel; copies share their channel.
class mpi_coordinator {
 public:
  /// Uses `comm` (not owned).
  explicit mpi_coordinator(MPI_Comm comm = MPI_COMM_WORLD) : channel_(std::make_shared<channel>(comm, false)) {}

  int process_index() const noexcept { return channel_->rank; }
  int process_count() const noexcept { return channel_->size; }

  void barrier(collective op, collective_timeout t) { detail::barrier_by_agreement(*this, op, t); }

  std::string broadcast(collective op, std::string msg, collective_timeout t) {
    const int tag = channel_->next_tag();
    if (channel_->rank == 0) {
      const std::string framed = detail::frame_message(op, msg);
      for (int r = 1; r < channel_->size; ++r) channel_->send(r, tag, framed);
      channel_->finish_sends(std::chrono::steady_clock::now() + t);
      return msg;
    }
    auto got = channel_->receive(0, tag, std::chrono::steady_clock::now() + t);
    if (!got) throw detail::timeout_error(op, {0}, t, channel_->rank, channel_->size);
    return detail::unframe_message(op, *got, 0, channel_->rank);
  }

  std::vector<std::string> gather(collective op, std::string msg, collective_timeout t) {
    const int tag = channel_->next_tag();
    if (channel_->rank != 0) {
      channel_->send(0, tag, detail::frame_message(op, msg));
      channel_->finish_sends(std::chrono::steady_clock::now() + t);
      return {};
    }
    std::vector<std::string> out(static_cast<std::size_t>(channel_->size));
    std::vector<bool> have(out.size(), false);
    out[0] = std::move(msg);
    have[0] = true;
    const auto deadline = std::chrono::steady_clock::now() + t;
    // Poll every rank until all arrived or the deadline passed, so a late rank is not mistaken for a
    // missing one just because an earlier rank was slow.
    for (auto backoff = std::chrono::microseconds(20);; backoff = std::min(backoff * 2, std::chrono::microseconds(1000))) {
      bool all = true;
      for (int r = 1; r < channel_->size; ++r) {
        if (have[static_cast<std::size_t>(r)]) continue;
        if (auto got = channel_->try_receive(r, tag)) {
          out[static_cast<std::size_t>(r)] = detail::unframe_message(op, *got, r, 0);
          have[static_cast<std::size_t>(r)] = true;
        } else {
          all = false;
        }
      }
      if (all) return out;
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(backoff);
    }
    std::vector<int> missing;
    for (int r = 1; r < channel_->size; ++r)
      if (!have[static_cast<std::size_t>(r)]) missing.push_back(r);
    throw detail::timeout_error(op, missing, t, 0, channel_->size);
  }

  /// A new channel on a duplicate of the communicator (`MPI_Comm_dup`: every rank must call it, in the
  /// same order).
  mpi_coordinator duplicate() const {
    MPI_Comm dup = MPI_COMM_NULL;
    detail::check_mpi(MPI_Comm_dup(channel_->comm, &dup), "MPI_Comm_dup");
    return mpi_coordinator(std::make_shared<channel>(dup, true));
  }

 private:
  struct channel {
    channel(MPI_Comm c, bool own) : comm(c), owned(own) {
      detail::check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
      detail::check_mpi(MPI_Comm_size(comm, &size), "MPI_Comm_size");
      int* ub = nullptr;
      int flag = 0;
      MPI_Comm_get_attr(comm, MPI_TAG_UB, &ub, &flag);
      tag_limit = flag && ub ? std::min(*ub, 1 << 30) : 32767;
    }
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel() {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (finalized) return;
      reap();
      // A send a dead peer never took keeps its buffer: MPI may still read it.
      for (auto& s : sends) MPI_Request_free(&s.request);
      if (!sends.empty()) (void)new std::list<pending_send>(std::move(sends));  // moves nodes, not buffers
      if (owned) MPI_Comm_free(&comm);
    }
    int next_tag() { return static_cast<int>(sequence++ % static_cast<std::uint64_t>(tag_limit)); }
    void send(int to, int tag, std::string framed) {
      sends.push_back({MPI_REQUEST_NULL, std::move(framed)});
      auto& s = sends.back();
      detail::check_mpi(MPI_Isend(s.buffer.data(), static_cast<int>(s.buffer.size()), MPI_BYTE, to, tag, comm, &s.request), "MPI_Isend");
    }
    void reap() {
      for (auto it = sends.begin(); it != sends.end();) {
        int done = 0;
        MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
        it = done ? sends.erase(it) : std::next(it);
      }
    }
    // Waits until the sends completed or the deadline passed; a send to a dead rank stays pending and
    // is reaped later (the receivers that are alive got their copies).
    void finish_sends(std::chrono::steady_clock::time_point deadline) {
      for (auto backoff = std::chrono::microseconds(20);; backoff = std::min(backoff * 2, std::chrono::microseconds(1000))) {
        reap();
        if (sends.empty() || std::chrono::steady_clock::now() >= deadline) return;
        std::this_thread::sleep_for(backoff);
      }
    }
    std::optional<std::string> try_receive(int from, int tag) {
      int flag = 0;
      MPI_Status st;
      detail::check_mpi(MPI_Iprobe(from, tag, comm, &flag, &st), "MPI_Iprobe");
      if (!flag) return std::nullopt;
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      std::string buf(static_cast<std::size_t>(n), '\0');
      detail::check_mpi(MPI_Recv(buf.data(), n, MPI_BYTE, from, tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
      return buf;
    }
    std::optional<std::string> receive(int from, int tag, std::chrono::steady_clock::time_point deadline) {
      for (auto backoff = std::chrono::microseconds(20);; backoff = std::min(backoff * 2, std::chrono::microseconds(1000))) {
        if (auto got = try_receive(from, tag)) return got;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(backoff);
      }
    }

    struct pending_send {
      MPI_Request request;
      std::string buffer;
    };
    MPI_Comm comm;
    bool owned = false;
    int rank = 0;
    int size = 1;
    int tag_limit = 32767;
    std::uint64_t sequence = 0;
    std::list<pending_send> sends;  // std::list: buffers never move while MPI reads them
  };
  explicit mpi_coordinator(std::shared_ptr<channel> c) : channel_(std::move(c)) {}
  std::shared_ptr<channel> channel_;
};
static_assert(coordinator<mpi_coordinator>);

}  // namespace cairn
