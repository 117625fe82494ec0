#!/usr/bin/env bash
# Quick start command 2: install what is missing, build everything and run every test suite.
# With CI=true the suites that are optional elsewhere (shared fixtures, CUDA compile) are mandatory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
start=$(date +%s)
bash "$root/scripts/install-deps.sh"

cuda_flags=(-DCAIRN_ENABLE_CUDA=OFF)
if have_cuda; then
  cuda_flags=(-DCAIRN_ENABLE_CUDA=ON)
elif [[ "${CI:-}" == "true" ]]; then
  echo "cairn: CI=true requires the CUDA toolkit (nvcc) so the CUDA backend compiles" >&2
  exit 1
else
  echo "cairn: no CUDA toolkit found; the CUDA backend is not compiled"
fi
[[ "${CI:-}" == "true" ]] && cuda_flags+=(-DCAIRN_REQUIRE_CUDA=ON)
# Open MPI comes with the dependencies: the multi-process suite (label mpi) always runs.
mpi_flags=(-DCAIRN_ENABLE_MPI=ON -DCAIRN_REQUIRE_MPI=ON)

echo "== build and test (release) (at $(( $(date +%s) - start )) s)"
cmake --preset release "${cuda_flags[@]}" "${mpi_flags[@]}" >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

echo "== build and test (ASan + UBSan) (at $(( $(date +%s) - start )) s)"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ctest --preset asan -j "$jobs"

echo "== the checkpoint manager, the callback and the multi-process protocol under ThreadSanitizer (at $(( $(date +%s) - start )) s)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
# The crash test forks a saver, which ThreadSanitizer does not allow in a threaded process; it runs in
# the release and ASan suites.
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" "$root/build/tsan/tests/cairn_concurrency_tests" \
  --test-case-exclude="crash safety*"

echo "== fuzz every decoder (clang libFuzzer + ASan + UBSan) (at $(( $(date +%s) - start )) s)"
fuzz_seconds=10
[[ "${CI:-}" == "true" ]] && fuzz_seconds=30
cmake --preset fuzz -DCAIRN_FUZZ_SECONDS=$fuzz_seconds >/dev/null
cmake --build --preset fuzz -j "$jobs"
# Each fuzzer runs on one core for its whole time; two at once halve the wall time, not the coverage.
ctest --preset fuzz -j "$jobs"

echo "cairn: all suites passed in $(( $(date +%s) - start )) s"
