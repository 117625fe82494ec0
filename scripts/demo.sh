#!/usr/bin/env bash
# Quick start command 1: install what is missing, build the demo and run it.
# Usage: bash scripts/demo.sh [OUTPUT_DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash "$root/scripts/install-deps.sh"
cmake -S "$root" -B "$root/build/demo" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCAIRN_BUILD_TESTS=OFF -DCAIRN_BUILD_BENCH=OFF -DCAIRN_BUILD_TOOLS=OFF -DCAIRN_INSTALL=OFF >/dev/null
cmake --build "$root/build/demo" -j "$jobs" --target example_keras_tutorial
"$root/build/demo/examples/example_keras_tutorial" "$@"
