#include <torch/library.h>

#include "ops/cuda/flow_map.h"
#include "ops/cuda/flow_magnitude_kernel.cuh"

namespace fastmer::ops {
namespace {

at::Tensor flow_magnitude_cuda(const at::Tensor& flow) {
  return flow_map_cuda(flow, "flow_magnitude",
                       [](const auto* in, auto* out, int64_t N, int64_t H, int64_t W, cudaStream_t stream) {
                         return cuda::launch_flow_magnitude(in, out, N, H * W, stream);
                       });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CUDA, m) { m.impl("flow_magnitude", &flow_magnitude_cuda); }

}  // namespace fastmer::ops
