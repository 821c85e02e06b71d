// Per-pixel math of fastmer::flow_magnitude, shared by the CPU and CUDA kernels.
#pragma once

#include "ops/common/macros.h"

namespace fastmer::common {

// |(u, v)| = sqrt(u^2 + v^2)
template <typename T>
FASTMER_HD T flow_magnitude_at(T u, T v) {
  return fm_sqrt(u * u + v * v);
}

}  // namespace fastmer::common
