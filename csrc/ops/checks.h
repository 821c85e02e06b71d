// Argument checks shared by the CPU and CUDA implementations. The Python wrappers
// validate first with friendlier messages; these keep direct torch.ops calls safe.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace fastmer::ops {

inline void check_floating(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "fastmer::", op, ": ", arg,
              " must be float32 or float64, got ", t.scalar_type());
}

inline void check_flow(const at::Tensor& flow, const char* op) {
  TORCH_CHECK(flow.dim() == 4 && flow.size(1) == 2, "fastmer::", op, ": expected flow of shape [N, 2, H, W], got ",
              flow.sizes());
  check_floating(flow, op, "flow");
}

inline void check_frames(const at::Tensor& frames, const char* op) {
  TORCH_CHECK(frames.dim() == 5, "fastmer::", op, ": expected frames of shape [N, T, C, H, W], got ",
              frames.sizes());
  TORCH_CHECK(frames.size(1) >= 1, "fastmer::", op, ": need at least one frame (T >= 1), got ", frames.sizes());
  check_floating(frames, op, "frames");
}

inline void check_rank_pool_grad(const at::Tensor& grad, int64_t num_frames, const char* op) {
  TORCH_CHECK(grad.dim() == 4, "fastmer::", op, ": expected grad of shape [N, C, H, W], got ", grad.sizes());
  TORCH_CHECK(num_frames >= 1, "fastmer::", op, ": num_frames must be >= 1, got ", num_frames);
  check_floating(grad, op, "grad");
}

}  // namespace fastmer::ops
