// SPDX-License-Identifier: Apache-2.0
/// \file
/// `device_mesh`: named axes with sizes and a device id at each mesh position (row-major ids 0..n-1 by
/// default), as `jax.sharding.Mesh`. Printed `{data:2, model:2}`; ids that are not the default order
/// follow as `{data:2, model:2 ids 3,2,1,0}`. Parsed from the same text or from `data=2,model=2`.
#pragma once

#include <algorithm>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/core/shape.hpp>

namespace cairn {

class device_mesh;
inline std::string to_string(const device_mesh& m);

/// One named axis of a mesh.
struct mesh_axis {
  std::string name;
  index_t size = 1;
  friend bool operator==(const mesh_axis&, const mesh_axis&) = default;
};

/// A logical arrangement of devices along named axes.
/// \par Thread safety
/// Immutable after construction.
class device_mesh {
 public:
  /// A one-device mesh with one axis `x` (what a checkpoint saved without a mesh records).
  device_mesh() : device_mesh({{"x", 1}}) {}
  /// Row-major device ids 0..n-1.
  /// \throws cairn::error (errc::invalid_sharding) for an empty axis list, an empty or repeated axis name,
  ///         or a size below 1.
  device_mesh(std::vector<mesh_axis> axes) : axes_(std::move(axes)) {
    validate_axes();
    ids_.resize(static_cast<std::size_t>(size()));
    for (std::size_t i = 0; i < ids_.size(); ++i) ids_[i] = static_cast<int>(i);
  }
  device_mesh(std::initializer_list<mesh_axis> axes) : device_mesh(std::vector<mesh_axis>(axes)) {}
  /// Explicit device ids, one per position in row-major order.
  /// \throws cairn::error (errc::invalid_sharding) as above, or if `ids` has the wrong length, a negative
  ///         id or a repeated id.
  device_mesh(std::vector<mesh_axis> axes, std::vector<int> ids) : axes_(std::move(axes)), ids_(std::move(ids)) {
    validate_axes();
    if (ids_.size() != static_cast<std::size_t>(size()))
      throw error(errc::invalid_sharding, "mesh " + describe_axes() + " has " + std::to_string(size()) +
                                              " positions but " + std::to_string(ids_.size()) + " device ids");
    std::vector<int> sorted = ids_;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i)
      if (sorted[i] < 0 || (i && sorted[i] == sorted[i - 1]))
        throw error(errc::invalid_sharding, "mesh " + describe_axes() + ": device id " + std::to_string(sorted[i]) +
                                                (sorted[i] < 0 ? " is negative" : " appears twice"));
  }

  const std::vector<mesh_axis>& axes() const noexcept { return axes_; }
  std::size_t rank() const noexcept { return axes_.size(); }
  /// Number of devices.
  index_t size() const {
    index_t n = 1;
    for (const auto& a : axes_) n *= a.size;
    return n;
  }
  /// Device ids in row-major position order.
  const std::vector<int>& device_ids() const noexcept { return ids_; }
  /// The index of axis `name`, or -1.
  int axis_index(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < axes_.size(); ++i)
      if (axes_[i].name == name) return static_cast<int>(i);
    return -1;
  }
  /// The mesh coordinates of position `p` (row-major).
  std::vector<index_t> coordinates(index_t p) const {
    std::vector<index_t> c(axes_.size());
    for (std::size_t i = axes_.size(); i-- > 0;) {
      c[i] = p % axes_[i].size;
      p /= axes_[i].size;
    }
    return c;
  }
  /// True when ids are 0..n-1 in row-major order.
  bool default_ids() const noexcept {
    for (std::size_t i = 0; i < ids_.size(); ++i)
      if (ids_[i] != static_cast<int>(i)) return false;
    return true;
  }
  friend bool operator==(const device_mesh&, const device_mesh&) = default;

 private:
  std::string describe_axes() const {
    std::string s = "{";
    for (std::size_t i = 0; i < axes_.size(); ++i) s += (i ? ", " : "") + axes_[i].name + ":" + std::to_string(axes_[i].size);
    return s + "}";
  }
  void validate_axes() const {
    if (axes_.empty()) throw error(errc::invalid_sharding, "a mesh needs at least one axis");
    for (std::size_t i = 0; i < axes_.size(); ++i) {
      const auto& a = axes_[i];
      if (a.name.empty() || a.name.find_first_of(" ,:{}()+=-") != std::string::npos)
        throw error(errc::invalid_sharding, "mesh axis name \"" + a.name + "\" is empty or holds one of \" ,:{}()+=-\"");
      if (a.size < 1)
        throw error(errc::invalid_sharding, "mesh axis \"" + a.name + "\" has size " + std::to_string(a.size) + " (at least 1)");
      for (std::size_t j = 0; j < i; ++j)
        if (axes_[j].name == a.name) throw error(errc::invalid_sharding, "mesh axis \"" + a.name + "\" appears twice");
    }
  }
  std::vector<mesh_axis> axes_;
  std::vector<int> ids_;
};

/// `{data:2, model:2}`, with ` ids ...` before the brace when the ids are not row-major 0..n-1.
inline std::string to_string(const device_mesh& m) {
  std::string s = "{";
  for (std::size_t i = 0; i < m.axes().size(); ++i) s += (i ? ", " : "") + m.axes()[i].name + ":" + std::to_string(m.axes()[i].size);
  if (!m.default_ids()) {
    s += " ids ";
    for (std::size_t i = 0; i < m.device_ids().size(); ++i) s += (i ? "," : "") + std::to_string(m.device_ids()[i]);
  }
  return s + "}";
}
inline std::ostream& operator<<(std::ostream& os, const device_mesh& m) { return os << to_string(m); }

namespace detail {
inline std::string_view mesh_trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}
inline index_t mesh_parse_int(std::string_view s, std::string_view text, std::string_view what) {
  s = mesh_trim(s);
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string_view::npos)
    throw error(errc::invalid_sharding, "mesh \"" + std::string(text) + "\": " + std::string(what) + " \"" +
                                            std::string(s) + "\" is not a non-negative integer");
  index_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}
inline std::vector<std::string_view> mesh_split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}
}  // namespace detail

/// Parses `{data:2, model:2}` (optionally `... ids 3,2,1,0}`) or the command-line form `data=2,model=2`.
/// \throws cairn::error (errc::invalid_sharding) naming the text for anything else.
inline device_mesh parse_device_mesh(std::string_view text) {
  std::string_view s = detail::mesh_trim(text);
  const bool braced = !s.empty() && s.front() == '{';
  std::vector<int> ids;
  bool have_ids = false;
  if (braced) {
    if (s.back() != '}') throw error(errc::invalid_sharding, "mesh \"" + std::string(text) + "\": no closing '}'");
    s = s.substr(1, s.size() - 2);
    if (auto p = s.find(" ids "); p != std::string_view::npos) {
      for (auto id : detail::mesh_split(s.substr(p + 5), ','))
        ids.push_back(static_cast<int>(detail::mesh_parse_int(id, text, "device id")));
      have_ids = true;
      s = s.substr(0, p);
    }
  }
  std::vector<mesh_axis> axes;
  for (auto part : detail::mesh_split(s, ',')) {
    part = detail::mesh_trim(part);
    const auto sep = part.find(braced ? ':' : '=');
    if (sep == std::string_view::npos)
      throw error(errc::invalid_sharding, "mesh \"" + std::string(text) + "\": axis \"" + std::string(part) +
                                              "\" is not name" + (braced ? ":" : "=") + "size");
    axes.push_back({std::string(detail::mesh_trim(part.substr(0, sep))), detail::mesh_parse_int(part.substr(sep + 1), text, "axis size")});
  }
  return have_ids ? device_mesh(std::move(axes), std::move(ids)) : device_mesh(std::move(axes));
}

}  // namespace cairn
