// Coefficients of approximate rank pooling, shared by the CPU and CUDA kernels.
//
// Bilen et al., "Dynamic Image Networks for Action Recognition" (CVPR 2016):
//   DI = sum_{t=1..T} alpha_t * I_t,
//   alpha_t = 2 (T - t + 1) - (T + 1) (H_T - H_{t-1}),  H_k = sum_{i<=k} 1/i,  H_0 = 0.
// The weights sum to zero, so a static clip gives a zero image. T = 2 gives
// alpha = (-1/2, 1/2), i.e. (I_2 - I_1) / 2. T = 1 gives alpha_1 = 0 (no motion),
// where the authors' MATLAB code special-cases alpha_1 = 1.
#pragma once

#include "ops/common/macros.h"

namespace fastmer::common {

// H_k in double precision.
FASTMER_HD double harmonic_number(int64_t k) {
  double h = 0.0;
  for (int64_t i = 1; i <= k; ++i) h += 1.0 / static_cast<double>(i);
  return h;
}

// Iterates alpha_1..alpha_T in order with O(1) work per step, so a CUDA thread can
// walk the frames without a coefficient table.
struct RankPoolCoefficients {
  int64_t T;
  double H_T;
  double H_prev;  // H_{t-1}
  int64_t t;      // 1-based index of the next coefficient

  FASTMER_HD explicit RankPoolCoefficients(int64_t num_frames)
      : T(num_frames), H_T(harmonic_number(num_frames)), H_prev(0.0), t(1) {}

  FASTMER_HD double next() {
    const double alpha = 2.0 * static_cast<double>(T - t + 1) - static_cast<double>(T + 1) * (H_T - H_prev);
    H_prev += 1.0 / static_cast<double>(t);
    ++t;
    return alpha;
  }
};

}  // namespace fastmer::common
