#!/usr/bin/env bash
# Runs an interop script with the pinned Python environment (scripts/interop-env.sh).
# Exit 77 (ctest: skipped) when the environment cannot be created, unless CI=true makes it mandatory.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if ! py=$(bash "$root/scripts/interop-env.sh" | tail -1) || [[ ! -x "$py" ]]; then
  if [[ "${CI:-}" == "true" ]]; then
    echo "interop: the Python environment could not be created, and CI=true makes the interop suite mandatory" >&2
    exit 1
  fi
  echo "skipped: the Python interop environment (orbax-checkpoint, tensorstore, jax, keras) is unavailable"
  exit 77
fi
export PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu KERAS_BACKEND=jax
exec "$py" "$@"
