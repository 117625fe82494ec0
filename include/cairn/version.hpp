// SPDX-License-Identifier: Apache-2.0
/// \file
/// Library version and the versions of the on-disk formats cairn reads and writes. The library
/// version follows semantic versioning (0.x: minor bumps may break the API); the format constants
/// only change when the bytes on disk change meaning.
#pragma once

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"

namespace cairn {

/// The library version as "major.minor.patch".
inline constexpr const char* version_string = CAIRN_VERSION_STRING;

/// The Orbax `_CHECKPOINT_METADATA` / OCDBT format generation cairn writes (OCDBT format version 0).
inline constexpr int ocdbt_format_version = 0;

}  // namespace cairn
