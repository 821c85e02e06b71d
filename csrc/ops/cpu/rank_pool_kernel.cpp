#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/checks.h"
#include "ops/common/rank_pool.h"
#include "ops/cpu/parallel.h"

namespace fastmer::ops {
namespace {

template <typename T>
std::vector<T> coefficients(int64_t num_frames) {
  std::vector<T> alpha(num_frames);
  common::RankPoolCoefficients it(num_frames);
  for (int64_t t = 0; t < num_frames; ++t) alpha[t] = static_cast<T>(it.next());
  return alpha;
}

// frames [N, T, P] contiguous -> out [N, P]
template <typename T>
void rank_pool_impl(const T* frames, T* out, int64_t N, int64_t num_frames, int64_t P) {
  const std::vector<T> alpha = coefficients<T>(num_frames);
  // Work items are (clip, chunk of pixels); each streams the clip's frames once while
  // its chunk of the output stays in L1.
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / chunks;
      const int64_t p0 = (job % chunks) * kChunk;
      const int64_t len = std::min(kChunk, P - p0);
      T* o = out + n * P + p0;
      const T* clip = frames + n * num_frames * P + p0;
      const T a0 = alpha[0];
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) o[i] = a0 * clip[i];
      for (int64_t t = 1; t < num_frames; ++t) {
        const T a = alpha[t];
        const T* frame = clip + t * P;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) o[i] += a * frame[i];
      }
    }
  });
}

// grad [N, P] contiguous -> out [N, T, P]. The op is linear: d DI / d I_t = alpha_t.
template <typename T>
void rank_pool_backward_impl(const T* grad, T* out, int64_t N, int64_t num_frames, int64_t P) {
  const std::vector<T> alpha = coefficients<T>(num_frames);
  const int64_t grain = std::max<int64_t>(1, kGrainSize / std::max<int64_t>(P, 1));
  at::parallel_for(0, N * num_frames, grain, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / num_frames, t = job % num_frames;
      const T a = alpha[t];
      const T* src = grad + n * P;
      T* o = out + job * P;
#pragma omp simd
      for (int64_t i = 0; i < P; ++i) o[i] = a * src[i];
    }
  });
}

at::Tensor rank_pool_cpu(const at::Tensor& frames) {
  check_frames(frames, "rank_pool");
  const at::Tensor f = frames.contiguous();
  const int64_t N = f.size(0), T = f.size(1), C = f.size(2), H = f.size(3), W = f.size(4);
  at::Tensor out = at::empty({N, C, H, W}, f.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "rank_pool_cpu", [&] {
    rank_pool_impl<scalar_t>(f.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N, T, C * H * W);
  });
  return out;
}

at::Tensor rank_pool_backward_cpu(const at::Tensor& grad, int64_t num_frames) {
  check_rank_pool_grad(grad, num_frames, "rank_pool_backward");
  const at::Tensor g = grad.contiguous();
  const int64_t N = g.size(0), C = g.size(1), H = g.size(2), W = g.size(3);
  at::Tensor out = at::empty({N, num_frames, C, H, W}, g.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "rank_pool_backward_cpu", [&] {
    rank_pool_backward_impl<scalar_t>(g.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), N,
                                      num_frames, C * H * W);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CPU, m) {
  m.impl("rank_pool", &rank_pool_cpu);
  m.impl("rank_pool_backward", &rank_pool_backward_cpu);
}

}  // namespace fastmer::ops
