// SPDX-License-Identifier: Apache-2.0
/// \file
/// `partition_spec`: for each array dimension, the mesh axes it is split over — none (replicated), one,
/// or several (split over their product, major axis first), as `jax.sharding.PartitionSpec`. Dimensions
/// past the spec's length are replicated. Printed `P(data, -)`; several axes `P(data+model, -)`.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <cairn/core/error.hpp>
#include <cairn/sharding/device_mesh.hpp>

namespace cairn {

class partition_spec;
inline std::string to_string(const partition_spec& p);

/// Marks a replicated dimension in a `partition_spec` initializer: `partition_spec{"data", replicated}`.
struct replicated_t {
  explicit constexpr replicated_t() = default;
};
inline constexpr replicated_t replicated{};

/// The axes of one dimension (empty: replicated).
using dim_axes = std::vector<std::string>;

/// Per-dimension mesh axes.
/// \par Thread safety
/// Immutable after construction.
class partition_spec {
 public:
  /// Every dimension replicated.
  partition_spec() = default;
  /// From per-dimension entries: an axis name, `replicated`, or a `dim_axes` list.
  template <class... E>
    requires(sizeof...(E) > 0)
  explicit partition_spec(E&&... entries) {
    (dims_.push_back(entry(std::forward<E>(entries))), ...);
  }
  explicit partition_spec(std::vector<dim_axes> dims) : dims_(std::move(dims)) {}

  std::size_t size() const noexcept { return dims_.size(); }
  /// The axes of dimension `d` (empty past the end: replicated).
  const dim_axes& operator[](std::size_t d) const noexcept {
    static const dim_axes none;
    return d < dims_.size() ? dims_[d] : none;
  }
  const std::vector<dim_axes>& dims() const noexcept { return dims_; }

  /// Checks the spec against a mesh and an array rank.
  /// \throws cairn::error (errc::invalid_sharding) naming the spec for an axis used twice, an axis the
  ///         mesh lacks, or a spec longer than `rank`.
  void validate(const device_mesh& mesh, std::size_t rank) const {
    if (dims_.size() > rank)
      throw error(errc::invalid_sharding, to_string(*this) + " has " + std::to_string(dims_.size()) +
                                              " entries for an array of rank " + std::to_string(rank));
    std::vector<std::string> seen;
    for (const auto& d : dims_)
      for (const auto& a : d) {
        if (mesh.axis_index(a) < 0)
          throw error(errc::invalid_sharding, to_string(*this) + ": axis \"" + a + "\" is not in mesh " + to_string(mesh));
        for (const auto& s : seen)
          if (s == a) throw error(errc::invalid_sharding, to_string(*this) + ": axis \"" + a + "\" is used twice");
        seen.push_back(a);
      }
  }
  friend bool operator==(const partition_spec& a, const partition_spec& b) {
    const std::size_t n = std::max(a.dims_.size(), b.dims_.size());
    for (std::size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
 private:
  static dim_axes entry(replicated_t) { return {}; }
  static dim_axes entry(const char* a) { return {a}; }
  static dim_axes entry(std::string a) { return {std::move(a)}; }
  static dim_axes entry(std::string_view a) { return {std::string(a)}; }
  static dim_axes entry(dim_axes a) { return a; }

  std::vector<dim_axes> dims_;
};

/// `P(data, -)`; several axes on one dimension `P(data+model, -)`.
inline std::string to_string(const partition_spec& p) {
  std::string s = "P(";
  for (std::size_t i = 0; i < p.dims().size(); ++i) {
    if (i) s += ", ";
    if (p.dims()[i].empty()) s += '-';
    for (std::size_t j = 0; j < p.dims()[i].size(); ++j) s += (j ? "+" : "") + p.dims()[i][j];
  }
  return s + ")";
}
inline std::ostream& operator<<(std::ostream& os, const partition_spec& p) { return os << to_string(p); }

/// Parses `P(data, -)`, `P(data+model, -)`, `P()` or the command-line form `data,-` (`-` or `none`:
/// replicated).
/// \throws cairn::error (errc::invalid_sharding) naming the text for an empty entry or unbalanced parentheses.
inline partition_spec parse_partition_spec(std::string_view text) {
  std::string_view s = detail::mesh_trim(text);
  if (s.size() >= 2 && s.substr(0, 2) == "P(") {
    if (s.back() != ')') throw error(errc::invalid_sharding, "partition spec \"" + std::string(text) + "\": no closing ')'");
    s = s.substr(2, s.size() - 3);
  }
  std::vector<dim_axes> dims;
  if (detail::mesh_trim(s).empty()) return partition_spec(std::move(dims));
  for (auto part : detail::mesh_split(s, ',')) {
    part = detail::mesh_trim(part);
    if (part.empty())
      throw error(errc::invalid_sharding, "partition spec \"" + std::string(text) + "\": an entry is empty (use - for replicated)");
    dim_axes d;
    if (part != "-" && part != "none" && part != "None")
      for (auto a : detail::mesh_split(part, '+')) {
        a = detail::mesh_trim(a);
        if (a.empty()) throw error(errc::invalid_sharding, "partition spec \"" + std::string(text) + "\": an axis name is empty");
        d.emplace_back(a);
      }
    dims.push_back(std::move(d));
  }
  return partition_spec(std::move(dims));
}

}  // namespace cairn
