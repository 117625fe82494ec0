# Shared by the demo and test scripts: repository root, job count, CUDA discovery.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
# The CUDA toolkit lives outside PATH on some machines; CMake's FindCUDAToolkit looks for nvcc on PATH.
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
have_cuda() { command -v nvcc >/dev/null 2>&1; }
