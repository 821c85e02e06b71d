// Arguments of fastmer::tvl1 -> common::tvl1::Params, validated once for every backend.
// The Python wrapper (fastmer/ops/tvl1.py) validates first, with friendlier messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "ops/common/tvl1.h"
#include "ops/common/tvl1_host.h"

namespace fastmer::ops {

// Scheme of the inner iteration: the CPU's in-place row sweep or the CUDA's Jacobi
// stencil (also available on the CPU, which is how CI tests the CUDA path's math).
enum Tvl1Scheme : int64_t { kSchemeDefault = -1, kSchemeSweep = 0, kSchemeStencil = 1 };

inline common::tvl1::Params tvl1_params(const at::Tensor& I0, const at::Tensor& I1, double tau, double lambda,
                                        double theta, double gamma, double epsilon, double scale_step,
                                        double presmooth_sigma, double cubic_a, int64_t nscales, int64_t warps,
                                        int64_t inner_iterations, int64_t outer_iterations, int64_t median_size,
                                        int64_t min_size, int64_t pyramid, int64_t warp_border) {
  TORCH_CHECK(I0.dim() == 3, "fastmer::tvl1: expected I0 of shape [N, H, W], got ", I0.sizes());
  TORCH_CHECK(I1.sizes() == I0.sizes(), "fastmer::tvl1: I1 has shape ", I1.sizes(), " but I0 has ", I0.sizes());
  TORCH_CHECK(I0.scalar_type() == at::kFloat && I1.scalar_type() == at::kFloat,
              "fastmer::tvl1: I0 and I1 must be float32 (0..255 intensities)");
  TORCH_CHECK(I0.device() == I1.device(), "fastmer::tvl1: I0 is on ", I0.device(), " but I1 on ", I1.device());
  TORCH_CHECK(tau > 0 && lambda > 0 && theta > 0 && epsilon > 0, "fastmer::tvl1: tau, lambda, theta, epsilon must be > 0");
  TORCH_CHECK(scale_step > 0 && scale_step < 1, "fastmer::tvl1: scale_step must be in (0, 1), got ", scale_step);
  TORCH_CHECK(nscales >= 1 && warps >= 1 && inner_iterations >= 1 && outer_iterations >= 1,
              "fastmer::tvl1: nscales, warps, inner_iterations, outer_iterations must be >= 1");
  TORCH_CHECK(median_size == 1 || median_size == 3 || median_size == 5,
              "fastmer::tvl1: median_size must be 1 (off), 3 or 5, got ", median_size);
  TORCH_CHECK(pyramid == common::tvl1::kPyramidOpenCV || pyramid == common::tvl1::kPyramidIPOL,
              "fastmer::tvl1: pyramid must be 0 (opencv) or 1 (ipol), got ", pyramid);
  TORCH_CHECK(warp_border == common::tvl1::kWarpBorderReplicate || warp_border == common::tvl1::kWarpBorderZero,
              "fastmer::tvl1: warp_border must be 0 (replicate) or 1 (zero), got ", warp_border);
  TORCH_CHECK(min_size >= 4, "fastmer::tvl1: min_size must be >= 4, got ", min_size);
  TORCH_CHECK(I0.size(1) >= min_size && I0.size(2) >= min_size, "fastmer::tvl1: images of ", I0.size(1), "x",
              I0.size(2), " are smaller than the coarsest pyramid level (", min_size, " px)");
  TORCH_CHECK(presmooth_sigma >= 0 && common::tvl1::gaussian_radius(static_cast<float>(presmooth_sigma)) <=
                                          common::tvl1::kMaxGaussianRadius,
              "fastmer::tvl1: presmooth_sigma must be in [0, 6.4], got ", presmooth_sigma);
  common::tvl1::Params P;
  P.tau = static_cast<float>(tau);
  P.lambda = static_cast<float>(lambda);
  P.theta = static_cast<float>(theta);
  P.gamma = static_cast<float>(gamma);
  P.epsilon = static_cast<float>(epsilon);
  P.scale_step = static_cast<float>(scale_step);
  P.presmooth_sigma = static_cast<float>(presmooth_sigma);
  P.cubic_a = static_cast<float>(cubic_a);
  P.nscales = static_cast<int>(nscales);
  P.warps = static_cast<int>(warps);
  P.inner_iterations = static_cast<int>(inner_iterations);
  P.outer_iterations = static_cast<int>(outer_iterations);
  P.median_size = static_cast<int>(median_size);
  P.min_size = static_cast<int>(min_size);
  P.pyramid = static_cast<int>(pyramid);
  P.warp_border = static_cast<int>(warp_border);
  TORCH_CHECK(P.pyramid != common::tvl1::kPyramidIPOL ||
                  common::tvl1::gaussian_radius(common::tvl1::zoom_sigma(P.scale_step)) <=
                      common::tvl1::kMaxGaussianRadius,
              "fastmer::tvl1: scale_step ", scale_step, " is too small for the ipol pyramid (needs >= 0.1)");
  return P;
}

}  // namespace fastmer::ops
