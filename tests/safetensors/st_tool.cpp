// SPDX-License-Identifier: Apache-2.0
// The C++ side of the safetensors interop suite (tests/interop/safetensors_python.py): plain files that
// Python can check without cairn.
//   cairn_st_tool dump FILE [BLOB]     read FILE with safetensors::reader; print {"metadata": {K: V},
//                                      "tensors": [{"name", "dtype", "shape", "begin", "end", "crc32c"}]}
//                                      (data order) and write the tensors' bytes, concatenated, to BLOB
//   cairn_st_tool write OUT SPEC BLOB  write OUT with safetensors::writer from SPEC = {"metadata": {K: V},
//                                      "tensors": [{"name", "dtype", "shape", "offset"}]}, each tensor's
//                                      bytes streamed (byte_source) from BLOB at "offset"
// Exit status: 0 on success, 3 with `error <errc number>: <message>` on stderr for a cairn::error, 2 on misuse.
#include <cairn/core/crc32c.hpp>
#include <cairn/json/reader.hpp>
#include <cairn/json/writer.hpp>
#include <cairn/safetensors/safetensors.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

namespace st = cairn::safetensors;

namespace {

int dump(const std::string& file, const char* blob_path) {
  st::reader r(file);
  std::ofstream blob;
  if (blob_path) blob.open(blob_path, std::ios::binary | std::ios::trunc);
  cairn::json::writer w;
  w.begin_object().key("metadata").begin_object();
  for (const auto& [k, v] : r.info().metadata) w.key(k).value(std::string_view(v));
  w.end_object().key("tensors").begin_array();
  for (const auto& t : r.info().tensors) {
    const cairn::host_array a = r.read(t.name);
    w.begin_object().key("name").value(std::string_view(t.name));
    w.key("dtype").value(cairn::info(t.type).safetensors);
    w.key("shape").begin_array();
    for (cairn::index_t e : t.shape) w.value(e);
    w.end_array().key("begin").value(t.begin).key("end").value(t.end);
    w.key("crc32c").value(cairn::crc32c(a.bytes())).end_object();
    if (blob_path) blob.write(reinterpret_cast<const char*>(a.bytes().data()), static_cast<std::streamsize>(a.num_bytes()));
  }
  w.end_array().end_object();
  std::cout << w.take() << "\n";
  if (blob_path && !blob) throw cairn::error(cairn::errc::io, std::string("write ") + blob_path);
  return 0;
}

int write(const std::string& out, const std::string& spec_path, const std::string& blob_path) {
  const auto spec = cairn::json::parse_file(spec_path);
  auto blob = std::make_shared<std::ifstream>(blob_path, std::ios::binary);
  if (!*blob) throw cairn::error(cairn::errc::not_found, "open " + blob_path);
  st::writer w(out, {.fsync = false});
  for (const auto& [k, v] : spec.at("metadata").as_object()) w.set_metadata(k, v.as_string());
  for (const auto& t : spec.at("tensors").as_array()) {
    std::vector<cairn::index_t> dims;
    for (const auto& d : t.at("shape").as_array()) dims.push_back(d.as_int64());
    const auto type = cairn::dtype_from_safetensors(t.at("dtype").as_string());
    if (!type) throw cairn::error(cairn::errc::unsupported, "dtype " + t.at("dtype").as_string());
    const std::uint64_t base = t.at("offset").as_uint64();
    // Streamed, so the tool never holds more than the writer's staging buffer of any tensor.
    w.add(t.at("name").as_string(), *type, cairn::shape(std::move(dims)),
          [blob, base, blob_path](std::uint64_t offset, cairn::mutable_byte_view dst) {
            blob->seekg(static_cast<std::streamoff>(base + offset));
            blob->read(reinterpret_cast<char*>(dst.data()), static_cast<std::streamsize>(dst.size()));
            if (!*blob) throw cairn::error(cairn::errc::io, "read " + blob_path);
          });
  }
  w.finish();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "dump" && (argc == 3 || argc == 4)) return dump(argv[2], argc == 4 ? argv[3] : nullptr);
    if (cmd == "write" && argc == 5) return write(argv[2], argv[3], argv[4]);
    std::cerr << "usage: cairn_st_tool dump FILE [BLOB] | write OUT SPEC BLOB\n";
    return 2;
  } catch (const cairn::error& e) {
    std::cerr << "error " << e.code().value() << ": " << e.what() << "\n";
    return 3;
  }
}
