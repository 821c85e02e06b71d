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

// Level 0 is the input size; each next level is previous * scale_step rounded (half to even
// for the opencv pyramid, as cv::resize's cvRound; half up for IPOL's) and the pyramid stops
// before a side would fall below min_size (OpenCV's and IPOL's rule).
inline int level_side(int previous, double step, int pyramid) {
  const double side = previous * step;
  return pyramid == kPyramidOpenCV ? static_cast<int>(std::nearbyint(side)) : static_cast<int>(side + 0.5);
}

inline std::vector<LevelSize> pyramid_sizes(int H, int W, const Params& P) {
  std::vector<LevelSize> sizes{{H, W}};
  const double step = static_cast<double>(P.scale_step);
  for (int s = 1; s < P.nscales; ++s) {
    const int h = level_side(sizes.back().h, step, P.pyramid);
    const int w = level_side(sizes.back().w, step, P.pyramid);
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
