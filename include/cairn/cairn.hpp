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
#include <cairn/core/convert.hpp>
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

#include <cairn/kvstore/driver.hpp>
#include <cairn/kvstore/file.hpp>
#include <cairn/kvstore/memory.hpp>
#include <cairn/kvstore/store.hpp>

#include <cairn/ocdbt/reader.hpp>
#include <cairn/ocdbt/writer.hpp>

#include <cairn/zarr/array.hpp>
#include <cairn/zarr/codec.hpp>
#include <cairn/zarr/metadata.hpp>

#include <cairn/safetensors/safetensors.hpp>

#include <cairn/sharding/chunk_grid.hpp>
#include <cairn/sharding/device_mesh.hpp>
#include <cairn/sharding/named_sharding.hpp>
#include <cairn/sharding/partition_spec.hpp>
#include <cairn/sharding/reshard_plan.hpp>
#include <cairn/sharding/shard.hpp>
#include <cairn/sharding/shard_adapter.hpp>
#include <cairn/sharding/sharded_array.hpp>

#include <cairn/backend/host.hpp>

#include <cairn/tree/dynamic_tree.hpp>
#include <cairn/tree/traits.hpp>

#include <cairn/handlers/leaf_handler.hpp>
#include <cairn/handlers/sharded_leaf.hpp>
#include <cairn/handlers/walk.hpp>

#include <cairn/checkpoint/callback.hpp>
#include <cairn/checkpoint/checkpoint.hpp>
#include <cairn/checkpoint/checkpoint_manager.hpp>
#include <cairn/checkpoint/checkpoint_metadata.hpp>
#include <cairn/checkpoint/item_files.hpp>
#include <cairn/checkpoint/policies.hpp>
#include <cairn/checkpoint/pytree_item.hpp>
#include <cairn/checkpoint/steps.hpp>
#include <cairn/checkpoint/tree_metadata.hpp>
#include <cairn/checkpoint/typed.hpp>
#include <cairn/checkpoint/verify.hpp>
