// SPDX-License-Identifier: Apache-2.0
/// \file
/// The only header that includes Boost.Asio. Boost 1.74's `awaitable.hpp` uses `std::exchange`
/// without including `<utility>` and fails on libstdc++ 12, so `<utility>` comes first. Layers
/// below `checkpoint/` never include this header, so they build without Boost.
#pragma once

#include <utility>  // must precede Boost 1.74's awaitable.hpp (std::exchange)

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

namespace cairn {
/// Boost.Asio, as cairn uses it (executors, completion tokens, thread pools).
namespace asio = boost::asio;
}  // namespace cairn
