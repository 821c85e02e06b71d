// Device code of fastmer::optical_strain (no torch includes; see launch.cuh).
#pragma once

#include "ops/common/optical_strain.h"
#include "ops/cuda/launch.cuh"

namespace fastmer::cuda {

template <typename T>
__global__ void optical_strain_kernel(const T* __restrict__ flow, T* __restrict__ out, int64_t N, int64_t H,
                                      int64_t W) {
  const int64_t HW = H * W;
  const int64_t total = N * HW;
  FASTMER_CUDA_KERNEL_LOOP(i, total) {
    const int64_t n = i / HW, p = i - n * HW;
    const int64_t y = p / W, x = p - y * W;
    const T* u = flow + n * 2 * HW;
    out[i] = common::optical_strain_at(u, u + HW, H, W, y, x);
  }
}

// flow [N, 2, H, W] contiguous -> out [N, 1, H, W]; returns the launch status.
template <typename T>
cudaError_t launch_optical_strain(const T* flow, T* out, int64_t N, int64_t H, int64_t W, cudaStream_t stream) {
  if (N * H * W == 0) return cudaSuccess;
  FASTMER_LAUNCH(optical_strain_kernel<T>, blocks_for(N * H * W), kThreads, 0, stream, flow, out, N, H, W);
  return cudaGetLastError();
}

#ifdef FASTMER_COMPILE_CHECK
template cudaError_t launch_optical_strain<float>(const float*, float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_optical_strain<double>(const double*, double*, int64_t, int64_t, int64_t, cudaStream_t);
#endif

}  // namespace fastmer::cuda
