// Per-pixel math of fastmer::optical_strain, shared by the CPU and CUDA kernels.
//
// Optical strain (Shreve et al.; used by Bi-WOOF and STSTNet) is the magnitude of the
// infinitesimal strain tensor of the flow (u, v):
//   e_xx = du/dx,  e_yy = dv/dy,  e_xy = e_yx = (du/dy + dv/dx) / 2
//   |e|  = sqrt(e_xx^2 + e_yy^2 + e_xy^2 + e_yx^2)
// Derivatives follow numpy.gradient (edge_order=1): central differences inside,
// one-sided differences on the border, and 0 along an axis of length 1.
#pragma once

#include "ops/common/macros.h"

namespace fastmer::common {

// Stencil of the derivative at index i of an axis of length n:
//   d/di f = (f[hi] - f[lo]) * scale
struct GradientStencil {
  int64_t lo;
  int64_t hi;
  double scale;
};

FASTMER_HD GradientStencil gradient_stencil(int64_t n, int64_t i) {
  if (n < 2) return {i, i, 0.0};
  if (i == 0) return {0, 1, 1.0};
  if (i == n - 1) return {n - 2, n - 1, 1.0};
  return {i - 1, i + 1, 0.5};
}

template <typename T>
FASTMER_HD T strain_magnitude(T du_dx, T du_dy, T dv_dx, T dv_dy) {
  const T e_xy = T(0.5) * (du_dy + dv_dx);
  return fm_sqrt(du_dx * du_dx + dv_dy * dv_dy + T(2) * e_xy * e_xy);
}

// Optical strain at (y, x) of one flow field stored as two H x W planes.
template <typename T>
FASTMER_HD T optical_strain_at(const T* u, const T* v, int64_t H, int64_t W, int64_t y, int64_t x) {
  const GradientStencil sx = gradient_stencil(W, x);
  const GradientStencil sy = gradient_stencil(H, y);
  const int64_t row = y * W;
  const T kx = static_cast<T>(sx.scale);
  const T ky = static_cast<T>(sy.scale);
  const T du_dx = (u[row + sx.hi] - u[row + sx.lo]) * kx;
  const T dv_dx = (v[row + sx.hi] - v[row + sx.lo]) * kx;
  const T du_dy = (u[sy.hi * W + x] - u[sy.lo * W + x]) * ky;
  const T dv_dy = (v[sy.hi * W + x] - v[sy.lo * W + x]) * ky;
  return strain_magnitude(du_dx, du_dy, dv_dx, dv_dy);
}

}  // namespace fastmer::common
