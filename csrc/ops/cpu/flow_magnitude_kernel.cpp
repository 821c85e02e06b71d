#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/cpu/flow_map.h"
#include "ops/common/flow_magnitude.h"
#include "ops/cpu/parallel.h"

namespace fastmer::ops {
namespace {

// flow [N, 2, H, W] contiguous -> out [N, 1, H, W]
template <typename T>
void flow_magnitude_impl(const T* flow, T* out, int64_t N, int64_t H, int64_t W) {
  const int64_t HW = H * W;
  // One task per (image, row): keeps all threads busy for small batches of large images.
  const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(W, 1));
  at::parallel_for(0, N * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / H, y = r % H;
      const T* u = flow + n * 2 * HW + y * W;
      const T* v = u + HW;
      T* o = out + n * HW + y * W;
#pragma omp simd
      for (int64_t x = 0; x < W; ++x) o[x] = common::flow_magnitude_at(u[x], v[x]);
    }
  });
}

at::Tensor flow_magnitude_cpu(const at::Tensor& flow) {
  return flow_map_cpu(flow, "flow_magnitude", [](const auto* in, auto* out, int64_t N, int64_t H, int64_t W) {
    flow_magnitude_impl(in, out, N, H, W);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CPU, m) { m.impl("flow_magnitude", &flow_magnitude_cpu); }

}  // namespace fastmer::ops
