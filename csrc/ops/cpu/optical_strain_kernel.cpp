#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/cpu/flow_map.h"
#include "ops/common/optical_strain.h"
#include "ops/cpu/parallel.h"

namespace fastmer::ops {
namespace {

// flow [N, 2, H, W] contiguous -> out [N, 1, H, W]
template <typename T>
void optical_strain_impl(const T* flow, T* out, int64_t N, int64_t H, int64_t W) {
  const int64_t HW = H * W;
  const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(4 * W, 1));
  at::parallel_for(0, N * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / H, y = r % H;
      const T* u = flow + n * 2 * HW;
      const T* v = u + HW;
      T* o = out + n * HW + y * W;
      // The y-stencil is fixed for the whole row, so the interior x-loop is branch-free
      // and vectorises; the two border columns take the generic (shared) path.
      const common::GradientStencil sy = common::gradient_stencil(H, y);
      const T ky = static_cast<T>(sy.scale);
      const T* u_lo = u + sy.lo * W;
      const T* u_hi = u + sy.hi * W;
      const T* v_lo = v + sy.lo * W;
      const T* v_hi = v + sy.hi * W;
      const T* u_row = u + y * W;
      const T* v_row = v + y * W;
#pragma omp simd
      for (int64_t x = 1; x < W - 1; ++x) {
        const T du_dx = (u_row[x + 1] - u_row[x - 1]) * T(0.5);
        const T dv_dx = (v_row[x + 1] - v_row[x - 1]) * T(0.5);
        o[x] = common::strain_magnitude(du_dx, (u_hi[x] - u_lo[x]) * ky, dv_dx, (v_hi[x] - v_lo[x]) * ky);
      }
      o[0] = common::optical_strain_at(u, v, H, W, y, int64_t{0});
      if (W > 1) o[W - 1] = common::optical_strain_at(u, v, H, W, y, W - 1);
    }
  });
}

at::Tensor optical_strain_cpu(const at::Tensor& flow) {
  return flow_map_cpu(flow, "optical_strain", [](const auto* in, auto* out, int64_t N, int64_t H, int64_t W) {
    optical_strain_impl(in, out, N, H, W);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CPU, m) { m.impl("optical_strain", &optical_strain_cpu); }

}  // namespace fastmer::ops
