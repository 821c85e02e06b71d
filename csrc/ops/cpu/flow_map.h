// Glue shared by the CPU ops that map a flow field to one channel (magnitude, strain).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "ops/checks.h"

namespace fastmer::ops {

// flow [N, 2, H, W] -> [N, 1, H, W]; impl(const T* flow, T* out, N, H, W) is the kernel,
// called with contiguous data of the flow's dtype.
template <typename Impl>
at::Tensor flow_map_cpu(const at::Tensor& flow, const char* op, Impl impl) {
  check_flow(flow, op);  // also rules out dtypes the dispatch below would reject
  const at::Tensor f = flow.contiguous();
  const int64_t N = f.size(0), H = f.size(2), W = f.size(3);
  at::Tensor out = at::empty({N, 1, H, W}, f.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "fastmer_flow_map_cpu", [&] {
    impl(f.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, H, W);
  });
  return out;
}

}  // namespace fastmer::ops
