// Host-side planning of fastmer::tvl1 shared by the CPU kernel and the CUDA launcher
// (pyramid sizes, Gaussian weights); no torch includes.
#pragma once

#include <cmath>
#include <vector>

#include "ops/common/tvl1.h"

namespace fastmer::common::tvl1 {

struct LevelSize {
  int h;
  int w;
};

// Level 0 is the input size; each next level is round(previous * scale_step) and the
// pyramid stops before a side would fall below min_size (OpenCV's and IPOL's rule).
inline std::vector<LevelSize> pyramid_sizes(int H, int W, const Params& P) {
  std::vector<LevelSize> sizes{{H, W}};
  const double step = static_cast<double>(P.scale_step);
  for (int s = 1; s < P.nscales; ++s) {
    const int h = static_cast<int>(sizes.back().h * step + 0.5);
    const int w = static_cast<int>(sizes.back().w * step + 0.5);
    if (h < P.min_size || w < P.min_size) break;
    sizes.push_back({h, w});
  }
  return sizes;
}

inline int gaussian_radius(float sigma) { return static_cast<int>(5.0 * static_cast<double>(sigma)); }

// weights[0..radius] of IPOL's normalised Gaussian (sum over -radius..radius is 1).
inline std::vector<float> gaussian_weights(float sigma) {
  const int radius = gaussian_radius(sigma);
  std::vector<double> w(radius + 1);
  double norm = 0.0;
  for (int i = 0; i <= radius; ++i) {
    w[i] = std::exp(-0.5 * i * i / (static_cast<double>(sigma) * sigma));
    norm += i == 0 ? w[i] : 2.0 * w[i];
  }
  std::vector<float> out(radius + 1);
  for (int i = 0; i <= radius; ++i) out[i] = static_cast<float>(w[i] / norm);
  return out;
}

// Anti-aliasing sigma of IPOL's zoom-out by `step`.
inline float zoom_sigma(float step) {
  return static_cast<float>(0.6 * std::sqrt(1.0 / (static_cast<double>(step) * step) - 1.0));
}

}  // namespace fastmer::common::tvl1
