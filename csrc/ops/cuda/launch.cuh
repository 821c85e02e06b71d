// Launch geometry shared by the CUDA kernels (no torch includes).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace fastmer::cuda {

constexpr int kThreads = 256;

// Grid-stride loop over [0, n) with 64-bit indices (torchvision's CUDA_1D_KERNEL_LOOP).
#define FASTMER_CUDA_KERNEL_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{blockDim.x} * gridDim.x)

// Enough blocks to fill any current GPU; kernels use grid-stride loops beyond that.
inline unsigned int blocks_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t{1} << 16)));
}

}  // namespace fastmer::cuda
