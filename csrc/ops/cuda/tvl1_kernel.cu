#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/cuda/tvl1_kernel.cuh"
#include "ops/tvl1_args.h"

namespace fastmer::ops {
namespace {

at::Tensor tvl1_cuda(const at::Tensor& I0, const at::Tensor& I1, double tau, double lambda, double theta, double gamma,
                     double epsilon, double scale_step, double presmooth_sigma, double cubic_a, int64_t nscales,
                     int64_t warps, int64_t inner_iterations, int64_t outer_iterations, int64_t median_size,
                     int64_t min_size, int64_t pyramid, int64_t warp_border, bool half_state, int64_t scheme) {
  const common::tvl1::Params P =
      tvl1_params(I0, I1, tau, lambda, theta, gamma, epsilon, scale_step, presmooth_sigma, cubic_a, nscales, warps,
                  inner_iterations, outer_iterations, median_size, min_size, pyramid, warp_border);
  TORCH_CHECK(scheme == kSchemeDefault || scheme == kSchemeStencil,
              "fastmer::tvl1: the CUDA kernel runs the stencil scheme only (the row sweep is CPU-only)");
  const c10::cuda::CUDAGuard guard(I0.device());
  const at::Tensor a = I0.contiguous(), b = I1.contiguous();
  const int64_t N = a.size(0);
  const int H = static_cast<int>(a.size(1)), W = static_cast<int>(a.size(2));
  at::Tensor flow = at::empty({N, 2, H, W}, a.options());
  if (N == 0) return flow;
  // One allocation from torch's caching allocator holds the whole working set.
  at::Tensor workspace = at::empty({static_cast<int64_t>(cuda::tvl1::workspace_bytes(P, N, H, W, half_state))},
                                   a.options().dtype(at::kByte));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* pa = a.const_data_ptr<float>();
  const float* pb = b.const_data_ptr<float>();
  float* out = flow.mutable_data_ptr<float>();
  void* ws = workspace.mutable_data_ptr();
  C10_CUDA_CHECK(half_state ? cuda::tvl1::run<__half>(P, pa, pb, out, N, H, W, ws, stream)
                            : cuda::tvl1::run<float>(P, pa, pb, out, N, H, W, ws, stream));
  return flow;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CUDA, m) { m.impl("tvl1", &tvl1_cuda); }

}  // namespace fastmer::ops
