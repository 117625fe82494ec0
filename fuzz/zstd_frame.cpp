// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a zstd frame decoded whole (`decompress_into`) and decoded while it is read in
// pieces straight into the caller's buffer (`decompress_read_into`, as a restore reads large chunks).
// Each accepts it or rejects it with errc::corrupted; neither crashes, hangs or sizes anything by the
// frame's header; and where both accept, they produce the same bytes. They may disagree on accepting
// degenerate frames, because libzstd's own decoders do (the fuzzer found both directions): its streaming
// decoder reads an empty compressed block as the end of the frame, which its one-shot decoder calls
// corrupt, and rejects an empty RLE block, which the one-shot decoder takes. Encoders write neither;
// a restore that meets one decodes it again whole when the piecewise decoder rejects it. The first 4
// bytes choose the expected size (up to 1 MiB) and the piece size (1 byte to 4 KiB); the rest is the frame.
#include <cairn/codec/zstd.hpp>

#include <cstdlib>
#include <cstring>

#include "fuzz_common.hpp"

namespace {
// Runs `f`; false if it threw errc::corrupted (anything else is a finding).
template <class F>
bool accepted(F&& f) {
  try {
    f();
    return true;
  } catch (const cairn::error& e) {
    if (e.code() != cairn::errc::corrupted) std::abort();
    return false;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::size_t expected = data[0] | std::size_t{data[1]} << 8 | std::size_t{data[2] & 0x0fu} << 16;
  const std::size_t piece = 1 + (std::size_t{data[3]} << 4 | data[2] >> 4) % 4096;
  const cairn::byte_view frame = cairn_fuzz::bytes(data + 4, size - 4);
  cairn::byte_buffer whole(expected), pieces(expected), scratch(piece);
  const bool one = accepted([&] { cairn::codec::zstd_decompress_into(frame, whole.mutable_view(), "fuzz frame"); });
  const bool two = accepted([&] {
    cairn::codec::zstd_decompress_read_into(
        frame.size(),
        [&](std::uint64_t at, cairn::mutable_byte_view dst) {
          if (at + dst.size() > frame.size()) std::abort();  // never asks beyond the frame
          std::memcpy(dst.data(), frame.data() + at, dst.size());
        },
        scratch.mutable_view(), pieces.mutable_view(), "fuzz frame");
  });
  if (one && two && expected != 0 && std::memcmp(whole.data(), pieces.data(), expected) != 0) std::abort();
  return 0;
}
