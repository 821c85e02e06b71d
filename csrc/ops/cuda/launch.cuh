// Launch geometry shared by the CUDA kernels (no torch includes).
//
// The device code is also compiled by a host compiler against HIP-CPU, which runs it on
// the CPU in CI (csrc/emulation/, tests/ops/test_cuda_emulated.py). Hence the launch macro
// and the overridable grid caps below: under nvcc they are the plain CUDA forms.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

// Most blocks on the x (pixels) and y (pairs) grid axes; kernels stride beyond them. The
// emulated build lowers them at run time so every grid-stride and pair-stride loop is
// exercised for more than one pass on small images.
#ifndef FASTMER_CUDA_MAX_GRID_X
#define FASTMER_CUDA_MAX_GRID_X (int64_t{1} << 16)
#endif
#ifndef FASTMER_CUDA_MAX_GRID_Y
#define FASTMER_CUDA_MAX_GRID_Y int64_t{65535}
#endif

// FASTMER_LAUNCH(kernel, grid, block, shared_bytes, stream, args...) enqueues a kernel:
// `<<<...>>>` under nvcc; on a host compiler, the emulator's launch from csrc/emulation
// (synchronous and in program order, which is what a stream guarantees).
#if defined(__CUDACC__)
#define FASTMER_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  kernel<<<(grid), (block), (shared_bytes), (stream)>>>(__VA_ARGS__)
#else
#define FASTMER_LAUNCH(kernel, grid, block, shared_bytes, stream, ...) \
  ::fastmer::emulation::launch(#kernel, kernel, (grid), (block), (shared_bytes), (stream), __VA_ARGS__)
#endif

namespace fastmer::cuda {

constexpr int kThreads = 256;

// Grid-stride loop over [0, n) with 64-bit indices (torchvision's CUDA_1D_KERNEL_LOOP).
#define FASTMER_CUDA_KERNEL_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// Enough blocks to fill any current GPU; kernels use grid-stride loops beyond that.
inline unsigned int blocks_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, FASTMER_CUDA_MAX_GRID_X)));
}

}  // namespace fastmer::cuda
