// SPDX-License-Identifier: Apache-2.0
// zarr arrays: every Orbax fixture array reads with its known values (and the damaged fixtures fail
// clearly), write_array → array::read round trips for every dtype, ranks 0–4, v2 and v3, compressed or
// not, reads that touch exactly the intersecting chunks, strided outputs, and missing chunks.
#include <cairn/kvstore/memory.hpp>
#include <cairn/zarr/array.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support/shared.hpp"
#include "zarr/fixtures.hpp"

namespace zarr = cairn::zarr;
namespace kv = cairn::kvstore;
using cairn::box;
using cairn::byte_buffer;
using cairn::dtype;
using cairn::errc;
using cairn::host_array;
using cairn::index_t;

namespace {

/// Delegates to another driver and counts the reads of each key.
class counting_driver final : public kv::driver {
 public:
  explicit counting_driver(std::shared_ptr<kv::driver> base) : base_(std::move(base)) {}
  kv::read_result read(std::string_view key, kv::byte_range range = {}) override {
    {
      std::lock_guard lock(mutex_);
      ++reads_[std::string(key)];
    }
    return base_->read(key, range);
  }
  // Counted as reads too (a fetch is a fetch), and on their own.
  kv::read_into_status read_into(std::string_view key, std::uint64_t offset, cairn::mutable_byte_view dst,
                                 std::uint64_t value_size) override {
    {
      std::lock_guard lock(mutex_);
      ++reads_[std::string(key)];
      ++reads_into_[std::string(key)];
    }
    return base_->read_into(key, offset, dst, value_size);
  }
  // A handle over the value as it is now, whose range reads are counted per key.
  std::shared_ptr<kv::value_reader> open_value(std::string_view key) override {
    auto r = base_->read(key);
    if (r.missing()) return nullptr;
    struct counted final : kv::value_reader {
      counted(cairn::shared_bytes b, counting_driver* d, std::string k) : bytes(std::move(b)), owner(d), key(std::move(k)) {}
      std::uint64_t size() const noexcept override { return bytes.size(); }
      cairn::shared_bytes read(std::uint64_t offset, std::uint64_t length) override {
        owner->count(owner->ranges_, key);
        return bytes.slice(offset, length);
      }
      void read_into(std::uint64_t offset, cairn::mutable_byte_view dst) override {
        owner->count(owner->pieces_, key);
        std::memcpy(dst.data(), bytes.data() + offset, dst.size());
      }
      cairn::shared_bytes bytes;
      counting_driver* owner;
      std::string key;
    };
    return std::make_shared<counted>(*r.value, this, std::string(key));
  }
  void write(std::string_view key, cairn::byte_view value) override { base_->write(key, value); }
  bool erase(std::string_view key) override { return base_->erase(key); }
  std::vector<kv::list_entry> list(const kv::key_range& range = {}) override { return base_->list(range); }
  std::string describe() const override { return "counting " + base_->describe(); }

  std::map<std::string, int> take_reads() {
    std::lock_guard lock(mutex_);
    return std::exchange(reads_, {});
  }
  std::map<std::string, int> take_reads_into() {
    std::lock_guard lock(mutex_);
    return std::exchange(reads_into_, {});
  }
  /// Range reads into a caller's buffer through `open_value` handles (a large frame's pieces).
  std::map<std::string, int> take_pieces() {
    std::lock_guard lock(mutex_);
    return std::exchange(pieces_, {});
  }
  void count(std::map<std::string, int>& counter, const std::string& key) {
    std::lock_guard lock(mutex_);
    ++counter[key];
  }

 private:
  std::shared_ptr<kv::driver> base_;
  std::mutex mutex_;
  std::map<std::string, int> reads_;
  std::map<std::string, int> reads_into_;
  std::map<std::string, int> pieces_;
  std::map<std::string, int> ranges_;
};

/// Random elements of `t` (booleans 0/1), reproducible from `seed`.
host_array random_array(dtype t, const cairn::shape& s, unsigned seed) {
  host_array a(t, s);
  std::mt19937 rng(seed);
  for (auto& b : a.mutable_bytes()) b = static_cast<std::byte>(t == dtype::bool_ ? rng() & 1u : rng() & 0xFFu);
  return a;
}

/// Writes `whole` with `m` under `prefix` of `store`.
void write(const kv::store& store, const zarr::array_metadata& m, const host_array& whole) {
  zarr::write_array(m, whole, [&](std::string key, byte_buffer bytes) { kv::write(store, key, bytes); });
}

std::vector<std::int32_t> ints(const host_array& a) {
  const auto v = a.values<std::int32_t>();
  return {v.begin(), v.end()};
}

cairn::error error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const cairn::error& e) {
    return e;
  }
  FAIL("no cairn::error was thrown");
  return cairn::error(errc::corrupted, "unreachable");
}

}  // namespace

TEST_CASE("every fixture array reads with the values Orbax saved, in both zarr versions") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  std::map<int, int> arrays_by_format;
  for (const auto& doc : cairn_test::fixture_metadata(*shared)) {
    CAPTURE(doc.db.string());
    CAPTURE(doc.name);
    const auto store = cairn_test::open_database(doc.db);
    const auto arr = zarr::array::open(store / (doc.name + "/"), doc.name);
    CHECK(arr.type() == dtype::int32);
    if (doc.name == "a") {
      CHECK(ints(arr.read_all()) == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
      CHECK(ints(arr.read(cairn::parse_box("[2:5]"))) == std::vector<std::int32_t>{2, 3, 4});
    } else {
      REQUIRE(doc.name == "b.c");
      CHECK(ints(arr.read_all()) == std::vector<std::int32_t>{1, 2, 3});
      CHECK(ints(arr.read(cairn::parse_box("[1:3]"))) == std::vector<std::int32_t>{2, 3});
    }
    ++arrays_by_format[arr.metadata().zarr_format];
  }
  CHECK(arrays_by_format[2] >= 96);
  CHECK(arrays_by_format[3] >= 52);
}

TEST_CASE("the damaged fixtures fail with an error that names what is missing") {
  auto shared = cairn_test::require_shared_dir();
  if (!shared) return;
  int no_manifest = 0, no_data = 0;
  for (const auto& item : cairn_test::damaged_items(*shared)) {
    CAPTURE(item.string());
    const cairn::error e = error_of([&] {
      const auto store = cairn_test::open_database(item);
      (void)zarr::array::open(store / "a/", "a").read_all();
    });
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(e.code() == errc::not_found);
    if (what.find("\"manifest.ocdbt\" is missing") != std::string::npos) ++no_manifest;
    else if (what.find("data file \"d/") != std::string::npos) ++no_data;
    else FAIL("unclear error: " << what);
  }
  CHECK(no_manifest >= 3);
  CHECK(no_data >= 3);
}

TEST_CASE("write_array then read: every dtype, ranks 0-4, edge chunks, v2 and v3, compressed or not") {
  const index_t dims[] = {5, 3, 7, 2};
  const index_t chunk[] = {2, 3, 3, 1};  // 5/2 and 7/3 leave padded edge chunks
  int combinations = 0;
  for (std::size_t ti = 0; ti < cairn::dtype_count; ++ti) {
    const auto t = static_cast<dtype>(ti);
    for (std::size_t rank = 0; rank <= 4; ++rank) {
      for (int format : {2, 3}) {
        for (bool compress : {true, false}) {
          CAPTURE(t);
          CAPTURE(rank);
          CAPTURE(format);
          CAPTURE(compress);
          const cairn::shape s(std::vector<index_t>(dims, dims + rank));
          const auto m = zarr::orbax_metadata(format, t, s, std::vector<index_t>(chunk, chunk + rank), compress);
          const host_array original = random_array(t, s, static_cast<unsigned>(ti * 100 + rank * 10 + format + compress));
          auto store = kv::open_memory();
          write(store / "p.q/", m, original);

          // Exactly the metadata key and one key per grid chunk.
          std::set<std::string> expect{std::string(zarr::metadata_key(format))};
          zarr::for_each_chunk(m, box(s), [&](std::span<const index_t> k) { expect.insert(zarr::chunk_key(m, k)); });
          std::set<std::string> keys;
          for (const auto& e : kv::list(store / "p.q/")) keys.insert(e.key);
          CHECK(keys == expect);
          index_t grid = 1;
          for (index_t g : zarr::grid_shape(m)) grid *= g;
          CHECK(keys.size() == static_cast<std::size_t>(grid) + 1);

          const auto arr = zarr::array::open(store / "p.q/", "p.q");
          CHECK(arr.metadata() == m);
          CHECK(arr.read_all() == original);
          if (rank >= 1) {
            // A sub-box that cuts chunks in every dimension.
            std::vector<index_t> origin(rank, 1), extent(rank);
            for (std::size_t i = 0; i < rank; ++i) extent[i] = dims[i] - 1;
            const box sub(origin, extent);
            CHECK(arr.read(sub) == host_array::copy_of(original.view().sub(sub)));

            // The last chunk is padded with the fill value (zeros) past the array's edge.
            std::vector<index_t> last = zarr::grid_shape(m);
            for (auto& g : last) --g;
            const auto stored = kv::read_required(store / "p.q/", zarr::chunk_key(m, last));
            host_array padded(t, cairn::shape(m.chunk_shape));
            zarr::decode_chunk(m, stored.view(), padded.mutable_view(), "last chunk");
            const box cbox = zarr::chunk_box(m, last);
            const std::size_t esize = cairn::size_of(t);
            std::size_t padding = 0;
            std::size_t n = 0;
            cairn::for_each_point(box(cairn::shape(m.chunk_shape)), [&](std::span<const index_t> p) {
              bool outside = false;
              for (std::size_t i = 0; i < rank; ++i) outside = outside || cbox.origin(i) + p[i] >= dims[i];
              if (outside) {
                for (std::size_t b = 0; b < esize; ++b) padding += padded.bytes()[n * esize + b] != std::byte{0};
              }
              ++n;
            });
            CHECK(padding == 0);
          }
          ++combinations;
        }
      }
    }
  }
  CHECK(combinations == 25 * 5 * 2 * 2);
}

TEST_CASE("raw chunks wholly inside the region are read straight into the destination; anything unusual is read as before") {
  for (int format : {2, 3}) {
    for (bool start : {false, true}) {
      if (format == 2 && start) continue;
      CAPTURE(format);
      CAPTURE(start);
      auto m = zarr::orbax_metadata(format, dtype::int32, {6, 8}, {2, 8}, /*compress=*/false);  // rows: contiguous in the array
      if (start) m.index_location = zarr::shard_index_location::start;
      const host_array original = random_array(dtype::int32, {6, 8}, 21);
      auto counting = std::make_shared<counting_driver>(kv::open_memory().get_driver());
      const kv::store store(counting, "w/");
      write(store, m, original);
      const auto arr = zarr::array::open(store, "w");
      (void)counting->take_reads_into();
      CHECK(arr.read_all() == original);
      CHECK(counting->take_reads_into().size() == 3);  // every chunk: straight into the array
      CHECK(arr.read(cairn::parse_box("[1:5, 2:7]")) == host_array::copy_of(original.view().sub(cairn::parse_box("[1:5, 2:7]"))));
      CHECK(counting->take_reads_into().empty());  // chunks only partly inside: decoded as before
      // A shard whose index does not point at exactly the chunk's bytes (here: the inner chunk marked
      // missing) is read the usual way: fill values, not the bytes that happen to be there.
      if (format == 3) {
        auto bytes = cairn::byte_buffer(kv::read_required(store, "c/2/0").view());
        std::byte* index = bytes.data() + (start ? 0 : bytes.size() - 20);
        std::memset(index, 0xff, 16);
        cairn::store_le<std::uint32_t>(index + 16, cairn::crc32c(cairn::byte_view(index, 16)));
        kv::write(store, "c/2/0", bytes.view());
        const host_array got = arr.read_all();
        CHECK(got.values<std::int32_t>()[5 * 8 + 7] == 0);  // the fill value
        CHECK(got.values<std::int32_t>()[0] == original.values<std::int32_t>()[0]);
      }
      // A chunk of the wrong size is reported as before.
      const std::string last = format == 2 ? "2.0" : "c/2/0";
      kv::write(store, last, cairn::as_bytes("short"));
      CHECK_THROWS_WITH_AS(arr.read_all(), doctest::Contains("bytes"), cairn::error);
    }
  }
}

TEST_CASE("large zstd chunks are decoded into the destination while they are read in pieces; anything unusual as before") {
  for (int format : {2, 3}) {
    for (bool compressible : {false, true}) {
      CAPTURE(format);
      CAPTURE(compressible);
      auto m = zarr::orbax_metadata(format, dtype::uint8, {3, 9 << 20}, {1, 9 << 20});  // 9 MiB chunks, the last row alone
      m.zstd_min_ratio = 1.1;                                                          // random bytes: raw blocks
      host_array original = random_array(dtype::uint8, {3, 9 << 20}, 5);
      if (compressible)
        for (std::size_t i = 0; i < original.mutable_bytes().size(); ++i) original.mutable_bytes()[i] = static_cast<std::byte>(i / 1000 % 7);
      auto counting = std::make_shared<counting_driver>(kv::open_memory().get_driver());
      const kv::store store(counting, "w/");
      write(store, m, original);
      const auto arr = zarr::array::open(store, "w");
      (void)counting->take_reads();
      CHECK(arr.read_all() == original);
      // Each chunk went through its handle in pieces of 8 MiB (a raw 9 MiB frame: 2), nothing was read whole.
      const auto pieces = counting->take_pieces();
      CHECK(pieces.size() == 3);
      for (const auto& [key, n] : pieces) CHECK(n == (compressible ? 1 : 2));
      for (const auto& [key, n] : counting->take_reads()) CHECK_MESSAGE(key.find("/c") == std::string::npos, key);
      // A region that cuts chunks is read as before.
      const box cut = cairn::parse_box("[1:3, 5:100]");
      CHECK(arr.read(cut) == host_array::copy_of(original.view().sub(cut)));
      CHECK(counting->take_pieces().empty());

      // A damaged frame is reported exactly as the usual path reports it (here: its magic number).
      const std::string last = format == 2 ? "2.0" : "c/2/0";
      const byte_buffer good(kv::read_required(store, last).view());
      byte_buffer bad(good.view());
      bad[0] ^= std::byte{0x40};
      kv::write(store, last, bad.view());
      const std::string message = error_of([&] { (void)arr.read_all(); }).what();
      CHECK(message.find("w/" + last) != std::string::npos);
      host_array whole(dtype::uint8, {1, 9 << 20});
      const std::string usual = error_of([&] { zarr::decode_chunk(m, bad.view(), whole.mutable_view(), "x"); }).what();
      const std::string tail = usual.substr(usual.find(": x") + 3);  // after the "x" that named the chunk
      CHECK(message.substr(message.size() - std::min(message.size(), tail.size())) == tail);
      // A truncated chunk, too.
      kv::write(store, last, good.view().first(good.size() - 100));
      CHECK(error_of([&] { (void)arr.read_all(); }).code() == errc::corrupted);
      if (format == 3) {
        // A shard whose index marks the inner chunk missing gives fill values, as before.
        byte_buffer missing(good.view());
        std::byte* index = missing.data() + missing.size() - 20;
        std::memset(index, 0xff, 16);
        cairn::store_le<std::uint32_t>(index + 16, cairn::crc32c(cairn::byte_view(index, 16)));
        kv::write(store, last, missing.view());
        const host_array got = arr.read_all();
        CHECK(got.bytes()[2 * (9 << 20) + 5] == std::byte{0});
        CHECK(got.bytes()[5] == original.bytes()[5]);
      }
      kv::write(store, last, good.view());
      CHECK(arr.read_all() == original);
    }
  }
}

TEST_CASE("shards with several inner chunks, index first, and a non-zero fill value round-trip") {
  auto m = zarr::orbax_metadata(3, dtype::float32, {9, 10}, {4, 6});
  m.inner_chunk_shape = {2, 3};
  m.index_location = zarr::shard_index_location::start;
  m.fill_value = 2.5;
  const host_array original = random_array(dtype::float32, {9, 10}, 7);
  auto store = kv::open_memory();
  write(store, m, original);
  const auto arr = zarr::array::open(store, "sharded");
  CHECK(arr.metadata() == m);
  CHECK(arr.read_all() == original);
  CHECK(arr.read(cairn::parse_box("[3:8, 5:9]")) == host_array::copy_of(original.view().sub(cairn::parse_box("[3:8, 5:9]"))));
  // The padding of edge shards holds the fill value.
  host_array last(dtype::float32, {4, 6});
  zarr::decode_chunk(m, kv::read_required(store, "c/2/1").view(), last.mutable_view(), "c/2/1");
  CHECK(last.values<float>()[4 * 6 - 1] == 2.5f);  // element (11, 11): outside the array

  // Unsharded v3 with big-endian elements: written swapped, read back unswapped.
  auto mu = zarr::orbax_metadata(3, dtype::uint16, {5, 3}, {2, 2});
  mu.sharded = false;
  mu.inner_chunk_shape.clear();
  mu.byte_order = std::endian::big;
  mu.zstd_level.reset();
  const std::uint16_t ramp[15] = {0x0102, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const host_array ou = host_array::from<std::uint16_t>(ramp, {5, 3});
  auto storeu = kv::open_memory();
  write(storeu, mu, ou);
  const auto c00 = kv::read_required(storeu, "c/0/0");
  REQUIRE(c00.size() == 2 * 2 * 2);
  CHECK(c00.data()[0] == std::byte{0x01});  // big-endian 0x0102
  CHECK(c00.data()[1] == std::byte{0x02});
  const zarr::array au(storeu, "unsharded", zarr::parse_metadata(cairn::as_chars(kv::read_required(storeu, "zarr.json").view()), "u"));
  CHECK(au.metadata() == mu);
  CHECK(au.read_all() == ou);

  // v2 with fill 5 and '/' separators.
  auto m2 = zarr::orbax_metadata(2, dtype::int32, {5, 5}, {2, 2});
  m2.fill_value = 5;
  m2.separator = '/';
  auto store2 = kv::open_memory();
  const host_array o2 = random_array(dtype::int32, {5, 5}, 8);
  write(store2, m2, o2);
  CHECK(kv::read(store2, "2/2"));
  const auto a2 = zarr::array::open(store2, "slashes");
  CHECK(a2.read_all() == o2);
  host_array corner(dtype::int32, {2, 2});
  zarr::decode_chunk(m2, kv::read_required(store2, "2/2").view(), corner.mutable_view(), "2/2");
  CHECK(ints(corner)[1] == 5);
  CHECK(ints(corner)[3] == 5);
}

TEST_CASE("a read fetches exactly the chunks that intersect the region, each once") {
  for (int format : {2, 3}) {
    CAPTURE(format);
    const auto m = zarr::orbax_metadata(format, dtype::int32, {10, 9}, {3, 4});
    std::vector<std::int32_t> values(90);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::int32_t>(i);
    const host_array original = host_array::from<std::int32_t>(values, {10, 9});
    auto counting = std::make_shared<counting_driver>(kv::open_memory().get_driver());
    const kv::store store(counting, "w/");
    write(store, m, original);
    const auto arr = zarr::array::open(store, "w");
    counting->take_reads();

    std::mt19937 rng(format);
    int boxes = 0;
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<index_t> origin(2), extent(2);
      for (std::size_t i = 0; i < 2; ++i) {
        const index_t n = m.shape[i];
        const index_t a = static_cast<index_t>(rng() % static_cast<unsigned>(n + 1));
        const index_t b = static_cast<index_t>(rng() % static_cast<unsigned>(n + 1));
        origin[i] = std::min(a, b);
        extent[i] = std::max(a, b) - origin[i];
      }
      const box region(origin, extent);
      CAPTURE(region);
      const host_array got = arr.read(region);
      CHECK(got == host_array::copy_of(original.view().sub(region)));

      std::map<std::string, int> expect;
      std::vector<std::vector<index_t>> planned;
      for (index_t i = 0; i < 4; ++i)
        for (index_t j = 0; j < 3; ++j) {
          const std::vector<index_t> k{i, j};
          if (cairn::intersect(zarr::chunk_box(m, k), region).empty()) continue;
          expect["w/" + zarr::chunk_key(m, k)] = 1;
          planned.push_back(k);
        }
      CHECK(counting->take_reads() == expect);
      CHECK(arr.chunks_for(region) == planned);
      ++boxes;
    }
    CHECK(boxes == 300);
    // A single element reads a single chunk.
    (void)arr.read(cairn::parse_box("[4:5, 8:9]"));
    CHECK(counting->take_reads() == std::map<std::string, int>{{"w/" + zarr::chunk_key(m, std::vector<index_t>{1, 2}), 1}});
  }
}

TEST_CASE("reading into a strided view leaves everything outside it untouched") {
  const auto m = zarr::orbax_metadata(3, dtype::int16, {6, 5}, {4, 2});
  const host_array original = random_array(dtype::int16, {6, 5}, 3);
  auto store = kv::open_memory();
  write(store, m, original);
  const auto arr = zarr::array::open(store, "s");
  host_array big(dtype::int16, {10, 12});
  std::memset(big.mutable_bytes().data(), 0xAB, big.num_bytes());
  const box region = cairn::parse_box("[1:6, 1:5]");
  const box target = cairn::parse_box("[3:8, 6:10]");
  arr.read(region, big.mutable_view().sub(target));
  CHECK(host_array::copy_of(big.view().sub(target)) == host_array::copy_of(original.view().sub(region)));
  std::size_t untouched = 0;
  const auto v = big.values<std::int16_t>();
  for (index_t r = 0; r < 10; ++r)
    for (index_t c = 0; c < 12; ++c)
      if (!target.contains(std::vector<index_t>{r, c}))
        untouched += v[static_cast<std::size_t>(r * 12 + c)] == static_cast<std::int16_t>(0xABAB);
  CHECK(untouched == 120 - 20);
}

TEST_CASE("missing chunks: an error naming the key, or the fill value when allowed") {
  for (int format : {2, 3}) {
    CAPTURE(format);
    auto m = zarr::orbax_metadata(format, dtype::int32, {4, 4}, {2, 2});
    m.fill_value = 9;
    const host_array original = random_array(dtype::int32, {4, 4}, 4);
    auto store = kv::open_memory();
    write(store / "arr/", m, original);
    const std::string key = zarr::chunk_key(m, std::vector<index_t>{1, 0});
    REQUIRE(kv::erase(store / "arr/", key));
    const auto arr = zarr::array::open(store / "arr/", "arr");

    const cairn::error e = error_of([&] { (void)arr.read_all(); });
    CHECK(e.code() == errc::not_found);
    CHECK(std::string(e.what()).find("array \"arr\"") != std::string::npos);
    CHECK(std::string(e.what()).find("\"arr/" + key + "\"") != std::string::npos);
    // Regions that avoid the missing chunk still read.
    CHECK(arr.read(cairn::parse_box("[0:2, 0:4]")) == host_array::copy_of(original.view().sub(cairn::parse_box("[0:2, 0:4]"))));

    const host_array filled = arr.read_all({.missing_chunk_is_error = false});
    const auto v = filled.values<std::int32_t>();
    const auto o = original.values<std::int32_t>();
    for (std::size_t r = 0; r < 4; ++r)
      for (std::size_t c = 0; c < 4; ++c)
        CHECK(v[r * 4 + c] == (r >= 2 && c < 2 ? 9 : o[r * 4 + c]));
  }
}

TEST_CASE("open and read reject what they cannot serve, naming the array") {
  auto store = kv::open_memory();
  const cairn::error missing = error_of([&] { (void)zarr::array::open(store / "x/", "x"); });
  CHECK(missing.code() == errc::not_found);
  CHECK(std::string(missing.what()).find("array \"x\"") != std::string::npos);
  CHECK(std::string(missing.what()).find("\"x/.zarray\"") != std::string::npos);
  CHECK(std::string(missing.what()).find("\"x/zarr.json\"") != std::string::npos);

  // A .zarray that holds a v3 document.
  kv::write(store, "y/.zarray", cairn::as_bytes(zarr::to_json(zarr::orbax_metadata(3, dtype::int32, {8}, {8}))));
  const cairn::error swapped = error_of([&] { (void)zarr::array::open(store / "y/", "y"); });
  CHECK(swapped.code() == errc::corrupted);
  CHECK(std::string(swapped.what()).find("\"y/.zarray\"") != std::string::npos);

  // Unsupported metadata is reported with the key.
  std::string f_order = zarr::to_json(zarr::orbax_metadata(2, dtype::int32, {8}, {8}));
  f_order.replace(f_order.find("\"C\""), 3, "\"F\"");
  kv::write(store, "z/.zarray", cairn::as_bytes(f_order));
  const cairn::error fortran = error_of([&] { (void)zarr::array::open(store / "z/", "z"); });
  CHECK(fortran.code() == errc::unsupported);
  CHECK(std::string(fortran.what()).find("array \"z\", key \"z/.zarray\"") != std::string::npos);

  const auto m = zarr::orbax_metadata(2, dtype::int32, {4}, {2});
  write(store / "w/", m, random_array(dtype::int32, {4}, 1));
  const auto arr = zarr::array::open(store / "w/", "w");
  CHECK(error_of([&] { (void)arr.read(cairn::parse_box("[2:5]")); }).code() == errc::invalid_argument);
  CHECK(error_of([&] { (void)arr.read(cairn::parse_box("[0:1, 0:1]")); }).code() == errc::invalid_argument);
  host_array wrong_shape(dtype::int32, {3});
  CHECK(error_of([&] { arr.read(cairn::parse_box("[0:2]"), wrong_shape.mutable_view()); }).code() == errc::shape_mismatch);
  host_array wrong_type(dtype::float32, {2});
  CHECK(error_of([&] { arr.read(cairn::parse_box("[0:2]"), wrong_type.mutable_view()); }).code() == errc::type_mismatch);
  CHECK(arr.read(cairn::parse_box("[1:1]")).shape() == cairn::shape{0});

  // A damaged chunk is reported with the array and key.
  kv::write(store, "w/1", cairn::as_bytes(std::string("garbage!")));
  const cairn::error bad = error_of([&] { (void)arr.read_all(); });
  CHECK(bad.code() == errc::corrupted);
  CHECK(std::string(bad.what()).find("array \"w\", key \"w/1\"") != std::string::npos);

  // write_array checks its input against the metadata.
  auto sink = [](std::string, byte_buffer) {};
  CHECK(error_of([&] { zarr::write_array(m, random_array(dtype::int32, {5}, 1), sink); }).code() == errc::shape_mismatch);
  CHECK(error_of([&] { zarr::write_array(m, random_array(dtype::int64, {4}, 1), sink); }).code() == errc::type_mismatch);
}

TEST_CASE("write_array writes every chunk, all-zero ones included, metadata first") {
  const auto m = zarr::orbax_metadata(3, dtype::float32, {7, 3}, {2, 3});
  std::vector<std::string> keys;
  zarr::write_array(m, host_array(dtype::float32, {7, 3}), [&](std::string key, byte_buffer bytes) {
    CHECK_FALSE(bytes.empty());
    keys.push_back(std::move(key));
  });
  CHECK(keys == std::vector<std::string>{"zarr.json", "c/0/0", "c/1/0", "c/2/0", "c/3/0"});
  // An empty array has only its metadata.
  keys.clear();
  zarr::write_array(zarr::orbax_metadata(2, dtype::int8, {0, 4}, {1, 4}), host_array(dtype::int8, {0, 4}),
                    [&](std::string key, byte_buffer) { keys.push_back(std::move(key)); });
  CHECK(keys == std::vector<std::string>{".zarray"});
}
