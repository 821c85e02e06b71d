// Device code of fastmer::flow_magnitude (no torch includes; see launch.cuh).
#pragma once

#include "ops/common/flow_magnitude.h"
#include "ops/cuda/launch.cuh"

namespace fastmer::cuda {

template <typename T>
__global__ void flow_magnitude_kernel(const T* __restrict__ flow, T* __restrict__ out, int64_t N, int64_t HW) {
  const int64_t total = N * HW;
  FASTMER_CUDA_KERNEL_LOOP(i, total) {
    const int64_t n = i / HW, p = i - n * HW;
    const T* f = flow + n * 2 * HW;
    out[i] = common::flow_magnitude_at(f[p], f[HW + p]);
  }
}

// flow [N, 2, H, W] contiguous -> out [N, 1, H, W]; returns the launch status.
template <typename T>
cudaError_t launch_flow_magnitude(const T* flow, T* out, int64_t N, int64_t HW, cudaStream_t stream) {
  if (N * HW == 0) return cudaSuccess;
  FASTMER_LAUNCH(flow_magnitude_kernel<T>, blocks_for(N * HW), kThreads, 0, stream, flow, out, N, HW);
  return cudaGetLastError();
}

#ifdef FASTMER_COMPILE_CHECK
template cudaError_t launch_flow_magnitude<float>(const float*, float*, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_flow_magnitude<double>(const double*, double*, int64_t, int64_t, cudaStream_t);
#endif

}  // namespace fastmer::cuda
