#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/checks.h"
#include "ops/cuda/rank_pool_kernel.cuh"

namespace fastmer::ops {
namespace {

at::Tensor rank_pool_cuda(const at::Tensor& frames) {
  check_frames(frames, "rank_pool");
  const c10::cuda::CUDAGuard guard(frames.device());
  const at::Tensor f = frames.contiguous();
  const int64_t N = f.size(0), T = f.size(1), C = f.size(2), H = f.size(3), W = f.size(4);
  at::Tensor out = at::empty({N, C, H, W}, f.options());
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "rank_pool_cuda", [&] {
    C10_CUDA_CHECK(cuda::launch_rank_pool<scalar_t>(f.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                                    N, T, C * H * W, stream));
  });
  return out;
}

at::Tensor rank_pool_backward_cuda(const at::Tensor& grad, int64_t num_frames) {
  check_rank_pool_grad(grad, num_frames, "rank_pool_backward");
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor g = grad.contiguous();
  const int64_t N = g.size(0), C = g.size(1), H = g.size(2), W = g.size(3);
  at::Tensor out = at::empty({N, num_frames, C, H, W}, g.options());
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "rank_pool_backward_cuda", [&] {
    C10_CUDA_CHECK(cuda::launch_rank_pool_backward<scalar_t>(
        g.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, num_frames, C * H * W, stream));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CUDA, m) {
  m.impl("rank_pool", &rank_pool_cuda);
  m.impl("rank_pool_backward", &rank_pool_backward_cuda);
}

}  // namespace fastmer::ops
