// SPDX-License-Identifier: Apache-2.0
/// \file
/// zstd frames for zarr chunks and OCDBT nodes: reusable compression and decompression contexts and
/// thread-local conveniences. This is the only header that includes `<zstd.h>`.
/// A compressor can be told to skip compression where it does not pay: a chunk whose sample zstd
/// barely shrinks is written as a frame of raw blocks, which every zstd decoder reads (and whose
/// content checksum it verifies) at the speed of a copy.
/// Decoding is hostile-input safe: it accepts exactly one zstd frame, and a frame's content-size
/// field never decides an allocation; the caller's known size or explicit limit does.
#pragma once

#include <algorithm>  // std::min, std::max
#include <array>
#include <cmath>  // std::log2
#include <cstddef>
#include <cstdint>
#include <cstring>  // std::memcpy
#include <memory>
#include <new>  // std::bad_alloc
#include <string>
#include <string_view>
#include <thread>
#include <utility>

// ZSTD_d_stableOutBuffer (decoding straight into the caller's buffer while reading in pieces) is in
// the "experimental" section, stable since zstd 1.4.0 and exported by the shared library.
#ifndef ZSTD_STATIC_LINKING_ONLY
#define ZSTD_STATIC_LINKING_ONLY
#endif
#include <zstd.h>
#include <zstd_errors.h>  // ZSTD_getErrorCode, ZSTD_error_*

#include <cairn/core/bytes.hpp>
#include <cairn/core/error.hpp>
#include <cairn/codec/xxhash.hpp>

namespace cairn::codec {

/// How `zstd_decompressor::decompress_into` judges the decoded length against the output buffer.
enum class size_check {
  exact,    ///< the frame must decode to exactly `out.size()` bytes
  at_most,  ///< the frame may decode to any length up to `out.size()`
};

namespace detail {

struct cctx_deleter {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct dctx_deleter {
  void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
};

[[noreturn]] inline void throw_corrupted(std::string_view what, std::string_view detail) {
  std::string text(what);
  text += ": ";
  text += detail;
  throw error(errc::corrupted, std::move(text));
}

/// Returns an upper bound on what a frame of `frame_size` bytes can decode to: every block costs at
/// least 4 bytes (a 3-byte header and one RLE byte) and yields at most ZSTD_BLOCKSIZE_MAX bytes.
/// It turns a header's claim into something checkable before anything is allocated.
constexpr unsigned long long max_decoded_size(std::size_t frame_size) noexcept {
  return (static_cast<unsigned long long>(frame_size) / 4 + 1) * ZSTD_BLOCKSIZE_MAX;
}

/// Validates that `frame` is exactly one zstd data frame and returns its declared content size
/// (`ZSTD_CONTENTSIZE_UNKNOWN` when the header omits it).
/// \throws cairn::error (errc::corrupted) if the input is empty, not a zstd frame, truncated, or
///         followed by trailing bytes (including a second frame).
inline unsigned long long check_single_frame(byte_view frame, std::string_view what) {
  if (frame.empty()) throw_corrupted(what, "empty input is not a zstd frame");
  // Legacy (v0.x) and skippable frames would also be accepted by libzstd; Orbax never writes them,
  // so anything but the standard magic is corruption.
  if (frame.size() < 4 || load_le<std::uint32_t>(frame.data()) != ZSTD_MAGICNUMBER) {
    throw_corrupted(what, "not a zstd frame (bad magic number, " + std::to_string(frame.size()) + " bytes)");
  }
  // Walks block headers only, so it is cheap and decides "one whole frame" before any decoding.
  std::size_t const frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size)) {
    if (ZSTD_getErrorCode(frame_size) == ZSTD_error_srcSize_wrong) {
      throw_corrupted(what, "truncated zstd frame (" + std::to_string(frame.size()) + " bytes)");
    }
    throw_corrupted(what, std::string("invalid zstd frame: ") + ZSTD_getErrorName(frame_size));
  }
  if (frame_size != frame.size()) {
    throw_corrupted(what, std::to_string(frame.size() - frame_size) + " trailing bytes after a zstd frame of " +
                              std::to_string(frame_size) + " bytes");
  }
  unsigned long long const declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) throw_corrupted(what, "invalid zstd frame header");
  return declared;
}

}  // namespace detail

/// Compresses byte ranges into standalone zstd frames (with the content size recorded), reusing
/// one `ZSTD_CCtx` so that repeated calls allocate nothing.
/// \par Thread safety
/// A context is mutable state: one object must not be used by two threads at once. Use one
/// compressor per thread (or `zstd_compress`, which keeps one per thread).
class zstd_compressor {
 public:
  /// Creates a context at `level` (negative levels trade ratio for speed; 0 means zstd's default, 3).
  /// \throws cairn::error (errc::invalid_argument) if `level` is outside [ZSTD_minCLevel(), ZSTD_maxCLevel()].
  /// \throws std::bad_alloc if the context cannot be allocated.
  explicit zstd_compressor(int level = 1) : ctx_(ZSTD_createCCtx()) {
    if (!ctx_) throw std::bad_alloc();
    set_level(level);
  }

  /// Returns the compression level used by the next `compress`.
  int level() const noexcept { return level_; }

  /// Changes the compression level for subsequent frames; the context's memory is reused.
  /// \throws cairn::error (errc::invalid_argument) if `level` is outside [ZSTD_minCLevel(), ZSTD_maxCLevel()].
  void set_level(int level) {
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
      throw error(errc::invalid_argument, "zstd compression level " + std::to_string(level) + " is outside [" +
                                              std::to_string(ZSTD_minCLevel()) + ", " +
                                              std::to_string(ZSTD_maxCLevel()) + "]");
    }
    std::size_t const rc = ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_compressionLevel, level);
    if (ZSTD_isError(rc)) {
      throw error(errc::invalid_argument, std::string("zstd compression level: ") + ZSTD_getErrorName(rc));
    }
    level_ = level;
  }

  /// Whether frames end with a checksum of their content (4 bytes), which every decoder verifies.
  bool checksum() const noexcept { return checksum_; }
  /// Turns content checksums on or off for subsequent frames.
  void set_checksum(bool on) {
    std::size_t const rc = ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_checksumFlag, on ? 1 : 0);
    if (ZSTD_isError(rc)) throw error(errc::invalid_argument, std::string("zstd checksum flag: ") + ZSTD_getErrorName(rc));
    checksum_ = on;
  }

  /// Returns the largest frame `compress` can produce for `input_size` bytes.
  /// \throws cairn::error (errc::invalid_argument) if `input_size` exceeds what one zstd frame can hold.
  static std::size_t compress_bound(std::size_t input_size) {
    std::size_t const bound = ZSTD_compressBound(input_size);
    if (bound == 0 || ZSTD_isError(bound)) {
      throw error(errc::invalid_argument, "zstd: input of " + std::to_string(input_size) + " bytes is too large");
    }
    return bound;
  }

  /// Compresses `in` into one frame written at the start of `out`; returns the frame's size.
  /// \pre `out` does not overlap `in`.
  /// \post `zstd_decompressor().decompress_into(out.first(result), buffer of in.size(), …)` restores `in`.
  /// \throws cairn::error (errc::invalid_argument) if the frame does not fit in `out`
  ///         (`out.size() >= compress_bound(in.size())` always suffices).
  std::size_t compress(byte_view in, mutable_byte_view out) {
    if (!pays(in)) {
      span_sink sink{out, in.size()};
      return store(in, sink);
    }
    // Large inputs are compressed by several threads into the same single frame (zstd's own worker
    // pool; a no-op where libzstd lacks multithreading). Small ones stay on the caller's thread.
    set_workers(in.size());
    std::size_t const n = ZSTD_compress2(ctx_.get(), out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation) throw std::bad_alloc();
      throw error(errc::invalid_argument, "zstd: compressing " + std::to_string(in.size()) + " bytes into " +
                                              std::to_string(out.size()) + ": " + ZSTD_getErrorName(n));
    }
    return n;
  }

  /// Compresses `in` into one frame delivered in pieces, so that a caller can write a large frame
  /// while it is being compressed: `out.space()` returns a non-empty buffer to write to next and
  /// `out.produced(n)` hands over its first `n` bytes. Returns the frame's size. The frame is the same
  /// as `compress` makes (content size recorded, checksum as set).
  /// \throws cairn::error (errc::invalid_argument) if zstd fails; whatever `out` throws.
  template <class Out>
  std::size_t compress_streamed(byte_view in, Out& out) {
    if (!pays(in)) return store(in, out);
    set_workers(in.size());
    (void)ZSTD_CCtx_reset(ctx_.get(), ZSTD_reset_session_only);
    std::size_t rc = ZSTD_CCtx_setPledgedSrcSize(ctx_.get(), in.size());
    if (ZSTD_isError(rc)) throw error(errc::invalid_argument, std::string("zstd: pledged size: ") + ZSTD_getErrorName(rc));
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t total = 0;
    do {
      const mutable_byte_view space = out.space();
      ZSTD_outBuffer dst{space.data(), space.size(), 0};
      rc = ZSTD_compressStream2(ctx_.get(), &dst, &src, ZSTD_e_end);
      if (ZSTD_isError(rc)) {
        (void)ZSTD_CCtx_reset(ctx_.get(), ZSTD_reset_session_only);
        if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation) throw std::bad_alloc();
        throw error(errc::invalid_argument, "zstd: compressing " + std::to_string(in.size()) + " bytes: " + ZSTD_getErrorName(rc));
      }
      out.produced(dst.pos);
      total += dst.pos;
    } while (rc != 0);
    return total;
  }

  /// Compresses `total` bytes that `produce` hands over in pieces into one frame delivered as
  /// `compress_streamed` delivers it, so that a large input never has to exist whole: `produce(feed)`
  /// calls `feed(byte_view)` for consecutive pieces (each may be reused once `feed` returns) adding up
  /// to exactly `total` bytes. Always compresses (no `min_ratio` judgement: that needs the whole input).
  /// Returns the frame's size.
  /// \throws cairn::error (errc::invalid_argument) if the pieces do not add up to `total` or zstd
  ///         fails; whatever `produce` or `out` throws (the context is then reset for the next frame).
  template <class Produce, class Out>
  std::size_t compress_pieces(std::size_t total, Produce&& produce, Out& out) {
    set_workers(total);
    (void)ZSTD_CCtx_reset(ctx_.get(), ZSTD_reset_session_only);
    struct resetter {
      ZSTD_CCtx* c;
      bool done = false;
      ~resetter() {
        if (!done) (void)ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
      }
    } guard{ctx_.get()};
    std::size_t rc = ZSTD_CCtx_setPledgedSrcSize(ctx_.get(), total);
    if (ZSTD_isError(rc)) throw error(errc::invalid_argument, std::string("zstd: pledged size: ") + ZSTD_getErrorName(rc));
    std::size_t written = 0;
    auto step = [&](ZSTD_inBuffer& src, ZSTD_EndDirective mode) {
      const mutable_byte_view space = out.space();
      ZSTD_outBuffer dst{space.data(), space.size(), 0};
      rc = ZSTD_compressStream2(ctx_.get(), &dst, &src, mode);
      if (ZSTD_isError(rc)) {
        if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation) throw std::bad_alloc();
        throw error(errc::invalid_argument, "zstd: compressing " + std::to_string(total) + " bytes in pieces: " + ZSTD_getErrorName(rc));
      }
      out.produced(dst.pos);
      written += dst.pos;
    };
    std::size_t fed = 0;
    produce([&](byte_view piece) {
      fed += piece.size();
      ZSTD_inBuffer src{piece.data(), piece.size(), 0};
      while (src.pos < src.size) step(src, ZSTD_e_continue);
    });
    if (fed != total)
      throw error(errc::invalid_argument, "zstd: pieces of " + std::to_string(fed) + " bytes, " + std::to_string(total) + " announced");
    ZSTD_inBuffer none{nullptr, 0, 0};
    do step(none, ZSTD_e_end);
    while (rc != 0);
    guard.done = true;
    return written;
  }

  /// Compresses `in` into a new buffer holding exactly one frame.
  /// \post The result's size is the frame's size; its capacity may be up to `compress_bound(in.size())`.
  byte_buffer compress(byte_view in) {
    byte_buffer out(compress_bound(in.size()));
    out.resize(compress(in, out.mutable_view()));
    return out;
  }

  /// Inputs of at least this many bytes are compressed by several threads.
  static constexpr std::size_t parallel_threshold = std::size_t{16} << 20;

  /// The ratio below which an input is stored instead of compressed (0: everything is compressed).
  double min_ratio() const noexcept { return min_ratio_; }
  /// Sets the ratio an input must compress by to be compressed; an input below it becomes a frame of
  /// raw blocks (plus the content size and, if set, the checksum) at copy speed. An input of at least
  /// `sampled_threshold` bytes is judged by a sample: 1 to 4 pieces spread over it (one per 256 KiB, at
  /// most 16 KiB and an eighth of it each), compressed at the frame's level. A smaller one is judged by
  /// `estimated_ratio` (a byte histogram and a count of repeated words, no trial compression), one of
  /// at most `tiny_input_bytes` by zstd's fastest level (repeats only). 0 turns all of this off.
  /// \throws cairn::error (errc::invalid_argument) if `ratio` is negative or not a number.
  void set_min_ratio(double ratio) {
    if (!(ratio >= 0)) throw error(errc::invalid_argument, "zstd minimum compression ratio " + std::to_string(ratio) + " is negative");
    min_ratio_ = ratio;
  }
  /// Inputs of at least this many bytes are judged by a sample compressed at the frame's level.
  static constexpr std::size_t sampled_threshold = std::size_t{32} << 10;

  /// Inputs of at most this many bytes are first searched for a repeat (see `pays`).
  static constexpr std::size_t tiny_input_bytes = 256;

  /// Returns whether `compress` would compress `in` (true) or store it in raw blocks (false).
  bool pays(byte_view in) {
    if (min_ratio_ <= 0 || in.empty()) return true;
    // The fastest level gains only by matches of 4 bytes or more, so a tiny input in which no 4 bytes
    // repeat cannot shrink under it: no need to set up a compression to learn that (it cost more than
    // the rest of saving a 64-byte leaf).
    if (min_ratio_ >= 1 && in.size() <= tiny_input_bytes && !repeats_4_bytes(in)) return false;
    if (in.size() <= tiny_input_bytes) {
      if (!fast_) {
        fast_.reset(ZSTD_createCCtx());
        if (!fast_ || ZSTD_isError(ZSTD_CCtx_setParameter(fast_.get(), ZSTD_c_compressionLevel, -1))) throw std::bad_alloc();
      }
      if (sample_.size() < ZSTD_compressBound(in.size())) sample_.resize(ZSTD_compressBound(sampled_threshold));
      const std::size_t n = ZSTD_compress2(fast_.get(), sample_.data(), sample_.size(), in.data(), in.size());
      return !ZSTD_isError(n) && static_cast<double>(in.size()) >= min_ratio_ * static_cast<double>(n);
    }
    if (in.size() < sampled_threshold) return estimated_ratio(in) >= min_ratio_;
    const std::size_t pieces = std::clamp<std::size_t>(in.size() >> 18, 1, 4);
    const std::size_t piece = std::min<std::size_t>(std::size_t{16} << 10, in.size() / 8);
    const std::size_t stride = pieces > 1 ? (in.size() - piece) / (pieces - 1) : 0;
    const std::size_t first = pieces > 1 ? 0 : (in.size() - piece) / 2;
    set_workers(piece);
    if (sample_.size() < ZSTD_compressBound(piece)) sample_.resize(ZSTD_compressBound(piece));
    std::size_t stored = 0;
    for (std::size_t i = 0; i < pieces; ++i) {
      const std::size_t n = ZSTD_compress2(ctx_.get(), sample_.data(), sample_.size(), in.data() + first + i * stride, piece);
      if (ZSTD_isError(n)) return true;  // the real compression reports it
      stored += n;
    }
    return static_cast<double>(pieces * piece) >= min_ratio_ * static_cast<double>(stored);
  }

  /// What zstd at level 3 is estimated to shrink `in` by (a few KiB of typed data: weights, integers,
  /// text), without compressing it. A trial compression at the fastest level cost more than storing
  /// a 4 KiB chunk and saw repeats only, so it stored bfloat16 weights (1.26× at level 3) and small
  /// integers without repeats. The estimate prices the literals at their order-0 entropy (what zstd's
  /// Huffman coding comes close to; from about 1 KiB of 64-byte lines spread over the input, with the
  /// Miller–Madow correction for the sample's size), plus the Huffman table, and takes every aligned
  /// 4-byte word of those lines that repeats an earlier one as matched (about a byte of sequence
  /// instead of four). Within ±5 % of level 3 on the kinds of data the tests cover; other levels differ
  /// little on inputs this small. An input shorter than 64 bytes gives 1.
  /// \pre `in.size() > tiny_input_bytes` and `in.size() < sampled_threshold`
  static double estimated_ratio(byte_view in) noexcept {
    constexpr std::size_t line = 64, max_lines = 16, max_sampled = max_lines * line;
    const std::size_t lines = in.size() / line;
    if (lines == 0) return 1;  // too little to tell (`pays` never asks)
    const std::size_t stride = std::max<std::size_t>(1, (lines + max_lines - 1) / max_lines);  // ≤ 16 lines read
    std::uint16_t h0[256] = {}, h1[256] = {};  // two histograms: consecutive bytes do not wait on each other
    std::uint64_t words[256] = {};             // direct-mapped: (word << 1) | 1 of the last word per slot
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    std::size_t sampled = 0, repeats = 0;
    for (std::size_t l = 0; l < lines; l += stride, sampled += line) {
      const unsigned char* q = p + l * line;
      for (std::size_t i = 0; i < line; i += 4) {
        ++h0[q[i]];
        ++h1[q[i + 1]];
        ++h0[q[i + 2]];
        ++h1[q[i + 3]];
        std::uint32_t w;
        std::memcpy(&w, q + i, 4);
        const std::uint64_t tagged = (std::uint64_t{w} << 1) | 1;
        std::uint64_t& slot = words[(w * 2654435761u) >> 24];
        repeats += slot == tagged;
        slot = tagged;
      }
    }
    static const auto n_log2_n = [] {  // n·log2(n) for every count a sample can reach
      std::array<float, max_sampled + 1> t{};
      for (std::size_t n = 1; n < t.size(); ++n) t[n] = static_cast<float>(static_cast<double>(n) * std::log2(static_cast<double>(n)));
      return t;
    }();
    double sum = 0;
    int symbols = 0;
    for (int b = 0; b < 256; ++b) {
      const unsigned c = unsigned{h0[b]} + h1[b];
      symbols += c != 0;
      sum += n_log2_n[c];
    }
    const double s = static_cast<double>(sampled);
    const double bits = std::min(8.0, std::log2(s) - sum / s + (symbols - 1) / (2 * s * 0.6931471805599453));
    const double n = static_cast<double>(in.size());
    const double matched = std::min(n, 4 * static_cast<double>(repeats) * n / s);
    // zstd keeps literals raw when Huffman coding would save little; else it pays for the table.
    const double table = bits < 7.9 ? 0.5 * symbols : 0;
    return n / ((n - matched) * bits / 8 + matched / 4 + table + 12);
  }

 private:
  /// Whether some 4 bytes of `in` occur again at another position.
  /// \pre `in.size() <= tiny_input_bytes`
  static bool repeats_4_bytes(byte_view in) noexcept {
    if (in.size() < 5) return false;
    // Open addressing over a table at least twice the windows: a slot holds (window << 1) | 1.
    constexpr std::size_t slots = 512;
    static_assert(slots >= 2 * tiny_input_bytes);
    std::uint64_t table[slots] = {};
    for (std::size_t i = 0; i + 4 <= in.size(); ++i) {
      std::uint32_t w;
      std::memcpy(&w, in.data() + i, 4);
      const std::uint64_t tagged = (std::uint64_t{w} << 1) | 1;
      for (std::size_t slot = (w * 2654435761u) >> 23;; slot = (slot + 1) % slots) {  // 9 bits: 512 slots
        if (table[slot] == tagged) return true;
        if (table[slot] == 0) {
          table[slot] = tagged;
          break;
        }
      }
    }
    return false;
  }

  /// A caller's buffer as the `space()`/`produced()` sink that `store` writes to.
  struct span_sink {
    mutable_byte_view out;
    std::size_t input_size;
    std::size_t used = 0;
    mutable_byte_view space() const {
      if (used == out.size()) {
        throw error(errc::invalid_argument, "zstd: storing " + std::to_string(input_size) + " bytes into " +
                                                std::to_string(out.size()) + ": the output buffer is too small");
      }
      return out.subspan(used);
    }
    void produced(std::size_t n) noexcept { used += n; }
  };

  /// Writes `in` as one frame of raw blocks (RFC 8878 §3.1.1) of at most 128 KiB, with its content
  /// size and the low 32 bits of XXH64 when checksums are on. A frame of one block is a single segment
  /// (the shortest header); a longer one declares a 128 KiB window, all that raw blocks need, so that
  /// a streaming decoder never sizes its window by the content. Returns the frame's size.
  /// \pre `in` is not empty.
  template <class Out>
  std::size_t store(byte_view in, Out& out) {
    std::byte head[14];
    store_le<std::uint32_t>(head, ZSTD_MAGICNUMBER);
    const std::uint8_t checksum_flag = checksum_ ? 0x04 : 0x00;
    std::size_t head_size = 5;
    const std::uint64_t n = in.size();
    if (n > ZSTD_BLOCKSIZE_MAX) {
      head[4] = static_cast<std::byte>(0xC0 | checksum_flag);  // 8-byte content size, window descriptor
      head[5] = static_cast<std::byte>(0x38);                  // window log 17
      store_le<std::uint64_t>(head + 6, n);
      head_size = 14;
    } else if (n < 256) {
      head[4] = static_cast<std::byte>(0x20 | checksum_flag);  // single segment, 1-byte content size
      head[5] = static_cast<std::byte>(n);
      head_size = 6;
    } else if (n < 65536 + 256) {
      head[4] = static_cast<std::byte>(0x60 | checksum_flag);  // single segment, 2-byte content size − 256
      store_le<std::uint16_t>(head + 5, static_cast<std::uint16_t>(n - 256));
      head_size = 7;
    } else {
      head[4] = static_cast<std::byte>(0xA0 | checksum_flag);  // single segment, 4-byte content size
      store_le<std::uint32_t>(head + 5, static_cast<std::uint32_t>(n));
      head_size = 9;
    }
    emit_into(out, byte_view(head, head_size));
    std::size_t total = head_size;
    xxh64_stream hash;
    for (std::size_t at = 0; at < in.size();) {
      const std::size_t n = std::min<std::size_t>(ZSTD_BLOCKSIZE_MAX, in.size() - at);
      const bool last = at + n == in.size();
      const std::uint32_t header = (last ? 1u : 0u) | (static_cast<std::uint32_t>(n) << 3);  // block type 0: raw
      const std::byte block_head[3] = {static_cast<std::byte>(header), static_cast<std::byte>(header >> 8),
                                       static_cast<std::byte>(header >> 16)};
      emit_into(out, byte_view(block_head, 3));
      emit_into(out, in.subspan(at, n));
      if (checksum_) hash.update(in.subspan(at, n));
      total += 3 + n;
      at += n;
    }
    if (checksum_) {
      std::byte sum[4];
      store_le<std::uint32_t>(sum, static_cast<std::uint32_t>(hash.digest()));
      emit_into(out, byte_view(sum, 4));
      total += 4;
    }
    return total;
  }

  void set_workers(std::size_t input_size) {
    const int workers = input_size >= parallel_threshold ? parallel_workers() : 0;
    if (workers != workers_) {
      if (!ZSTD_isError(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_nbWorkers, workers))) {
        workers_ = workers;
        // Small jobs keep the workers' buffers (a few jobs in flight) to a few MiB.
        if (workers > 0) (void)ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_jobSize, 2 << 20);
      }
    }
  }
  static int parallel_workers() noexcept {
    static const int n = static_cast<int>(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    return n > 1 ? n : 0;
  }
  std::unique_ptr<ZSTD_CCtx, detail::cctx_deleter> ctx_;
  int level_ = 0;
  bool checksum_ = false;
  int workers_ = 0;
  double min_ratio_ = 0;
  byte_buffer sample_;
  std::unique_ptr<ZSTD_CCtx, detail::cctx_deleter> fast_;  // level −1, to judge small inputs
};

/// Decodes single zstd frames of untrusted origin, reusing one `ZSTD_DCtx`.
/// Every failure caused by the bytes is `cairn::error(errc::corrupted)` whose context starts with
/// the caller's `what` (for example `key "a/0.0"`).
/// \par Thread safety
/// A context is mutable state: one object must not be used by two threads at once. Use one
/// decompressor per thread (or the `zstd_decompress*` functions, which keep one per thread).
class zstd_decompressor {
 public:
  /// Creates a context.
  /// \throws std::bad_alloc if the context cannot be allocated.
  zstd_decompressor() : ctx_(ZSTD_createDCtx()) {
    if (!ctx_) throw std::bad_alloc();
  }

  /// Decodes exactly one frame into `out`, whose size the caller knows (from array metadata, never
  /// from the frame); returns the number of bytes decoded.
  /// \post With `size_check::exact` the result equals `out.size()`; with `at_most` it is `<= out.size()`.
  ///       Bytes of `out` past the result are unspecified.
  /// \throws cairn::error (errc::corrupted) if `frame` is not exactly one complete zstd frame (empty,
  ///         bad magic, truncated, trailing bytes or a second frame), if it would decode to more than
  ///         `out.size()` bytes, if `check` is `exact` and it decodes to fewer, or if zstd reports
  ///         corruption (the message includes zstd's reason).
  std::size_t decompress_into(byte_view frame, mutable_byte_view out, std::string_view what,
                              size_check check = size_check::exact) {
    unsigned long long const declared = detail::check_single_frame(frame, what);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN) {
      // Rejecting early gives a clearer message; the decoder would refuse the frame anyway.
      if (declared > out.size()) {
        detail::throw_corrupted(what, "zstd frame declares " + std::to_string(declared) +
                                          " bytes, more than the expected " + std::to_string(out.size()));
      }
      if (check == size_check::exact && declared != out.size()) {
        detail::throw_corrupted(
            what, "zstd frame declares " + std::to_string(declared) + " bytes, expected " + std::to_string(out.size()));
      }
    }
    // Single-pass decoding into the caller's buffer: the decoder uses `out` itself as its window,
    // so nothing is allocated from header fields and no bytes are copied through an internal buffer.
    std::byte dummy{};
    std::size_t const n =
        ZSTD_decompressDCtx(ctx_.get(), out.empty() ? &dummy : out.data(), out.size(), frame.data(), frame.size());
    if (ZSTD_isError(n)) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) {
        detail::throw_corrupted(
            what, "zstd frame decodes to more than the expected " + std::to_string(out.size()) + " bytes");
      }
      if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation) throw std::bad_alloc();
      detail::throw_corrupted(what, std::string("corrupt zstd frame: ") + ZSTD_getErrorName(n));
    }
    if (check == size_check::exact && n != out.size()) {
      detail::throw_corrupted(
          what, "zstd frame decodes to " + std::to_string(n) + " bytes, expected " + std::to_string(out.size()));
    }
    return n;
  }

  /// Decodes exactly one frame whose decoded size is unknown but at most `max_size` bytes.
  /// A declared content size sizes the result in one step only when it is within `max_size` and
  /// possible for the frame's length (≤ 32768 × its bytes); without one, the output grows
  /// geometrically, so memory follows the bytes actually decoded.
  /// \post The result holds the decoded bytes; `result.size() <= max_size`.
  /// \throws cairn::error (errc::corrupted) if `frame` is not exactly one complete zstd frame, if it
  ///         declares or decodes to more than `max_size` bytes, if it declares more than its length
  ///         can hold, or if zstd reports corruption (including a window larger than zstd's default
  ///         streaming limit of 128 MiB).
  byte_buffer decompress(byte_view frame, std::size_t max_size, std::string_view what) {
    unsigned long long const declared = detail::check_single_frame(frame, what);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN) {
      if (declared > max_size) {
        detail::throw_corrupted(what, "zstd frame declares " + std::to_string(declared) +
                                          " bytes, more than the limit of " + std::to_string(max_size));
      }
      if (declared > detail::max_decoded_size(frame.size())) {
        detail::throw_corrupted(what, "zstd frame declares " + std::to_string(declared) +
                                          " bytes, impossible for a frame of " + std::to_string(frame.size()) +
                                          " bytes");
      }
      byte_buffer out(static_cast<std::size_t>(declared));
      decompress_into(frame, out.mutable_view(), what, size_check::exact);
      return out;
    }
    return stream_unknown_size(frame, max_size, what);
  }

  /// Decodes exactly one frame of `frame_size` bytes into `out`, which it must fill exactly (as
  /// `decompress_into` with `size_check::exact`), while the frame is read in pieces: `read(offset, dst)`
  /// puts the frame's bytes `[offset, offset + dst.size())` into `dst`, a prefix of `scratch`. A large
  /// chunk is so decoded from a reused buffer of a few MiB instead of one of its own size, which is
  /// memory the restore neither has to find nor to fault in. `out` is the decoder's window: nothing
  /// is sized by the frame's header.
  /// \pre `scratch` is not empty.
  /// \throws cairn::error (errc::corrupted) naming `what` as `decompress_into`; whatever `read` throws.
  ///         `out` then holds unspecified bytes.
  template <class Read>
  void decompress_read_into(std::uint64_t frame_size, Read&& read, mutable_byte_view scratch, mutable_byte_view out,
                            std::string_view what) {
    CAIRN_ASSERT(!scratch.empty());
    ZSTD_DCtx* const c = ctx_.get();
    struct resetter {  // the thread's context goes back to its defaults (window limit included)
      ZSTD_DCtx* c;
      ~resetter() { ZSTD_DCtx_reset(c, ZSTD_reset_session_and_parameters); }
    } const reset{c};
    ZSTD_DCtx_reset(c, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_DCtx_setParameter(c, ZSTD_d_stableOutBuffer, 1)) ||
        ZSTD_isError(ZSTD_DCtx_setParameter(c, ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_MAX)))
      throw error(errc::unsupported, std::string(what) + ": this zstd library cannot decode into a caller's buffer");
    // The magic number is checked first, as check_single_frame does (libzstd would also take legacy
    // and skippable frames); a piece too small to hold it has it read on its own.
    if (frame_size < 4) detail::throw_corrupted(what, "not a zstd frame (" + std::to_string(frame_size) + " bytes)");
    if (scratch.size() < 4) {
      std::byte magic[4];
      read(std::uint64_t{0}, mutable_byte_view(magic, 4));
      check_magic(byte_view(magic, 4), what);
    }
    std::byte dummy{};
    ZSTD_outBuffer dst{out.empty() ? &dummy : out.data(), out.size(), 0};
    std::uint64_t fed = 0;
    while (fed < frame_size) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(scratch.size(), frame_size - fed));
      read(fed, scratch.first(n));
      if (fed == 0) check_declared_size(scratch.first(n), out.size(), what);
      fed += n;
      ZSTD_inBuffer in{scratch.data(), n, 0};
      while (in.pos < in.size) {
        const std::size_t in_before = in.pos, out_before = dst.pos;
        const std::size_t rc = ZSTD_decompressStream(c, &dst, &in);
        if (ZSTD_isError(rc)) {
          if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation) throw std::bad_alloc();
          if (ZSTD_getErrorCode(rc) == ZSTD_error_dstSize_tooSmall)
            detail::throw_corrupted(what, "zstd frame decodes to more than the expected " + std::to_string(out.size()) + " bytes");
          detail::throw_corrupted(what, std::string("corrupt zstd frame: ") + ZSTD_getErrorName(rc));
        }
        if (rc == 0) {  // the frame is complete
          if (in.pos != in.size || fed != frame_size)
            detail::throw_corrupted(what, "trailing bytes after the zstd frame (" +
                                              std::to_string(fed - (in.size - in.pos)) + " of " +
                                              std::to_string(frame_size) + " bytes used)");
          if (dst.pos != out.size())
            detail::throw_corrupted(what, "zstd frame decodes to " + std::to_string(dst.pos) + " bytes, expected " +
                                              std::to_string(out.size()));
          return;
        }
        if (in.pos == in_before && dst.pos == out_before)
          detail::throw_corrupted(what, "zstd frame decodes to more than the expected " + std::to_string(out.size()) + " bytes");
      }
    }
    detail::throw_corrupted(what, "truncated zstd frame (" + std::to_string(frame_size) + " bytes)");
  }

 private:
  // `first` (at least 4 bytes) starts with the magic number of a zstd data frame.
  static void check_magic(byte_view first, std::string_view what) {
    if (load_le<std::uint32_t>(first.data()) != ZSTD_MAGICNUMBER) detail::throw_corrupted(what, "not a zstd frame (bad magic number)");
  }
  // Rejects a first piece that is no zstd frame or whose header declares another content size than
  // `expected`; a piece too short to hold the header leaves that to the decoder, which reports it.
  static void check_declared_size(byte_view first, std::size_t expected, std::string_view what) {
    if (first.size() < 4) return;  // checked on its own
    check_magic(first, what);
    ZSTD_frameHeader h{};
    const std::size_t rc = ZSTD_getFrameHeader(&h, first.data(), first.size());
    if (ZSTD_isError(rc)) detail::throw_corrupted(what, std::string("not a zstd frame: ") + ZSTD_getErrorName(rc));
    if (rc != 0) return;
    if (h.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN && h.frameContentSize != expected)
      detail::throw_corrupted(what, "zstd frame declares " + std::to_string(h.frameContentSize) + " bytes, expected " +
                                        std::to_string(expected));
  }

  byte_buffer stream_unknown_size(byte_view frame, std::size_t max_size, std::string_view what) {
    // Starting near the input size keeps small objects to one allocation; doubling bounds the copies
    // to about the final size.
    constexpr std::size_t initial_floor = 64 * 1024;
    byte_buffer out(std::min(max_size, std::max(initial_floor, 4 * frame.size())));
    std::size_t produced = 0;
    std::byte probe{};  // target once `out` holds max_size bytes: any byte landing here is one too many

    reset_session();
    ZSTD_inBuffer in{frame.data(), frame.size(), 0};
    for (;;) {
      bool const full = produced == out.size();
      if (full && out.size() < max_size) {
        out.resize(out.size() > max_size / 2 ? max_size : std::max<std::size_t>(2 * out.size(), 1));
        continue;
      }
      ZSTD_outBuffer dst =
          full ? ZSTD_outBuffer{&probe, 1, 0} : ZSTD_outBuffer{out.data() + produced, out.size() - produced, 0};
      std::size_t const in_before = in.pos;
      std::size_t const rc = ZSTD_decompressStream(ctx_.get(), &dst, &in);
      if (ZSTD_isError(rc)) {
        reset_session();
        if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation) throw std::bad_alloc();
        detail::throw_corrupted(what, std::string("corrupt zstd frame: ") + ZSTD_getErrorName(rc));
      }
      if (full && dst.pos != 0) {
        reset_session();
        detail::throw_corrupted(what,
                                "zstd frame decodes to more than the limit of " + std::to_string(max_size) + " bytes");
      }
      if (!full) produced += dst.pos;
      if (rc == 0) break;  // frame decoded and fully flushed
      if (dst.pos == 0 && in.pos == in_before) {
        // No progress with input left would loop forever; check_single_frame makes this unreachable
        // for well-formed block headers, so it can only mean a frame that ends mid-block.
        reset_session();
        detail::throw_corrupted(what, "truncated zstd frame (" + std::to_string(frame.size()) + " bytes)");
      }
    }
    out.resize(produced);
    return out;
  }

  void reset_session() noexcept { ZSTD_DCtx_reset(ctx_.get(), ZSTD_reset_session_only); }

  std::unique_ptr<ZSTD_DCtx, detail::dctx_deleter> ctx_;
};

namespace detail {
/// The calling thread's decompression context, shared by the convenience functions.
inline zstd_decompressor& thread_decompressor() {
  thread_local zstd_decompressor decompressor;
  return decompressor;
}

/// The calling thread's compression context, set to the caller's parameters.
inline zstd_compressor& thread_compressor(int level, bool checksum, double min_ratio = 0) {
  thread_local zstd_compressor compressor;
  if (compressor.level() != level) compressor.set_level(level);
  if (compressor.checksum() != checksum) compressor.set_checksum(checksum);
  if (compressor.min_ratio() != min_ratio) compressor.set_min_ratio(min_ratio);
  return compressor;
}
}  // namespace detail

/// Compresses `in` into one frame at `level` (with a content checksum if `checksum`), reusing a
/// per-thread context; with `min_ratio` > 0 an input that does not pay is stored (see
/// `zstd_compressor::set_min_ratio`).
/// \throws cairn::error (errc::invalid_argument) if `level` is outside zstd's range.
/// \par Thread safety
/// Safe from any thread: each thread owns its context.
inline byte_buffer zstd_compress(byte_view in, int level = 1, bool checksum = false, double min_ratio = 0) {
  return detail::thread_compressor(level, checksum, min_ratio).compress(in);
}

/// `zstd_compressor::compress_pieces` with the calling thread's context at `level`, no checksum.
/// \par Thread safety
/// Safe from any thread: each thread owns its context.
template <class Produce, class Out>
std::size_t zstd_compress_pieces(std::size_t total, int level, Produce&& produce, Out& out) {
  return detail::thread_compressor(level, false).compress_pieces(total, std::forward<Produce>(produce), out);
}

/// Compresses `in` into one frame at the start of `out` (which needs `compress_bound(in.size())`
/// bytes to be sure), reusing a per-thread context; returns the frame's size. No intermediate buffer.
/// \throws cairn::error (errc::invalid_argument) if `level` is out of range or the frame does not fit.
/// With `min_ratio` > 0, an input that does not pay is stored (see `zstd_compressor::set_min_ratio`).
inline std::size_t zstd_compress_into(byte_view in, mutable_byte_view out, int level = 1, bool checksum = false,
                                      double min_ratio = 0) {
  return detail::thread_compressor(level, checksum, min_ratio).compress(in, out);
}

/// Decodes exactly one frame into `out` with a per-thread context; see `zstd_decompressor::decompress_into`.
/// \throws cairn::error (errc::corrupted) as `zstd_decompressor::decompress_into`.
/// \par Thread safety
/// Safe from any thread: each thread owns its context.
inline std::size_t zstd_decompress_into(byte_view frame, mutable_byte_view out, std::string_view what,
                                        size_check check = size_check::exact) {
  return detail::thread_decompressor().decompress_into(frame, out, what, check);
}

/// `zstd_decompressor::decompress_read_into` with a per-thread context.
/// \throws as `zstd_decompressor::decompress_read_into`.
/// \par Thread safety
/// Safe from any thread: each thread owns its context.
template <class Read>
void zstd_decompress_read_into(std::uint64_t frame_size, Read&& read, mutable_byte_view scratch, mutable_byte_view out,
                               std::string_view what) {
  detail::thread_decompressor().decompress_read_into(frame_size, std::forward<Read>(read), scratch, out, what);
}

/// Decodes exactly one frame of at most `max_size` bytes with a per-thread context; see
/// `zstd_decompressor::decompress`.
/// \throws cairn::error (errc::corrupted) as `zstd_decompressor::decompress`.
/// \par Thread safety
/// Safe from any thread: each thread owns its context.
inline byte_buffer zstd_decompress(byte_view frame, std::size_t max_size, std::string_view what) {
  return detail::thread_decompressor().decompress(frame, max_size, what);
}

}  // namespace cairn::codec
