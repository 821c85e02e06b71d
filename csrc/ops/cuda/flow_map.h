// Glue shared by the CUDA ops that map a flow field to one channel (magnitude, strain).
// Host code that includes torch; the device code stays in the torch-free *_kernel.cuh.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/checks.h"

namespace fastmer::ops {

// flow [N, 2, H, W] -> [N, 1, H, W]; launch(const T* flow, T* out, N, H, W, stream)
// enqueues the kernel on the current stream and returns its launch status.
template <typename Launch>
at::Tensor flow_map_cuda(const at::Tensor& flow, const char* op, Launch launch) {
  check_flow(flow, op);
  const c10::cuda::CUDAGuard guard(flow.device());
  const at::Tensor f = flow.contiguous();
  const int64_t N = f.size(0), H = f.size(2), W = f.size(3);
  at::Tensor out = at::empty({N, 1, H, W}, f.options());
  if (out.numel() == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "fastmer_flow_map_cuda", [&] {
    C10_CUDA_CHECK(launch(f.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, H, W, stream));
  });
  return out;
}

}  // namespace fastmer::ops
