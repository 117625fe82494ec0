// SPDX-License-Identifier: Apache-2.0
// safetensors: hand-computed and reference-written layouts byte for byte, writer → reader round trips of
// every dtype safetensors shares with cairn (ranks 0–4, empty tensors, metadata, strided views, streamed
// sources), and one clear error for each way a header can be corrupt.
#include <cairn/safetensors/safetensors.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace st = cairn::safetensors;
using cairn::dtype;
using cairn::errc;

namespace {

// The 8-byte little-endian length followed by `text`.
std::string with_length(std::string_view text, std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out.append(text);
}
// A file whose header is `json` (length exact, no padding) followed by `data`.
std::string file_of(std::string_view json, std::string_view data = {}) {
  return with_length(json, json.size()).append(data);
}

st::header parse(std::string_view file) {
  return st::parse_header(cairn::as_bytes(file), file.size(), "file \"t.safetensors\"");
}

// Expects parse_header to throw `code` with a message containing `needle`.
void expect_error(std::string_view file, errc code, std::string_view needle) {
  CAPTURE(file);
  try {
    (void)parse(file);
    FAIL("accepted");
  } catch (const cairn::error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

template <class F>
void expect_throw(F&& f, errc code, std::string_view needle) {
  try {
    f();
    FAIL("no exception");
  } catch (const cairn::error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

std::string slurp(const std::filesystem::path& p) { return std::string(cairn::as_chars(cairn_test::read_file(p).view())); }

cairn::host_array random_array(dtype t, cairn::shape s, std::mt19937& rng) {
  cairn::host_array a(t, std::move(s));
  for (auto& b : a.mutable_bytes()) b = static_cast<std::byte>(rng());
  return a;
}

std::vector<dtype> safetensors_dtypes() {
  std::vector<dtype> out;
  for (const auto& i : cairn::detail::dtype_table)
    if (!i.safetensors.empty()) out.push_back(i.type);
  return out;
}

}  // namespace

TEST_CASE("hand-computed layout: header length, padding and offsets byte for byte") {
  // {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}
  //  1 + 4 ("a":) + 15 ({"dtype":"F32",) + 12 ("shape":[2],) + 21 ("data_offsets":[0,8]}) = 53, + 1 (,) = 54,
  //  + 4 ("b":) + 14 ({"dtype":"U8",) + 12 + 22 ("data_offsets":[8,11]}) + 1 (}) = 107 bytes of JSON,
  //  padded with 5 spaces to N = 112 so the data section starts at 8 + 112 = 120, a multiple of 8.
  const std::string json =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})";
  REQUIRE(json.size() == 107);
  std::string expect = std::string("\x70\0\0\0\0\0\0\0", 8) + json + "     ";
  expect += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);  // 1.0f, -2.0f little-endian
  expect += std::string("\x01\x02\x03", 3);
  REQUIRE(expect.size() == 131);

  cairn_test::temp_dir dir;
  const float a[] = {1.0f, -2.0f};
  const std::uint8_t b[] = {1, 2, 3};
  auto av = cairn::host_array::from(std::span<const float>(a), {2});
  auto bv = cairn::host_array::from(std::span<const std::uint8_t>(b), {3});
  st::writer w(dir.path() / "x.safetensors", {.fsync = false});
  w.add("a", av);
  w.add("b", bv);
  CHECK(w.planned_header().data_offset == 120);
  w.finish();
  CHECK(slurp(dir.path() / "x.safetensors") == expect);

  const auto h = parse(expect);
  CHECK(h.data_offset == 120);
  CHECK(h.data_size == 11);
  REQUIRE(h.tensors.size() == 2);
  CHECK(h.tensors[0] == st::tensor_info{"a", dtype::float32, {2}, 0, 8});
  CHECK(h.tensors[1] == st::tensor_info{"b", dtype::uint8, {3}, 8, 11});
  CHECK(h.metadata.empty());

  st::reader r(dir.path() / "x.safetensors");
  CHECK(r.file_size() == 131);
  CHECK(r.read("a") == av);
  CHECK(r.read("b") == bv);
}

TEST_CASE("hand-computed layout with metadata") {
  // {"__metadata__":{"format":"pt"}, adds 1 + 14 + 1 + 15 + 1 = 32 bytes before the 106 after '{': 138,
  // padded with 6 spaces to N = 144.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})";
  REQUIRE(json.size() == 138);
  const std::string expect = std::string("\x90\0\0\0\0\0\0\0", 8) + json + "      " +
                             std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x01\x02\x03", 11);
  cairn_test::temp_dir dir;
  const float a[] = {1.0f, -2.0f};
  const std::uint8_t b[] = {1, 2, 3};
  st::writer w(dir.path() / "m.safetensors", {.fsync = false});
  const auto av = cairn::host_array::from(std::span<const float>(a), {2});
  const auto bv = cairn::host_array::from(std::span<const std::uint8_t>(b), {3});
  w.set_metadata("format", "np");
  w.add("a", av);
  w.add("b", bv);
  w.set_metadata("format", "pt");  // replaces, keeping the position
  w.finish();
  CHECK(slurp(dir.path() / "m.safetensors") == expect);
  const auto h = parse(expect);
  REQUIRE(h.metadata.size() == 1);
  CHECK(h.metadata[0] == st::metadata_entry{"format", "pt"});
  CHECK(*h.find_metadata("format") == "pt");
  CHECK(h.find_metadata("other") == nullptr);
}

TEST_CASE("a file written by the reference implementation (safetensors 0.8.0) reads, and cairn writes it identically") {
  // safetensors.numpy.save({"w": f32 [[1.5,-2],[0.25,8]], "ids": i16 [7,-1,300], "bf": bf16 [1,-3],
  //                         "e": u8 zeros((0,3))}, metadata={"format": "np"}): 298 bytes, N = 264.
  const std::string json =
      R"({"__metadata__":{"format":"np"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("bf":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},"ids":{"dtype":"I16","shape":[3],)"
      R"("data_offsets":[20,26]},"e":{"dtype":"U8","shape":[0,3],"data_offsets":[26,26]}}      )";
  const std::string data("\x00\x00\xc0\x3f\x00\x00\x00\xc0\x00\x00\x80\x3e\x00\x00\x00\x41"
                         "\x80\x3f\x40\xc0\x07\x00\xff\xff\x2c\x01",
                         26);
  const std::string file = with_length(json, 264) + data;
  REQUIRE(file.size() == 298);

  cairn_test::temp_dir dir;
  cairn_test::write_file(dir.path() / "ref.safetensors", cairn::as_bytes(file));
  st::reader r(dir.path() / "ref.safetensors");
  const auto& h = r.info();
  REQUIRE(h.tensors.size() == 4);
  CHECK(h.tensors[0].name == "w");
  CHECK(h.tensors[3] == st::tensor_info{"e", dtype::uint8, {0, 3}, 26, 26});
  auto w = r.read("w");
  CHECK(w.shape() == cairn::shape{2, 2});
  CHECK(std::vector<float>(w.values<float>().begin(), w.values<float>().end()) == std::vector<float>{1.5f, -2, 0.25f, 8});
  auto ids = r.read("ids");
  CHECK(std::vector<std::int16_t>(ids.values<std::int16_t>().begin(), ids.values<std::int16_t>().end()) ==
        std::vector<std::int16_t>{7, -1, 300});
  auto bf = r.read("bf");
  CHECK(static_cast<float>(bf.values<cairn::bfloat16>()[0]) == 1.0f);
  CHECK(static_cast<float>(bf.values<cairn::bfloat16>()[1]) == -3.0f);
  CHECK(r.read("e").num_bytes() == 0);

  // Declared in the reference's layout order, cairn's writer produces the same bytes.
  std::vector<cairn::host_array> keep;  // the writer holds views until finish
  for (const auto& t : h.tensors) keep.push_back(r.read(t.name));
  st::writer out2(dir.path() / "ours.safetensors", {.fsync = false});
  out2.set_metadata("format", "np");
  for (std::size_t i = 0; i < keep.size(); ++i) out2.add(h.tensors[i].name, keep[i]);
  out2.finish();
  CHECK(slurp(dir.path() / "ours.safetensors") == file);
}

TEST_CASE("round trip: every shared dtype, ranks 0-4, empty tensors") {
  const std::vector<cairn::shape> shapes = {{}, {5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}, {0}, {3, 0, 2}, {1, 1, 1, 1}};
  std::mt19937 rng(42);
  std::vector<std::pair<std::string, cairn::host_array>> arrays;
  for (dtype t : safetensors_dtypes())
    for (std::size_t i = 0; i < shapes.size(); ++i)
      arrays.emplace_back(std::string(cairn::name_of(t)) + "/" + std::to_string(i), random_array(t, shapes[i], rng));
  CHECK(arrays.size() == 17 * shapes.size());

  cairn_test::temp_dir dir;
  const auto path = dir.path() / "all.safetensors";
  st::writer w(path);
  for (const auto& [name, a] : arrays) w.add(name, a);
  w.set_metadata("format", "pt");
  w.set_metadata("unicode ✓", "значение \"quoted\" \\ back\nslash");
  w.finish();

  const auto bytes = slurp(path);
  const std::uint64_t n = cairn::load_le<std::uint64_t>(cairn::as_bytes(bytes).data());
  CHECK((8 + n) % 8 == 0);

  st::reader r(path);
  const auto& h = r.info();
  REQUIRE(h.tensors.size() == arrays.size());
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    const std::string& name = arrays[i].first;
    const cairn::host_array& a = arrays[i].second;
    CAPTURE(name);
    CHECK(h.tensors[i].name == name);  // laid out in the order added
    CHECK(h.tensors[i].begin == offset);
    CHECK(h.tensors[i].type == a.type());
    CHECK(h.tensors[i].shape == a.shape());
    offset = h.tensors[i].end;
    CHECK(r.read(name) == a);
    cairn::host_array into(a.type(), a.shape());
    r.read_into(name, into.mutable_view());
    CHECK(into == a);
  }
  CHECK(offset == h.data_size);
  REQUIRE(h.metadata.size() == 2);
  CHECK(*h.find_metadata("unicode ✓") == "значение \"quoted\" \\ back\nslash");

  // The law of the file comment: re-encoding the parsed header gives back tensors and metadata.
  const auto start = st::encode_header(h.tensors, h.metadata);
  std::string again(cairn::as_chars(start.view()));
  again.append(bytes, h.data_offset);
  const auto h2 = parse(again);
  CHECK(h2.tensors == h.tensors);
  CHECK(h2.metadata == h.metadata);
  CHECK(again == bytes);
}

TEST_CASE("a file of no tensors, and several zero-byte tensors at one offset") {
  const auto h = parse(file_of("{}"));
  CHECK(h.tensors.empty());
  CHECK(h.data_size == 0);
  const auto z = parse(file_of(
      R"({"b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
      R"("c":{"dtype":"I64","shape":[2,0],"data_offsets":[4,4]},"d":{"dtype":"F16","shape":[0],"data_offsets":[0,0]}})",
      "abcd"));
  REQUIRE(z.tensors.size() == 4);
  CHECK(z.tensors[0].name == "d");
  CHECK(z.tensors[1].name == "a");
  CHECK(z.tensors[2].name == "b");  // ties keep document order
  CHECK(z.tensors[3].name == "c");
  CHECK(z.find("c")->shape == cairn::shape{2, 0});
  CHECK(z.find("nope") == nullptr);
  // "__metadata__": null is no metadata, as for the reference; unknown members of a tensor are ignored.
  const auto m = parse(file_of(R"({"__metadata__":null,"a":{"dtype":"BOOL","shape":[],"data_offsets":[0,1],"x":1}})", "\x01"));
  CHECK(m.metadata.empty());
  CHECK(m.tensors.size() == 1);

  cairn_test::temp_dir dir;
  st::writer w(dir.path() / "empty.safetensors", {.fsync = false});
  w.finish();
  CHECK(slurp(dir.path() / "empty.safetensors") == with_length("{}      ", 8));
  CHECK(st::reader(dir.path() / "empty.safetensors").info().tensors.empty());
}

TEST_CASE("strided views are written and read through bounded staging") {
  // A transposed view of a 1000 x 1500 float32 array: 6 MB, so the 4 MiB staging splits it.
  std::mt19937 rng(7);
  const cairn::index_t rows = 1000, cols = 1500;
  auto base = random_array(dtype::float32, {rows, cols}, rng);
  const cairn::array_view transposed(base.bytes().data(), dtype::float32, {cols, rows},
                                     std::vector<cairn::index_t>{4, 4 * cols});
  const auto expect = cairn::host_array::copy_of(transposed);
  // And a sub-box of a rank-3 array (inner dimension dense, outer ones strided).
  auto cube = random_array(dtype::int16, {6, 7, 8}, rng);
  const auto corner = cube.view().sub(cairn::box({1, 2, 3}, {4, 3, 5}));

  cairn_test::temp_dir dir;
  const auto path = dir.path() / "strided.safetensors";
  st::writer w(path, {.fsync = false});
  w.add("t", transposed);
  w.add("corner", corner);
  w.finish();
  st::reader r(path);
  CHECK(r.read("t") == expect);
  CHECK(r.read("corner") == cairn::host_array::copy_of(corner));

  // read_into a strided destination: transpose back into a fresh base-shaped array.
  cairn::host_array back(dtype::float32, {rows, cols});
  const cairn::mutable_array_view back_t(back.mutable_bytes().data(), dtype::float32, {cols, rows},
                                         std::vector<cairn::index_t>{4, 4 * cols});
  r.read_into("t", back_t);
  CHECK(back == base);

  // read_bytes streams pieces of one tensor.
  const auto& t = r.tensor("t");
  std::vector<std::byte> piece(1000);
  r.read_bytes(t, 4000, piece);
  CHECK(std::memcmp(piece.data(), expect.bytes().data() + 4000, 1000) == 0);
  expect_throw([&] { r.read_bytes(t, t.num_bytes() - 10, piece); }, errc::invalid_argument, "exceed");
}

TEST_CASE("for_each_chunk tiles a shape in C order within the budget") {
  for (const cairn::shape& s : {cairn::shape{}, cairn::shape{10}, cairn::shape{3, 5, 7}, cairn::shape{4, 1, 9, 2},
                                cairn::shape{2, 0, 3}, cairn::shape{1000}}) {
    for (std::size_t budget : {std::size_t{1}, std::size_t{8}, std::size_t{24}, std::size_t{100}, std::size_t{1} << 20}) {
      CAPTURE(s);
      CAPTURE(budget);
      std::uint64_t expect_offset = 0;
      std::vector<cairn::index_t> seen;
      st::detail::for_each_chunk(s, 4, budget, [&](const cairn::box& chunk, std::uint64_t offset) {
        CHECK(offset == expect_offset);
        const auto n = static_cast<std::uint64_t>(chunk.num_elements());
        CHECK(n * 4 <= std::max<std::uint64_t>(budget, 4));
        cairn::for_each_point(chunk, [&](std::span<const cairn::index_t> p) {
          cairn::index_t linear = 0;
          for (std::size_t i = 0; i < p.size(); ++i) linear = linear * s[i] + p[i];
          seen.push_back(linear);
        });
        expect_offset += n * 4;
      });
      CHECK(expect_offset == static_cast<std::uint64_t>(s.num_elements()) * 4);
      for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<cairn::index_t>(i));
    }
  }
}

TEST_CASE("byte sources stream generated tensors; a failed finish leaves nothing and can be retried") {
  cairn_test::temp_dir dir;
  const auto path = dir.path() / "gen.safetensors";
  const std::uint64_t count = 3'000'000;  // 12 MB of uint32: three staging rounds
  std::vector<std::pair<std::uint64_t, std::size_t>> calls;
  bool fail_once = true;
  auto source = [&](std::uint64_t offset, cairn::mutable_byte_view out) {
    if (fail_once && offset > 0) {
      fail_once = false;
      throw cairn::error(errc::io, "source failed");
    }
    calls.emplace_back(offset, out.size());
    for (std::size_t i = 0; i < out.size(); i += 4) {
      const auto v = static_cast<std::uint32_t>((offset + i) / 4);
      std::memcpy(out.data() + i, &v, 4);
    }
  };
  st::writer w(path, {.fsync = false});
  w.add("gen", dtype::uint32, {static_cast<cairn::index_t>(count)}, source);
  expect_throw([&] { w.finish(); }, errc::io, "source failed");
  CHECK(!std::filesystem::exists(path));
  CHECK(std::filesystem::is_empty(dir.path()));  // the temporary file is gone too
  calls.clear();
  w.finish();
  REQUIRE(calls.size() == 3);
  CHECK(calls[0] == std::pair<std::uint64_t, std::size_t>{0, std::size_t{4} << 20});
  CHECK(calls[2].first + calls[2].second == count * 4);
  st::reader r(path);
  auto a = r.read("gen");
  auto v = a.values<std::uint32_t>();
  bool ok = true;
  for (std::uint64_t i = 0; i < count; ++i) ok = ok && v[i] == i;
  CHECK(ok);

  // Writing over an existing file replaces it atomically.
  const std::uint8_t one[] = {9};
  st::writer w2(path, {.fsync = true});
  const auto x = cairn::host_array::from(std::span<const std::uint8_t>(one), {1});
  w2.add("x", x);
  w2.finish();
  CHECK(st::reader(path).info().tensors.size() == 1);
  expect_throw([&] { w2.finish(); }, errc::invalid_argument, "already finished");
  expect_throw([&] { w2.set_metadata("a", "b"); }, errc::invalid_argument, "already finished");
}

TEST_CASE("writer rejects what safetensors cannot hold, naming tensor and dtype") {
  cairn_test::temp_dir dir;
  st::writer w(dir.path() / "w.safetensors");
  for (dtype t : {dtype::int4, dtype::uint4, dtype::complex128, dtype::float8_e4m3fnuz, dtype::float8_e3m4}) {
    cairn::host_array a(t, {2});
    expect_throw([&] { w.add("p", a); }, errc::unsupported,
                 "tensor \"p\": dtype " + std::string(cairn::name_of(t)) + " has no safetensors equivalent");
  }
  cairn::host_array a(dtype::float32, {2});
  w.add("p", a);
  expect_throw([&] { w.add("p", a); }, errc::invalid_argument, "tensor \"p\": added twice");
  expect_throw([&] { w.add("__metadata__", a); }, errc::invalid_argument, "reserved");
  expect_throw([&] { w.add(std::string("bad\xff"), a); }, errc::invalid_argument, "not valid UTF-8");
  expect_throw([&] { w.set_metadata("k", std::string("\xc0\x80")); }, errc::invalid_argument, "not valid UTF-8");
  const cairn::array_view device(a.bytes().data(), dtype::float32, {2}, cairn::memory_space::cuda(0));
  expect_throw([&] { w.add("d", device); }, errc::unsupported, "host memory");

  std::vector<st::tensor_info> dup = {{"x", dtype::uint8, {1}, 0, 1}, {"x", dtype::uint8, {1}, 1, 2}};
  expect_throw([&] { (void)st::encode_header(dup); }, errc::invalid_argument, "tensor \"x\" appears twice");
  std::vector<st::tensor_info> c128 = {{"c", dtype::complex128, {1}, 0, 16}};
  expect_throw([&] { (void)st::encode_header(c128); }, errc::unsupported, "tensor \"c\": dtype complex128");
}

TEST_CASE("reader errors: missing file, missing tensor, mismatched targets") {
  cairn_test::temp_dir dir;
  expect_throw([&] { st::reader r(dir.path() / "none.safetensors"); }, errc::not_found, "none.safetensors");
  expect_throw([&] { st::reader r(dir.path()); }, errc::io, "directory");
  const float v[] = {1, 2, 3, 4, 5, 6};
  st::writer w(dir.path() / "r.safetensors", {.fsync = false});
  auto a = cairn::host_array::from(std::span<const float>(v), {2, 3});
  w.add("a", a);
  w.finish();
  st::reader r(dir.path() / "r.safetensors");
  expect_throw([&] { (void)r.read("b"); }, errc::not_found, "no tensor \"b\"");
  cairn::host_array wrong_type(dtype::int32, {2, 3});
  expect_throw([&] { r.read_into("a", wrong_type.mutable_view()); }, errc::type_mismatch, "float32 != target int32");
  cairn::host_array wrong_shape(dtype::float32, {3, 2});
  expect_throw([&] { r.read_into("a", wrong_shape.mutable_view()); }, errc::shape_mismatch, "[2,3] != target [3,2]");

  // Concurrent reads share one descriptor.
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k) good += r.read("a") == a ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  CHECK(good == 400);

  // A file truncated inside its header or length field.
  cairn_test::write_file(dir.path() / "short.safetensors", cairn::as_bytes(std::string_view("\x10\0\0", 3)));
  expect_throw([&] { st::reader r2(dir.path() / "short.safetensors"); }, errc::corrupted,
               "a file of 3 bytes is too short for the 8-byte header length");
  const auto full = slurp(dir.path() / "r.safetensors");
  cairn_test::write_file(dir.path() / "cut.safetensors", cairn::as_bytes(std::string_view(full).substr(0, 40)));
  expect_throw([&] { st::reader r3(dir.path() / "cut.safetensors"); }, errc::corrupted, "exceeds the 32 bytes after the length field");
  cairn_test::write_file(dir.path() / "cut2.safetensors", cairn::as_bytes(std::string_view(full).substr(0, full.size() - 1)));
  expect_throw([&] { st::reader r4(dir.path() / "cut2.safetensors"); }, errc::corrupted, "end exceeds the data section of 23 bytes");
}

TEST_CASE("every corruption gives a precise error") {
  const std::string ok_tensor = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, 'x');
  CHECK(parse(file_of("{" + ok_tensor + "}", eight)).tensors.size() == 1);

  // Length field.
  expect_error(std::string("\x01\x02\x03\x04\x05", 5), errc::corrupted, "a file of 5 bytes is too short for the 8-byte header length");
  expect_error(with_length("{}", 100'000'001), errc::corrupted, "header length 100000001 exceeds the limit of 100000000 bytes");
  expect_error(with_length("{}", UINT64_MAX), errc::corrupted, "exceeds the limit");
  expect_error(with_length("{}", 3), errc::corrupted, "header length 3 exceeds the 2 bytes after the length field");
  CHECK_THROWS_AS((void)st::parse_header(cairn::as_bytes(file_of("{}")), 100, "f"), cairn::error);  // bytes end early

  // JSON.
  expect_error(file_of(""), errc::corrupted, "t.safetensors\" header");
  expect_error(file_of("{\"a\":"), errc::corrupted, "invalid JSON");
  expect_error(file_of("[1,2]"), errc::corrupted, "header: expected a JSON object, found array");
  expect_error(file_of("{} x"), errc::corrupted, "header");
  expect_error(file_of("{\"a\":{},\"a\":{}}"), errc::corrupted, "duplicate");
  expect_error(file_of("{\"\xff\":1}"), errc::corrupted, "UTF-8");

  // Metadata.
  expect_error(file_of(R"({"__metadata__":{"k":1}})"), errc::corrupted, "\"__metadata__\" \"k\": expected a string, found integer");
  expect_error(file_of(R"({"__metadata__":[]})"), errc::corrupted, "\"__metadata__\": expected an object of strings");

  // Tensor fields.
  expect_error(file_of(R"({"a":1})"), errc::corrupted, "tensor \"a\": expected an object with dtype, shape and data_offsets");
  expect_error(file_of(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight), errc::corrupted, "tensor \"a\": missing \"dtype\"");
  expect_error(file_of(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", eight), errc::corrupted, "missing \"shape\"");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2]}})", eight), errc::corrupted, "missing \"data_offsets\"");
  expect_error(file_of(R"({"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})", eight), errc::corrupted, "dtype: expected a string");
  expect_error(file_of(R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", "x"), errc::unsupported,
               "tensor \"a\": dtype \"F4\" is not a safetensors dtype cairn supports (BOOL, I8");
  expect_error(file_of(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", eight), errc::unsupported, "dtype \"f32\"");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", eight), errc::corrupted,
               "tensor \"a\": shape: -1 is negative");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight), errc::corrupted,
               "shape: expected integers, found double");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", eight), errc::corrupted,
               "shape: expected an array of integers, found string");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", eight),
               errc::corrupted, "exceeds 9223372036854775807");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
               errc::corrupted, "shape [4294967296,4294967296]: element count overflows int64");
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", "x"),
               errc::unsupported, "rank 33 exceeds");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), errc::corrupted,
               "tensor \"a\": data_offsets [8,0]: begin > end");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", eight), errc::corrupted,
               "data_offsets: -1 is negative");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", eight), errc::corrupted,
               "expected [begin, end], found 3 integers");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", eight), errc::corrupted,
               "data_offsets [0,16]: end exceeds the data section of 8 bytes");
  expect_error(file_of(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), errc::corrupted,
               "tensor \"a\": F32[3] needs 12 bytes, data_offsets [0,8] hold 8");
  expect_error(file_of(R"({"a":{"dtype":"C64","shape":[4611686018427387904],"data_offsets":[0,8]}})", eight),
               errc::corrupted, "needs > 2^64 bytes");

  // Layout: overlap, holes (start, middle, end), trailing bytes after an empty header.
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", eight),
               errc::corrupted, "tensors \"a\" [0,6) and \"b\" [4,8) overlap");
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "abcd"),
               errc::corrupted, "overlap");
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", eight), errc::corrupted,
               "bytes [0,4) of the data section belong to no tensor (the next one is \"a\")");
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", eight),
               errc::corrupted, "bytes [2,4) of the data section belong to no tensor (the next one is \"b\")");
  expect_error(file_of(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", eight), errc::corrupted,
               "bytes [4,8) at the end of the 8-byte data section belong to no tensor");
  expect_error(file_of("{}", "x"), errc::corrupted, "bytes [0,1) at the end of the 1-byte data section belong to no tensor");
}
