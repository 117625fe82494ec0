// SPDX-License-Identifier: Apache-2.0
/// \file
/// `shard_adapter<T>`: the customisation point through which an engine's own distributed tensor — one
/// buffer per local device plus its box — is saved and restored in place, without first copying it into
/// a cairn type. Specialise it with:
///
/// ```cpp
/// template <> struct cairn::shard_adapter<my_tensor> {
///   static cairn::dtype type(const my_tensor&);
///   static cairn::shape global_shape(const my_tensor&);
///   static cairn::named_sharding sharding(const my_tensor&);
///   static std::size_t local_count(const my_tensor&);                  // local buffers
///   static cairn::shard local_shard(const my_tensor&, std::size_t i);  // device, box, replica
///   // Either views of host memory ...
///   static cairn::array_view view(const my_tensor&, std::size_t i);
///   static cairn::mutable_array_view mutable_view(my_tensor&, std::size_t i);
///   // ... or copies for device memory (e.g. through cairn::cuda's staging pool):
///   static void copy_to_host(const my_tensor&, std::size_t i, const cairn::mutable_array_view& host);
///   static void copy_from_host(my_tensor&, std::size_t i, const cairn::array_view& host);
///   // Optional, for a save's staging copy: the shard in host memory the adapter provides itself
///   // (pinned buffers reused across saves, so the copy runs at the bus's speed and faults no pages).
///   static cairn::host_array stage(const my_tensor&, std::size_t i);
/// };
/// ```
/// Such types are checkpoint leaves (handlers/sharded_leaf.hpp): a save copies the replica-0 buffers to
/// host on the caller's thread (the staging copy that lets training continue); a restore reads exactly
/// each local buffer's box and copies it in.
#pragma once

#include <concepts>
#include <cstddef>

#include <cairn/core/array.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/shard.hpp>

namespace cairn {

/// Describes an engine tensor's shards; see the file comment. The primary template is disabled.
template <class T>
struct shard_adapter {
  shard_adapter() = delete;
};

namespace detail {
template <class T>
concept has_shard_adapter = requires(const T& c, std::size_t i) {
  { shard_adapter<T>::type(c) } -> std::convertible_to<dtype>;
  { shard_adapter<T>::global_shape(c) } -> std::convertible_to<shape>;
  { shard_adapter<T>::sharding(c) } -> std::convertible_to<named_sharding>;
  { shard_adapter<T>::local_count(c) } -> std::convertible_to<std::size_t>;
  { shard_adapter<T>::local_shard(c, i) } -> std::convertible_to<shard>;
};
template <class T>
void adapter_to_host(const T& t, std::size_t i, const mutable_array_view& host) {
  if constexpr (requires { shard_adapter<T>::copy_to_host(t, i, host); }) shard_adapter<T>::copy_to_host(t, i, host);
  else copy(shard_adapter<T>::view(t, i), host);
}
// The save's staging copy of shard `i`: the adapter's own `stage` where it has one, else a fresh host
// array filled through `adapter_to_host`.
template <class T>
host_array adapter_stage(const T& t, std::size_t i, const shape& local) {
  if constexpr (requires { { shard_adapter<T>::stage(t, i) } -> std::same_as<host_array>; }) {
    return shard_adapter<T>::stage(t, i);
  } else {
    host_array h = host_array::uninitialized(shard_adapter<T>::type(t), local);
    adapter_to_host(t, i, h.mutable_view());
    return h;
  }
}
template <class T>
void adapter_from_host(T& t, std::size_t i, const array_view& host) {
  if constexpr (requires { shard_adapter<T>::copy_from_host(t, i, host); }) shard_adapter<T>::copy_from_host(t, i, host);
  else copy(host, shard_adapter<T>::mutable_view(t, i));
}
}  // namespace detail

}  // namespace cairn
