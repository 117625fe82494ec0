// SPDX-License-Identifier: Apache-2.0
/// \file
/// How C++ types become tree nodes. Exactly two routes, and a type may use only one:
///  * intrusive — `static constexpr auto cairn_fields = cairn::fields(cairn::field("mu", &T::mu), ...);`
///  * non-intrusive — a `cairn::tree_traits<T>` specialisation holding the same `fields` list, or, for
///    nodes whose children are known only at run time, `for_each_child(self, visit)` plus an optional
///    `prepare(node, saved_keys)` that sizes the node from the keys on disk before a restore.
/// On-disk keys are spelled out, never reflected: reordering members never changes a checkpoint.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cairn/core/key_path.hpp>

namespace cairn {

/// One named member of a tree node: `field("kernel", &dense::kernel)`.
template <class Class, class Member>
struct field_t {
  std::string_view name;
  Member Class::*member;
};

/// Names a data member for `fields(...)`.
template <class Class, class Member>
constexpr field_t<Class, Member> field(std::string_view name, Member Class::*member) noexcept {
  return {name, member};
}

/// The ordered member list of a node type.
template <class... Fields>
constexpr std::tuple<Fields...> fields(Fields... f) noexcept {
  return {f...};
}

/// The non-intrusive route: specialise for a type you do not own. The primary template is the
/// "not a node" marker.
template <class T>
struct tree_traits {
  using not_specialised = void;
};

namespace detail {
template <class T>
concept has_intrusive_fields = requires { T::cairn_fields; };
template <class T>
concept has_traits_specialisation = !requires { typename tree_traits<T>::not_specialised; };
template <class T>
concept traits_has_fields = has_traits_specialisation<T> && requires { tree_traits<T>::fields; };
template <class T>
concept traits_has_visitor = has_traits_specialisation<T> && !traits_has_fields<T>;
}  // namespace detail

/// True for user types registered as nodes (through exactly one route or both — the latter is
/// rejected where it is used).
template <class T>
concept registered_node = detail::has_intrusive_fields<T> || detail::has_traits_specialisation<T>;

/// The field tuple of a field-listed node type.
template <class T>
constexpr const auto& node_fields() noexcept {
  if constexpr (detail::has_intrusive_fields<T>) return T::cairn_fields;
  else return tree_traits<T>::fields;
}

}  // namespace cairn
