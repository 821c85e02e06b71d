// Device code of fastmer::rank_pool and its backward (no torch includes; see launch.cuh).
// One thread per output pixel walks the T frames; coefficients are generated on the
// fly in double precision (common::RankPoolCoefficients), so no table is copied to
// the device. For a fixed t, neighbouring threads read neighbouring pixels (coalesced).
#pragma once

#include "ops/common/rank_pool.h"
#include "ops/cuda/launch.cuh"

namespace fastmer::cuda {

template <typename T>
__global__ void rank_pool_kernel(const T* __restrict__ frames, T* __restrict__ out, int64_t N, int64_t T_,
                                 int64_t P) {
  const int64_t total = N * P;
  FASTMER_CUDA_KERNEL_LOOP(i, total) {
    const int64_t n = i / P, p = i - n * P;
    const T* clip = frames + n * T_ * P + p;
    common::RankPoolCoefficients alpha(T_);
    T acc = T(0);
    for (int64_t t = 0; t < T_; ++t) acc += static_cast<T>(alpha.next()) * clip[t * P];
    out[i] = acc;
  }
}

template <typename T>
__global__ void rank_pool_backward_kernel(const T* __restrict__ grad, T* __restrict__ out, int64_t N, int64_t T_,
                                          int64_t P) {
  const int64_t total = N * P;
  FASTMER_CUDA_KERNEL_LOOP(i, total) {
    const int64_t n = i / P, p = i - n * P;
    const T g = grad[i];
    T* dst = out + n * T_ * P + p;
    common::RankPoolCoefficients alpha(T_);
    for (int64_t t = 0; t < T_; ++t) dst[t * P] = static_cast<T>(alpha.next()) * g;
  }
}

// frames [N, T, P] contiguous -> out [N, P]
template <typename T>
cudaError_t launch_rank_pool(const T* frames, T* out, int64_t N, int64_t T_, int64_t P, cudaStream_t stream) {
  if (N * P == 0) return cudaSuccess;
  FASTMER_LAUNCH(rank_pool_kernel<T>, blocks_for(N * P), kThreads, 0, stream, frames, out, N, T_, P);
  return cudaGetLastError();
}

// grad [N, P] contiguous -> out [N, T, P]
template <typename T>
cudaError_t launch_rank_pool_backward(const T* grad, T* out, int64_t N, int64_t T_, int64_t P, cudaStream_t stream) {
  if (N * P == 0) return cudaSuccess;
  FASTMER_LAUNCH(rank_pool_backward_kernel<T>, blocks_for(N * P), kThreads, 0, stream, grad, out, N, T_, P);
  return cudaGetLastError();
}

#ifdef FASTMER_COMPILE_CHECK
template cudaError_t launch_rank_pool<float>(const float*, float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_rank_pool<double>(const double*, double*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_rank_pool_backward<float>(const float*, float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t launch_rank_pool_backward<double>(const double*, double*, int64_t, int64_t, int64_t,
                                                       cudaStream_t);
#endif

}  // namespace fastmer::cuda
