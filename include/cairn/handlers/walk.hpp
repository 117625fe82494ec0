// SPDX-License-Identifier: Apache-2.0
/// \file
/// The compile-time tree walker: visits every leaf of a C++ value in a stable order with its key path
/// — std containers (`std::map<std::string, T>`, `std::vector<T>`, `std::array<T, N>`, `std::tuple`,
/// `std::pair`, `std::optional<T>`), user types registered through `cairn_fields` or
/// `cairn::tree_traits<T>`, and leaves (`cairn::leaf<T>`). One walker serves save (`const T`) and
/// restore (`T`). Misuse fails to compile with a message that names the type and both routes.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cairn/core/key_path.hpp>
#include <cairn/handlers/leaf_handler.hpp>
#include <cairn/tree/traits.hpp>

namespace cairn {

namespace detail {
template <class T>
inline constexpr bool always_false = false;
template <class T>
struct is_std_map : std::false_type {};
template <class V, class C, class A>
struct is_std_map<std::map<std::string, V, C, A>> : std::true_type {};
template <class T>
struct is_std_vector : std::false_type {};
template <class V, class A>
struct is_std_vector<std::vector<V, A>> : std::true_type {};
template <class T>
struct is_std_array : std::false_type {};
template <class V, std::size_t N>
struct is_std_array<std::array<V, N>> : std::true_type {};
template <class T>
struct is_tuple_like : std::false_type {};
template <class... Ts>
struct is_tuple_like<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_std_optional : std::false_type {};
template <class V>
struct is_std_optional<std::optional<V>> : std::true_type {};
template <class T>
struct is_unordered_map : std::false_type {};
template <class K, class V, class H, class E, class A>
struct is_unordered_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T>
constexpr bool is_std_node() {
  return is_std_map<T>::value || is_std_vector<T>::value || is_std_array<T>::value || is_tuple_like<T>::value ||
         is_std_optional<T>::value;
}
}  // namespace detail

/// True if T is a tree node cairn can walk (a std container or a registered type).
template <class T>
concept tree_node = detail::is_std_node<std::remove_const_t<T>>() || registered_node<std::remove_const_t<T>>;

/// Checks at compile time that T can be walked; the messages are what compile-fail tests check.
template <class T>
constexpr void check_tree_type() {
  using U = std::remove_const_t<T>;
  if constexpr (detail::is_std_vector<U>::value) {
    static_assert(!std::is_arithmetic_v<typename U::value_type>,
                  "cairn: std::vector of an arithmetic type is not a tree node (it would be one scalar leaf per "
                  "element). Store it as one array leaf: cairn::host_array::from(std::span(v), cairn::shape{n}).");
  }
  static_assert(!detail::is_unordered_map<U>::value,
                "cairn: std::unordered_map has no stable order, so it cannot be a tree node; use std::map.");
  static_assert(!(detail::has_intrusive_fields<U> && detail::has_traits_specialisation<U>),
                "cairn: this type is registered twice, through `cairn_fields` and through cairn::tree_traits<T>; "
                "keep exactly one route.");
  static_assert(!(leaf<U> && registered_node<U>),
                "cairn: this type is both a leaf (leaf_handler / to_leaf) and a tree node (cairn_fields / "
                "tree_traits); it must be one or the other.");
  static_assert(leaf<U> || tree_node<U>,
                "cairn: this type is neither a leaf nor a tree node. Make it a leaf: specialise "
                "cairn::leaf_handler<T> or provide to_leaf/from_leaf found by ADL; or make it a node: add "
                "`static constexpr auto cairn_fields = cairn::fields(cairn::field(\"name\", &T::member), ...)` "
                "or specialise cairn::tree_traits<T>.");
}

/// Calls `visit.leaf(path, value)` for every leaf of `node` and `visit.empty(path, kind, node)` for
/// every empty container or absent optional, in key order. `Self` may be const (save) or not
/// (restore). `visit.node(path, node)` is called for maps, vectors and run-time nodes first, so a
/// restore can size them from the saved keys (`prepare`).
template <class Self, class Visit>
void walk_tree(Self& node, key_path& path, Visit& visit) {
  using T = std::remove_const_t<Self>;
  check_tree_type<T>();
  if constexpr (leaf<T>) {
    visit.leaf(path, node);
  } else if constexpr (detail::is_std_map<T>::value) {
    visit.node(path, node);
    if (node.empty()) visit.empty(path, empty_node::dict);
    for (auto& [k, v] : node) {
      path.push_back(key(k));
      walk_tree(v, path, visit);
      path.pop_back();
    }
  } else if constexpr (detail::is_std_vector<T>::value || detail::is_std_array<T>::value) {
    if constexpr (detail::is_std_vector<T>::value) visit.node(path, node);
    if (node.empty()) visit.empty(path, empty_node::list);
    for (std::size_t i = 0; i < node.size(); ++i) {
      path.push_back(key(i));
      walk_tree(node[i], path, visit);
      path.pop_back();
    }
  } else if constexpr (detail::is_tuple_like<T>::value) {
    std::size_t i = 0;
    std::apply(
        [&](auto&... child) {
          ((path.push_back(key(i++)), walk_tree(child, path, visit), path.pop_back()), ...);
        },
        node);
  } else if constexpr (detail::is_std_optional<T>::value) {
    visit.optional(path, node);
  } else if constexpr (detail::has_intrusive_fields<T> || detail::traits_has_fields<T>) {
    std::apply(
        [&](const auto&... f) {
          ((path.push_back(key(std::string(f.name))), walk_tree(node.*(f.member), path, visit), path.pop_back()), ...);
        },
        node_fields<T>());
  } else {
    visit.node(path, node);
    tree_traits<T>::for_each_child(node, [&](const key& k, auto& child) {
      path.push_back(k);
      walk_tree(child, path, visit);
      path.pop_back();
    });
  }
}

}  // namespace cairn
