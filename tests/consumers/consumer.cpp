// SPDX-License-Identifier: Apache-2.0
// A tiny program built against cairn as a consumer would: it must compile with only the public
// headers and run.
#include <cairn/cairn.hpp>

#include <cstdio>

int main() {
  const float w[] = {1.0f, 2.0f, 3.0f, 4.0f};
  auto a = cairn::host_array::from(std::span<const float>(w), cairn::shape{2, 2});
  auto frame = cairn::codec::zstd_compress(a.bytes(), 3);
  cairn::host_array b(cairn::dtype::float32, cairn::shape{2, 2});
  cairn::codec::zstd_decompressor d;
  d.decompress_into(frame.view(), b.mutable_bytes(), "consumer array");
  cairn::json::value meta = cairn::json::value::object();
  meta["shape"] = cairn::json::parse(cairn::to_string(a.shape()), "shape");
  std::printf("cairn %s consumer: %s crc32c=%08x equal=%d\n", cairn::version_string,
              cairn::json::to_string(meta).c_str(), cairn::crc32c(a.bytes()), a == b ? 1 : 0);
  return a == b ? 0 : 1;
}
