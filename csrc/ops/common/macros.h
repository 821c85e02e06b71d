// Host/device portability for the math shared by the CPU and CUDA kernels.
// Nothing here includes torch, so the CUDA device code can be compile-checked
// with plain nvcc on machines whose torch has no CUDA.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FASTMER_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// The per-pixel helpers sit inside the kernels' vectorised loops: a call there (GCC's
// inliner otherwise declines the larger ones) blocks vectorisation.
#define FASTMER_HD inline __attribute__((always_inline))
#else
#define FASTMER_HD inline
#endif

namespace fastmer::common {

FASTMER_HD float fm_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  return std::sqrt(x);
#endif
}

FASTMER_HD double fm_sqrt(double x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}

}  // namespace fastmer::common
