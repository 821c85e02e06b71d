// Device code and launch sequence of fastmer::tvl1 on CUDA (no torch includes).
//
// Every kernel covers all N pairs of a pyramid level at once (pair = blockIdx.y, pixels in
// a grid-stride loop over blockIdx.x), on the caller's stream. The host only enqueues:
// there is no synchronisation inside the iteration loop. Convergence is tracked per pair
// on the device: iteration k adds its squared update into E[k % 3][pair] (a block
// reduction and one atomicAdd), zeroes E[(k + 1) % 3] for iteration k + 1, and starts by
// reading E[(k - 1) % 3]: a pair whose previous error is below epsilon^2 * area has
// converged for this warp, and its blocks only carry the state over (u, p are
// double-buffered). The median filter between outer iterations reads the same flag.
// The math is common::tvl1's, shared with the CPU kernel and tested there (scheme 1).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "ops/common/tvl1.h"
#include "ops/common/tvl1_host.h"
#include "ops/cuda/launch.cuh"

namespace fastmer::cuda::tvl1 {

using namespace common::tvl1;  // NOLINT: this file is all TV-L1

struct Gauss {
  float w[kMaxGaussianRadius + 1];
  int radius;
};

inline Gauss make_gauss(float sigma) {
  Gauss g{};
  const std::vector<float> w = gaussian_weights(sigma);
  g.radius = static_cast<int>(w.size()) - 1;
  for (int i = 0; i <= g.radius; ++i) g.w[i] = w[i];
  return g;
}

// Pairs on the y grid axis (at most FASTMER_CUDA_MAX_GRID_Y blocks, the rest by striding),
// pixels on x.
inline dim3 pair_grid(int64_t pixels, int64_t pairs) {
  const int64_t y = pairs < FASTMER_CUDA_MAX_GRID_Y ? pairs : FASTMER_CUDA_MAX_GRID_Y;
  return dim3(blocks_for(pixels), static_cast<unsigned int>(y > 0 ? y : 1));
}

#define FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, HW)                                    \
  for (int64_t n = blockIdx.y; n < (N); n += gridDim.y)                             \
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (HW);      \
         i += int64_t{blockDim.x} * gridDim.x)

// ---------------------------------------------------------------------------------------
// Pyramid

__global__ void gaussian_x_kernel(const float* __restrict src, float* __restrict dst, int64_t N, int h, int w, Gauss g) {
  const int64_t hw = int64_t{h} * w;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    dst[n * hw + i] = gaussian_x_at(src + n * hw, w, y, x, g.w, g.radius);
  }
}

__global__ void gaussian_y_kernel(const float* __restrict src, float* __restrict dst, int64_t N, int h, int w, Gauss g) {
  const int64_t hw = int64_t{h} * w;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    dst[n * hw + i] = gaussian_y_at(src + n * hw, h, w, y, x, g.w, g.radius);
  }
}

__global__ void downscale_kernel(const float* __restrict src, float* __restrict dst, int64_t N, int hs, int ws, int hd,
                                 int wd, Params P) {
  const int64_t hws = int64_t{hs} * ws, hwd = int64_t{hd} * wd;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hwd) {
    const int y = static_cast<int>(i / wd), x = static_cast<int>(i % wd);
    dst[n * hwd + i] = downscale_at(src + n * hws, hs, ws, hd, wd, y, x, P);
  }
}

// ---------------------------------------------------------------------------------------
// One level

__global__ void gradient_kernel(const float* __restrict I1, float* __restrict I1x, float* __restrict I1y, int64_t N, int h,
                                int w) {
  const int64_t hw = int64_t{h} * w;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    centered_gradient_at(I1 + n * hw, h, w, y, x, I1x[n * hw + i], I1y[n * hw + i]);
  }
}

template <typename S>
__global__ void warp_kernel(const float* __restrict I0, const float* __restrict I1, const float* __restrict I1x,
                            const float* __restrict I1y, const S* __restrict u1, const S* __restrict u2, S* __restrict wx,
                            S* __restrict wy, S* __restrict grad, S* __restrict rho_c, int64_t N, int h, int w,
                            float cubic_a, int warp_border) {
  const int64_t hw = int64_t{h} * w;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    const int64_t o = n * hw;
    const WarpTerms t = warp_at(I0 + o, I1 + o, I1x + o, I1y + o, h, w, y, x, load(u1 + o + i), load(u2 + o + i), cubic_a,
                                warp_border);
    store(wx + o + i, t.I1wx);
    store(wy + o + i, t.I1wy);
    store(grad + o + i, t.grad);
    store(rho_c + o + i, t.rho_c);
  }
}

// Errors of the warp's first iteration: "not converged" before it, zero accumulator for it.
__global__ void reset_errors_kernel(double* previous, double* current, int64_t N) {
  FASTMER_CUDA_KERNEL_LOOP(n, N) {
    previous[n] = __longlong_as_double(0x7ff0000000000000LL);  // +inf
    current[n] = 0.0;
  }
}

// A converged pair's blocks copy its state into the other buffer of the double buffer.
template <typename S>
__device__ __forceinline__ void carry_over(const Iterates<S>& cur, const Iterates<S>& nxt, int64_t j, bool use_gamma) {
  nxt.u1[j] = cur.u1[j];
  nxt.u2[j] = cur.u2[j];
  nxt.p11[j] = cur.p11[j];
  nxt.p12[j] = cur.p12[j];
  nxt.p21[j] = cur.p21[j];
  nxt.p22[j] = cur.p22[j];
  if (use_gamma) {
    nxt.u3[j] = cur.u3[j];
    nxt.p31[j] = cur.p31[j];
    nxt.p32[j] = cur.p32[j];
  }
}

template <typename S>
__global__ void median_kernel(Iterates<S> cur, Iterates<S> nxt, const double* __restrict previous_error,
                              double scaled_epsilon, int64_t N, int h, int w, int size, bool use_gamma) {
  const int64_t hw = int64_t{h} * w;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    const int64_t o = n * hw;
    if (previous_error[n] <= scaled_epsilon) {  // converged: carry over
      nxt.u1[o + i] = cur.u1[o + i];
      nxt.u2[o + i] = cur.u2[o + i];
    } else {
      const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
      store(nxt.u1 + o + i, median_at(cur.u1 + o, h, w, y, x, size));
      store(nxt.u2 + o + i, median_at(cur.u2 + o, h, w, y, x, size));
    }
    if (use_gamma) nxt.u3[o + i] = cur.u3[o + i];  // not median-filtered, but moves buffers with u
  }
}

// Sum of a float over the block into *target (one atomicAdd per block).
__device__ __forceinline__ void block_add(float value, double* target) {
  __shared__ float partial[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  const int lane = threadIdx.x % 32, warp_id = threadIdx.x / 32;
  if (lane == 0) partial[warp_id] = value;
  __syncthreads();
  if (warp_id == 0) {
    value = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
    if (lane == 0) atomicAdd(target, static_cast<double>(value));
  }
  __syncthreads();
}

// One fused primal-dual iteration (common::tvl1::fused_iteration_at) for every pixel of
// every pair still iterating. Launch with kThreads threads per block.
template <typename S>
__global__ void iteration_kernel(Iterates<S> cur, Iterates<S> nxt, const S* __restrict wx, const S* __restrict wy,
                                 const S* __restrict grad, const S* __restrict rho_c, const double* __restrict previous,
                                 double* current, double* following, double scaled_epsilon, int64_t N, int h, int w,
                                 float l_t, float theta, float gamma, float taut) {
  const int64_t hw = int64_t{h} * w;
  const bool use_gamma = gamma != 0.f;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    if (blockIdx.x == 0 && threadIdx.x == 0) following[n] = 0.0;
    const int64_t o = n * hw;
    const bool converged = previous[n] <= scaled_epsilon;  // uniform across the block
    const StateIn<S> in{cur.u1 + o,  cur.u2 + o,  use_gamma ? cur.u3 + o : nullptr,  cur.p11 + o, cur.p12 + o,
                        cur.p21 + o, cur.p22 + o, use_gamma ? cur.p31 + o : nullptr, use_gamma ? cur.p32 + o : nullptr,
                        wx + o,      wy + o,      grad + o,                          rho_c + o};
    const Iterates<S> out{nxt.u1 + o,  nxt.u2 + o,  nxt.u3 + o,  nxt.p11 + o, nxt.p12 + o,
                          nxt.p21 + o, nxt.p22 + o, nxt.p31 + o, nxt.p32 + o};
    // Every thread runs the same number of loop trips, so block_add's barriers are uniform.
    const int64_t stride = int64_t{blockDim.x} * gridDim.x;
    const int64_t start = blockIdx.x * int64_t{blockDim.x};
    for (int64_t base = start; base < hw; base += stride) {
      const int64_t i = base + threadIdx.x;
      float err = 0.f;
      if (i < hw) {
        if (converged) {
          carry_over(cur, nxt, o + i, use_gamma);
        } else {
          const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
          err = fused_iteration_at(in, out, h, w, y, x, l_t, theta, gamma, taut);
        }
      }
      if (!converged) block_add(err, current + n);
    }
  }
}

template <typename S>
__global__ void upsample_kernel(const S* __restrict src, S* __restrict dst, int64_t N, int hc, int wc, int hf, int wf,
                                float scale, Params P) {
  const int64_t hwc = int64_t{hc} * wc, hwf = int64_t{hf} * wf;
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hwf) {
    const int y = static_cast<int>(i / wf), x = static_cast<int>(i % wf);
    store(dst + n * hwf + i, scale * upsample_at(src + n * hwc, hc, wc, hf, wf, y, x, P));
  }
}

template <typename S>
__global__ void output_kernel(const S* __restrict u1, const S* __restrict u2, float* __restrict flow, int64_t N,
                              int64_t hw) {
  FASTMER_FOR_EACH_PAIR_PIXEL(n, i, N, hw) {
    flow[n * 2 * hw + i] = load(u1 + n * hw + i);
    flow[n * 2 * hw + hw + i] = load(u2 + n * hw + i);
  }
}

// ---------------------------------------------------------------------------------------
// Host side

template <typename S>
class Solver {
 public:
  // Lays the working set out in `workspace` (256-byte aligned buffers). With a null
  // workspace nothing is touched and bytes() is the size to allocate: the same sequence
  // computes both, so they cannot disagree.
  Solver(const Params& P, int64_t N, int H, int W, void* workspace, cudaStream_t stream)
      : P_(P), N_(N), H_(H), W_(W), stream_(stream), sizes_(pyramid_sizes(H, W, P)) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(workspace);
    uintptr_t offset = 0;
    auto take = [&](size_t bytes) {
      const uintptr_t at = base + offset;
      offset += (bytes + 255) / 256 * 256;
      return at;
    };
    errors_ = reinterpret_cast<double*>(take(3 * sizeof(double) * N));
    const size_t plane = static_cast<size_t>(N) * H * W;
    for (const LevelSize& s : sizes_) {
      I0s_.push_back(reinterpret_cast<float*>(take(sizeof(float) * N * s.h * s.w)));
      I1s_.push_back(reinterpret_cast<float*>(take(sizeof(float) * N * s.h * s.w)));
    }
    I1x_ = reinterpret_cast<float*>(take(sizeof(float) * plane));
    I1y_ = reinterpret_cast<float*>(take(sizeof(float) * plane));
    tmp_ = reinterpret_cast<float*>(take(sizeof(float) * plane));
    Iterates<S>* const buffers[] = {&a_, &b_};
    for (Iterates<S>* it : buffers) {
      S** const planes[] = {&it->u1, &it->u2, &it->u3, &it->p11, &it->p12, &it->p21, &it->p22, &it->p31, &it->p32};
      for (S** p : planes) *p = reinterpret_cast<S*>(take(sizeof(S) * plane));
    }
    S** const terms[] = {&wx_, &wy_, &grad_, &rho_c_};
    for (S** p : terms) *p = reinterpret_cast<S*>(take(sizeof(S) * plane));
    bytes_ = offset;
    cur_u_ = &a_;
    nxt_u_ = &b_;
    cur_p_ = &a_;
    nxt_p_ = &b_;
  }

  size_t bytes() const { return bytes_; }

  cudaError_t run(const float* I0, const float* I1, float* flow) {
    cudaError_t err = build_pyramid(I0, I1);
    if (err != cudaSuccess) return err;
    const int L = static_cast<int>(sizes_.size());
    const size_t coarsest = static_cast<size_t>(N_) * sizes_[L - 1].h * sizes_[L - 1].w;
    S* const flow_planes[] = {cur_u_->u1, cur_u_->u2, cur_u_->u3};
    for (S* p : flow_planes)
      if ((err = cudaMemsetAsync(p, 0, sizeof(S) * coarsest, stream_)) != cudaSuccess) return err;
    for (int s = L - 1; s >= 0; --s) {
      if ((err = solve_level(s)) != cudaSuccess) return err;
      if (s > 0 && (err = upsample(s)) != cudaSuccess) return err;
    }
    const int64_t hw = int64_t{H_} * W_;
    FASTMER_LAUNCH(output_kernel<S>, pair_grid(hw, N_), kThreads, 0, stream_, cur_u_->u1, cur_u_->u2, flow, N_, hw);
    return cudaGetLastError();
  }

 private:
  // The u (or p) half of the current/next buffers; median and up-sampling move only u.
  Iterates<S> current() const { return mix(*cur_u_, *cur_p_); }
  Iterates<S> next() const { return mix(*nxt_u_, *nxt_p_); }
  static Iterates<S> mix(const Iterates<S>& u, const Iterates<S>& p) {
    return {u.u1, u.u2, u.u3, p.p11, p.p12, p.p21, p.p22, p.p31, p.p32};
  }
  void swap_u() { std::swap(cur_u_, nxt_u_); }
  void swap_p() { std::swap(cur_p_, nxt_p_); }

  cudaError_t blur(float* image, int h, int w, const Gauss& g, float* out) {
    const dim3 grid = pair_grid(int64_t{h} * w, N_);
    FASTMER_LAUNCH(gaussian_x_kernel, grid, kThreads, 0, stream_, image, tmp_, N_, h, w, g);
    FASTMER_LAUNCH(gaussian_y_kernel, grid, kThreads, 0, stream_, tmp_, out, N_, h, w, g);
    return cudaGetLastError();
  }

  cudaError_t build_pyramid(const float* I0, const float* I1) {
    const size_t bytes = sizeof(float) * N_ * H_ * W_;
    cudaError_t err;
    if ((err = cudaMemcpyAsync(I0s_[0], I0, bytes, cudaMemcpyDeviceToDevice, stream_)) != cudaSuccess) return err;
    if ((err = cudaMemcpyAsync(I1s_[0], I1, bytes, cudaMemcpyDeviceToDevice, stream_)) != cudaSuccess) return err;
    if (P_.presmooth_sigma > 0.f) {
      const Gauss g = make_gauss(P_.presmooth_sigma);
      float* const images[] = {I0s_[0], I1s_[0]};
      for (float* image : images)
        if ((err = blur(image, H_, W_, g, image)) != cudaSuccess) return err;
    }
    const Gauss zoom = P_.pyramid == kPyramidIPOL ? make_gauss(zoom_sigma(P_.scale_step)) : Gauss{};
    for (size_t s = 1; s < sizes_.size(); ++s) {
      const LevelSize src = sizes_[s - 1], dst = sizes_[s];
      std::vector<float*>* const pyramids[] = {&I0s_, &I1s_};
      for (std::vector<float*>* images : pyramids) {
        const float* from = (*images)[s - 1];
        if (P_.pyramid == kPyramidIPOL) {  // anti-alias into I1x_ (free until the levels are solved)
          if ((err = blur((*images)[s - 1], src.h, src.w, zoom, I1x_)) != cudaSuccess) return err;
          from = I1x_;
        }
        FASTMER_LAUNCH(downscale_kernel, pair_grid(int64_t{dst.h} * dst.w, N_), kThreads, 0, stream_, from,
                       (*images)[s], N_, src.h, src.w, dst.h, dst.w, P_);
        if ((err = cudaGetLastError()) != cudaSuccess) return err;
      }
    }
    return cudaSuccess;
  }

  cudaError_t solve_level(int s) {
    const int h = sizes_[s].h, w = sizes_[s].w;
    const int64_t hw = int64_t{h} * w;
    const dim3 grid = pair_grid(hw, N_);
    const double scaled_epsilon = static_cast<double>(P_.epsilon) * P_.epsilon * static_cast<double>(hw);
    const float l_t = P_.lambda * P_.theta, taut = P_.tau / P_.theta;
    cudaError_t err;
    FASTMER_LAUNCH(gradient_kernel, grid, kThreads, 0, stream_, I1s_[s], I1x_, I1y_, N_, h, w);
    S* const dual_planes[] = {cur_p_->p11, cur_p_->p12, cur_p_->p21, cur_p_->p22, cur_p_->p31, cur_p_->p32};
    for (S* p : dual_planes)
      if ((err = cudaMemsetAsync(p, 0, sizeof(S) * N_ * hw, stream_)) != cudaSuccess) return err;
    for (int warp = 0; warp < P_.warps; ++warp) {
      FASTMER_LAUNCH(warp_kernel<S>, grid, kThreads, 0, stream_, I0s_[s], I1s_[s], I1x_, I1y_, cur_u_->u1,
                     cur_u_->u2, wx_, wy_, grad_, rho_c_, N_, h, w, P_.cubic_a, P_.warp_border);
      FASTMER_LAUNCH(reset_errors_kernel, blocks_for(N_), kThreads, 0, stream_, error(k_ + 2), error(k_), N_);
      for (int outer = 0; outer < P_.outer_iterations; ++outer) {
        if (P_.median_size > 1) {
          FASTMER_LAUNCH(median_kernel<S>, grid, kThreads, 0, stream_, current(), next(), error(k_ + 2),
                         scaled_epsilon, N_, h, w, P_.median_size, P_.gamma != 0.f);
          swap_u();
        }
        for (int inner = 0; inner < P_.inner_iterations; ++inner, ++k_) {
          FASTMER_LAUNCH(iteration_kernel<S>, grid, kThreads, 0, stream_, current(), next(), wx_, wy_, grad_,
                         rho_c_, error(k_ + 2), error(k_), error(k_ + 1), scaled_epsilon, N_, h, w, l_t, P_.theta,
                         P_.gamma, taut);
          swap_u();
          swap_p();
        }
        if ((err = cudaGetLastError()) != cudaSuccess) return err;
      }
    }
    return cudaGetLastError();
  }

  cudaError_t upsample(int s) {
    const LevelSize c = sizes_[s], f = sizes_[s - 1];
    const dim3 grid = pair_grid(int64_t{f.h} * f.w, N_);
    const float zoom = 1.f / P_.scale_step;
    FASTMER_LAUNCH(upsample_kernel<S>, grid, kThreads, 0, stream_, cur_u_->u1, nxt_u_->u1, N_, c.h, c.w, f.h, f.w,
                   zoom, P_);
    FASTMER_LAUNCH(upsample_kernel<S>, grid, kThreads, 0, stream_, cur_u_->u2, nxt_u_->u2, N_, c.h, c.w, f.h, f.w,
                   zoom, P_);
    if (P_.gamma != 0.f)
      FASTMER_LAUNCH(upsample_kernel<S>, grid, kThreads, 0, stream_, cur_u_->u3, nxt_u_->u3, N_, c.h, c.w, f.h, f.w,
                     1.f, P_);
    swap_u();
    return cudaGetLastError();
  }

  double* error(int64_t k) { return errors_ + (k % 3) * N_; }

  Params P_;
  int64_t N_;
  int H_, W_;
  cudaStream_t stream_;
  std::vector<LevelSize> sizes_;
  double* errors_;
  std::vector<float*> I0s_, I1s_;
  float *I1x_, *I1y_, *tmp_;
  Iterates<S> a_, b_;
  Iterates<S>* cur_u_;
  Iterates<S>* nxt_u_;
  Iterates<S>* cur_p_;
  Iterates<S>* nxt_p_;
  S *wx_, *wy_, *grad_, *rho_c_;
  int64_t k_ = 0;  // iterations enqueued so far (selects the error ring slots)
  size_t bytes_ = 0;
};

// Bytes of device workspace for N pairs of H x W.
inline size_t workspace_bytes(const Params& P, int64_t N, int H, int W, bool half_state) {
  return half_state ? Solver<__half>(P, N, H, W, nullptr, nullptr).bytes()
                    : Solver<float>(P, N, H, W, nullptr, nullptr).bytes();
}

// flow [N, 2, H, W] from prepared float images I0, I1 [N, H, W]; all pointers on the device.
template <typename S>
cudaError_t run(const Params& P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W, void* workspace,
                cudaStream_t stream) {
  if (N == 0) return cudaSuccess;
  Solver<S> solver(P, N, H, W, workspace, stream);
  return solver.run(I0, I1, flow);
}

#ifdef FASTMER_COMPILE_CHECK
template cudaError_t run<float>(const Params&, const float*, const float*, float*, int64_t, int, int, void*,
                                cudaStream_t);
template cudaError_t run<__half>(const Params&, const float*, const float*, float*, int64_t, int, int, void*,
                                 cudaStream_t);
#endif

}  // namespace fastmer::cuda::tvl1
