// SPDX-License-Identifier: Apache-2.0
/// \file
/// Umbrella header: every public cairn header except `backend/cuda.hpp` (which needs the
/// `cairn::cuda` target). Prefer including the one-concept headers you use; this one is for
/// programs that want everything.
#pragma once

#include <cairn/config.hpp>
#include <cairn/version.hpp>

#include <cairn/core/array.hpp>
#include <cairn/core/box.hpp>
#include <cairn/core/byte_reader.hpp>
#include <cairn/core/bytes.hpp>
#include <cairn/core/crc32c.hpp>
#include <cairn/core/dtype.hpp>
#include <cairn/core/error.hpp>
#include <cairn/core/key_path.hpp>
#include <cairn/core/shape.hpp>
#include <cairn/core/varint.hpp>

#include <cairn/codec/zstd.hpp>

#include <cairn/json/reader.hpp>
#include <cairn/json/value.hpp>
#include <cairn/json/writer.hpp>
