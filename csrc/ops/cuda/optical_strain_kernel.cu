#include <torch/library.h>

#include "ops/cuda/flow_map.h"
#include "ops/cuda/optical_strain_kernel.cuh"

namespace fastmer::ops {
namespace {

at::Tensor optical_strain_cuda(const at::Tensor& flow) {
  return flow_map_cuda(flow, "optical_strain",
                       [](const auto* in, auto* out, int64_t N, int64_t H, int64_t W, cudaStream_t stream) {
                         return cuda::launch_optical_strain(in, out, N, H, W, stream);
                       });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CUDA, m) { m.impl("optical_strain", &optical_strain_cuda); }

}  // namespace fastmer::ops
