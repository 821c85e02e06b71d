// Per-pixel math of fastmer::tvl1, shared by the CPU and CUDA kernels (no torch includes).
//
// Dual TV-L1 optical flow: Zach, Pock & Bischof, "A duality based approach for realtime
// TV-L1 optical flow" (DAGM 2007), in the numerical form of Sánchez Pérez, Meinhardt-Llopis
// & Facciolo, "TV-L1 optical flow estimation" (IPOL 2013) that OpenCV's DualTVL1 also uses:
//
//   for each pyramid level (coarse to fine), for each warp:
//     warp I1, dI1/dx, dI1/dy to x + u (bicubic)            -> I1wx, I1wy, grad, rho_c
//     repeat (outer, median filter of u first; inner):
//       v  = TH(u)                    thresholding of the linearised data term
//       u  = v + theta * div(p)       primal step
//       p  = (p + taut grad u) / (1 + taut |grad u|)   dual step (taut = tau / theta)
//     until sum |u_new - u_old|^2 <= epsilon^2 * area or the iteration budget is spent.
//
// The pure-PyTorch reference (fastmer/ops/tvl1.py) implements the same formulas.
#pragma once

#include "ops/common/macros.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace fastmer::common::tvl1 {

enum Pyramid : int {
  // cv::resize(fx = fy = scale_step, INTER_LINEAR) down: sizes rounded half to even, sources
  // at (x + 0.5) / scale_step - 0.5 (not at the size ratio); bilinear flow up-sampling.
  kPyramidOpenCV = 0,
  kPyramidIPOL = 1,  // Gaussian anti-aliasing + cubic decimation, cubic flow up-sampling
};

// What the warps of I1 and its gradients read outside the image.
enum WarpBorder : int {
  kWarpBorderReplicate = 0,  // the nearest border pixel (IPOL)
  kWarpBorderZero = 1,       // zero, tap by tap (cv::remap's default BORDER_CONSTANT, as OpenCV's TV-L1 warps)
};

constexpr int kMaxMedianSize = 5;
constexpr int kMaxGaussianRadius = 32;

// Everything the kernels need; fastmer/ops/tvl1.py documents each parameter.
struct Params {
  float tau;
  float lambda;
  float theta;
  float gamma;
  float epsilon;
  float scale_step;
  float presmooth_sigma;  // Gaussian on both images before the pyramid (0 = none)
  float cubic_a;          // Keys' cubic parameter: -0.75 (OpenCV) or -0.5 (Catmull-Rom, IPOL)
  int nscales;
  int warps;
  int inner_iterations;
  int outer_iterations;
  int median_size;  // 1 (off), 3 or 5
  int min_size;     // coarsest level side, pixels
  int pyramid;      // Pyramid
  int warp_border;  // WarpBorder
};

// ---------------------------------------------------------------------------------------
// Storage: the iteration state may be kept in half precision (arithmetic stays float).

template <typename S>
FASTMER_HD float load(const S* p) {
  return static_cast<float>(*p);
}

template <typename S>
FASTMER_HD void store(S* p, float v) {
  *p = static_cast<S>(v);
}

// CUDA's __half converts only through intrinsics (torch builds with __CUDA_NO_HALF_CONVERSIONS__).
// Elsewhere (c10::Half on the CPU, HIP-CPU's half in the emulated CUDA build) the generic
// casts above apply; all of them round to nearest even.
#if defined(__CUDACC__)
template <>
FASTMER_HD float load<__half>(const __half* p) {
  return __half2float(*p);
}

template <>
FASTMER_HD void store<__half>(__half* p, float v) {
  *p = __float2half(v);
}
#endif

// ---------------------------------------------------------------------------------------
// Indexing

FASTMER_HD int clamp_index(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

// Symmetric extension: ... c b a | a b c ... c b a | a b c ...
FASTMER_HD int reflect_index(int i, int n) {
  while (i < 0 || i >= n) {
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - i - 1;
  }
  return i;
}

// ---------------------------------------------------------------------------------------
// Interpolation

// Keys' cubic convolution weights for the taps at -1, 0, 1, 2 around a sample at offset t.
FASTMER_HD void cubic_weights(float t, float a, float w[4]) {
  const float x0 = t + 1.f, x1 = t, x2 = 1.f - t, x3 = 2.f - t;
  w[0] = ((a * x0 - 5.f * a) * x0 + 8.f * a) * x0 - 4.f * a;
  w[1] = ((a + 2.f) * x1 - (a + 3.f)) * x1 * x1 + 1.f;
  w[2] = ((a + 2.f) * x2 - (a + 3.f)) * x2 * x2 + 1.f;
  w[3] = ((a * x3 - 5.f * a) * x3 + 8.f * a) * x3 - 4.f * a;
}

// The 4x4 taps (clamped to the image: replicated border) and weights of a cubic sample.
struct CubicTaps {
  int x[4];
  int y[4];
  float wx[4];
  float wy[4];
};

// zero_border: a tap outside the image reads zero (its weight is dropped) instead of the
// nearest border pixel; the index is still clamped so every read stays inside.
FASTMER_HD CubicTaps cubic_taps(float fx, float fy, int H, int W, float a, bool zero_border = false) {
  // Beyond one pixel outside, every tap is clamped to the border (or weighs 0, the tap at
  // the border having weight 0 at t = 0) anyway; this also keeps floor() finite for huge
  // or NaN coordinates.
  fx = fminf(fmaxf(fx, -2.f), static_cast<float>(W + 1));
  fy = fminf(fmaxf(fy, -2.f), static_cast<float>(H + 1));
  const float x0 = floorf(fx), y0 = floorf(fy);
  CubicTaps c;
  cubic_weights(fx - x0, a, c.wx);
  cubic_weights(fy - y0, a, c.wy);
  for (int k = 0; k < 4; ++k) {
    const int xk = static_cast<int>(x0) - 1 + k, yk = static_cast<int>(y0) - 1 + k;
    c.x[k] = clamp_index(xk, W);
    c.y[k] = clamp_index(yk, H);
    if (zero_border) {
      if (xk != c.x[k]) c.wx[k] = 0.f;
      if (yk != c.y[k]) c.wy[k] = 0.f;
    }
  }
  return c;
}

template <typename T>
FASTMER_HD float cubic_sample(const T* img, int W, const CubicTaps& c) {
  float acc = 0.f;
  for (int j = 0; j < 4; ++j) {
    const T* row = img + c.y[j] * W;
    const float r = c.wx[0] * load(row + c.x[0]) + c.wx[1] * load(row + c.x[1]) + c.wx[2] * load(row + c.x[2]) +
                    c.wx[3] * load(row + c.x[3]);
    acc += c.wy[j] * r;
  }
  return acc;
}

// Bilinear resampling of src (h x w) at output pixel (y, x), with half-pixel centres and
// clamped sources (cv::resize INTER_LINEAR, torch interpolate(mode="bilinear",
// align_corners=False)): the source of x is (x + 0.5) * scale_x - 0.5.
template <typename T>
FASTMER_HD float bilinear_at(const T* src, int h, int w, float scale_y, float scale_x, int y, int x) {
  const float sy = fminf(fmaxf(scale_y * (y + 0.5f) - 0.5f, 0.f), static_cast<float>(h - 1));
  const float sx = fminf(fmaxf(scale_x * (x + 0.5f) - 0.5f, 0.f), static_cast<float>(w - 1));
  const int y0 = static_cast<int>(sy), x0 = static_cast<int>(sx);
  const int y1 = y0 + (y0 < h - 1 ? 1 : 0), x1 = x0 + (x0 < w - 1 ? 1 : 0);
  const float ly = sy - y0, lx = sx - x0;
  const T* r0 = src + y0 * w;
  const T* r1 = src + y1 * w;
  return (1.f - ly) * ((1.f - lx) * load(r0 + x0) + lx * load(r0 + x1)) +
         ly * ((1.f - lx) * load(r1 + x0) + lx * load(r1 + x1));
}

// ... to the size (H_out x W_out): the scales are the size ratios (cv::resize with dsize).
template <typename T>
FASTMER_HD float bilinear_resize_at(const T* src, int h, int w, int H_out, int W_out, int y, int x) {
  return bilinear_at(src, h, w, static_cast<float>(h) / H_out, static_cast<float>(w) / W_out, y, x);
}

// Separable Gaussian (IPOL's): weights[0..radius] of the normalised symmetric kernel,
// radius = floor(5 sigma); symmetric extension at the border.
template <typename T>
FASTMER_HD float gaussian_x_at(const T* img, int W, int y, int x, const float* weights, int radius) {
  const T* row = img + y * W;
  float acc = weights[0] * load(row + x);
  for (int k = 1; k <= radius; ++k) acc += weights[k] * (load(row + reflect_index(x - k, W)) + load(row + reflect_index(x + k, W)));
  return acc;
}

template <typename T>
FASTMER_HD float gaussian_y_at(const T* img, int H, int W, int y, int x, const float* weights, int radius) {
  float acc = weights[0] * load(img + y * W + x);
  for (int k = 1; k <= radius; ++k)
    acc += weights[k] * (load(img + reflect_index(y - k, H) * W + x) + load(img + reflect_index(y + k, H) * W + x));
  return acc;
}

// ---------------------------------------------------------------------------------------
// Derivatives

// Centred differences; on the border 0.5 * one-sided difference (IPOL's and OpenCV's rule).
template <typename T>
FASTMER_HD void centered_gradient_at(const T* img, int H, int W, int y, int x, float& dx, float& dy) {
  const int xl = x > 0 ? x - 1 : x, xr = x < W - 1 ? x + 1 : x;
  const int yu = y > 0 ? y - 1 : y, yd = y < H - 1 ? y + 1 : y;
  dx = 0.5f * (load(img + y * W + xr) - load(img + y * W + xl));
  dy = 0.5f * (load(img + yd * W + x) - load(img + yu * W + x));
}

// Divergence of the dual field (p1, p2) by backward differences; p1 (p2) is taken as zero
// left of the first column (above the first row).
template <typename S>
FASTMER_HD float divergence_at(const S* p1, const S* p2, int W, int y, int x) {
  const int i = y * W + x;
  float d = load(p1 + i) + load(p2 + i);
  if (x > 0) d -= load(p1 + i - 1);
  if (y > 0) d -= load(p2 + i - W);
  return d;
}

// ---------------------------------------------------------------------------------------
// Warping: the linearised data term around the current flow u0 at one pixel.

struct WarpTerms {
  float I1wx;   // dI1/dx at x + u0
  float I1wy;   // dI1/dy at x + u0
  float grad;   // |grad I1(x + u0)|^2
  float rho_c;  // I1(x + u0) - grad I1(x + u0) . u0 - I0(x)
};

FASTMER_HD WarpTerms warp_at(const float* I0, const float* I1, const float* I1x, const float* I1y, int H, int W, int y,
                             int x, float u1, float u2, float cubic_a, int warp_border) {
  const CubicTaps c = cubic_taps(x + u1, y + u2, H, W, cubic_a, warp_border == kWarpBorderZero);
  const float w = cubic_sample(I1, W, c);
  WarpTerms t;
  t.I1wx = cubic_sample(I1x, W, c);
  t.I1wy = cubic_sample(I1y, W, c);
  t.grad = t.I1wx * t.I1wx + t.I1wy * t.I1wy;
  t.rho_c = w - t.I1wx * u1 - t.I1wy * u2 - I0[y * W + x];
  return t;
}

// ---------------------------------------------------------------------------------------
// One iteration at one pixel

// Primal step: thresholding TH of the data term, then u = v + theta * div p. Updates
// (u1, u2[, u3]) in place. l_t = lambda * theta. With gamma != 0 the illumination
// variable u3 enters the data term (OpenCV's formulation: grad excludes gamma^2).
FASTMER_HD void primal_update(float& u1, float& u2, float& u3, const WarpTerms& w, float div1, float div2, float div3,
                              float l_t, float theta, float gamma) {
  const bool use_gamma = gamma != 0.f;
  const float rho = w.rho_c + (w.I1wx * u1 + w.I1wy * u2) + (use_gamma ? gamma * u3 : 0.f);
  // TH: a step of l_t along -+grad when |rho| is large, else onto rho = 0. Written as
  // selects (no branches) so CPU loops vectorise and GPU warps do not diverge.
  const float lg = l_t * w.grad;
  const bool flat = !(w.grad > 1.1920929e-07f);  // FLT_EPSILON
  const float fi = -rho / (flat ? 1.f : w.grad);
  const float coef = rho < -lg ? l_t : (rho > lg ? -l_t : (flat ? 0.f : fi));
  const float v1 = u1 + coef * w.I1wx, v2 = u2 + coef * w.I1wy;
  u1 = v1 + theta * div1;
  u2 = v2 + theta * div2;
  if (use_gamma) {
    const float v3 = u3 + coef * gamma;
    u3 = v3 + theta * div3;
  }
}

// Dual step for one component: p = (p + taut * grad u) / (1 + taut * |grad u|).
FASTMER_HD void dual_update(float& p1, float& p2, float ux, float uy, float taut) {
  const float ng = 1.f + taut * fm_sqrt(ux * ux + uy * uy);
  p1 = (p1 + taut * ux) / ng;
  p2 = (p2 + taut * uy) / ng;
}

// The state of one pair at one pyramid level (planes of H x W), read-only view.
template <typename S>
struct StateIn {
  const S* u1;
  const S* u2;
  const S* u3;  // nullptr unless gamma != 0
  const S* p11;
  const S* p12;
  const S* p21;
  const S* p22;
  const S* p31;  // nullptr unless gamma != 0
  const S* p32;
  const S* I1wx;
  const S* I1wy;
  const S* grad;
  const S* rho_c;
};

// The iteration variables (u, p) of one pair (or of a batch, on the CUDA side), writable.
template <typename S>
struct Iterates {
  S* u1;
  S* u2;
  S* u3;
  S* p11;
  S* p12;
  S* p21;
  S* p22;
  S* p31;
  S* p32;
};

// New u at (y, x), from the old u there and the old p around it.
template <typename S>
FASTMER_HD void primal_at(const StateIn<S>& s, int W, int y, int x, float l_t, float theta, float gamma, float& u1,
                          float& u2, float& u3) {
  const int i = y * W + x;
  WarpTerms w;
  w.I1wx = load(s.I1wx + i);
  w.I1wy = load(s.I1wy + i);
  w.grad = load(s.grad + i);
  w.rho_c = load(s.rho_c + i);
  u1 = load(s.u1 + i);
  u2 = load(s.u2 + i);
  const bool use_gamma = gamma != 0.f;
  u3 = use_gamma ? load(s.u3 + i) : 0.f;
  const float div1 = divergence_at(s.p11, s.p12, W, y, x);
  const float div2 = divergence_at(s.p21, s.p22, W, y, x);
  const float div3 = use_gamma ? divergence_at(s.p31, s.p32, W, y, x) : 0.f;
  primal_update(u1, u2, u3, w, div1, div2, div3, l_t, theta, gamma);
}

// A whole iteration at (y, x) from the old state alone (Jacobi form, the CUDA scheme):
// the new u here and at the right and lower neighbours (recomputed, not communicated) give
// the forward gradient for the new p here. Writes u and p at (y, x) into `out` and returns
// this pixel's |u_new - u_old|^2.
template <typename S>
FASTMER_HD float fused_iteration_at(const StateIn<S>& s, const Iterates<S>& out, int H, int W, int y, int x, float l_t,
                                    float theta, float gamma, float taut) {
  const int i = y * W + x;
  const bool use_gamma = gamma != 0.f;
  const float o1 = load(s.u1 + i), o2 = load(s.u2 + i), o3 = use_gamma ? load(s.u3 + i) : 0.f;
  float c1, c2, c3;
  primal_at(s, W, y, x, l_t, theta, gamma, c1, c2, c3);
  float ux1 = 0.f, ux2 = 0.f, ux3 = 0.f, uy1 = 0.f, uy2 = 0.f, uy3 = 0.f;
  if (x < W - 1) {
    float r1, r2, r3;
    primal_at(s, W, y, x + 1, l_t, theta, gamma, r1, r2, r3);
    ux1 = r1 - c1;
    ux2 = r2 - c2;
    ux3 = r3 - c3;
  }
  if (y < H - 1) {
    float d1, d2, d3;
    primal_at(s, W, y + 1, x, l_t, theta, gamma, d1, d2, d3);
    uy1 = d1 - c1;
    uy2 = d2 - c2;
    uy3 = d3 - c3;
  }
  float p11 = load(s.p11 + i), p12 = load(s.p12 + i), p21 = load(s.p21 + i), p22 = load(s.p22 + i);
  dual_update(p11, p12, ux1, uy1, taut);
  dual_update(p21, p22, ux2, uy2, taut);
  store(out.u1 + i, c1);
  store(out.u2 + i, c2);
  store(out.p11 + i, p11);
  store(out.p12 + i, p12);
  store(out.p21 + i, p21);
  store(out.p22 + i, p22);
  float err = (c1 - o1) * (c1 - o1) + (c2 - o2) * (c2 - o2);
  if (use_gamma) {
    float p31 = load(s.p31 + i), p32 = load(s.p32 + i);
    dual_update(p31, p32, ux3, uy3, taut);
    store(out.u3 + i, c3);
    store(out.p31 + i, p31);
    store(out.p32 + i, p32);
    err += (c3 - o3) * (c3 - o3);
  }
  return err;
}

// ---------------------------------------------------------------------------------------
// Median filter (size x size, replicated border), used on u between outer iterations.

template <typename S>
FASTMER_HD float median_at(const S* src, int H, int W, int y, int x, int size) {
  float v[kMaxMedianSize * kMaxMedianSize];
  const int r = size / 2;
  int n = 0;
  for (int dy = -r; dy <= r; ++dy) {
    const S* row = src + clamp_index(y + dy, H) * W;
    for (int dx = -r; dx <= r; ++dx) v[n++] = load(row + clamp_index(x + dx, W));
  }
  // Partial selection sort up to the middle element.
  const int mid = n / 2;
  for (int a = 0; a <= mid; ++a) {
    int best = a;
    for (int b = a + 1; b < n; ++b)
      if (v[b] < v[best]) best = b;
    const float t = v[a];
    v[a] = v[best];
    v[best] = t;
  }
  return v[mid];
}

}  // namespace fastmer::common::tvl1

// ---------------------------------------------------------------------------------------
// Pyramid resampling at one output pixel (the two conventions of Pyramid).

namespace fastmer::common::tvl1 {

// Down-sampling from a level (hs x ws) to the next (hd x wd). For kPyramidIPOL `src` must
// already be Gaussian-filtered (sigma = 0.6 sqrt(1/step^2 - 1)); samples at x / step.
FASTMER_HD float downscale_at(const float* src, int hs, int ws, int hd, int wd, int y, int x, const Params& P) {
  // OpenCV resizes by the factor, not to the size: its coarse levels are a hair larger than
  // the size ratio says (102 px of a 128-px image cover 127.5 px, not 128).
  if (P.pyramid == kPyramidOpenCV) return bilinear_at(src, hs, ws, 1.f / P.scale_step, 1.f / P.scale_step, y, x);
  const CubicTaps c = cubic_taps(x / P.scale_step, y / P.scale_step, hs, ws, P.cubic_a);
  return cubic_sample(src, ws, c);
}

// Up-sampling of a flow component from (hc x wc) to the finer (hf x wf); the caller scales
// u1, u2 by 1 / scale_step (not the illumination variable u3).
template <typename S>
FASTMER_HD float upsample_at(const S* src, int hc, int wc, int hf, int wf, int y, int x, const Params& P) {
  if (P.pyramid == kPyramidOpenCV) return bilinear_resize_at(src, hc, wc, hf, wf, y, x);
  const CubicTaps c = cubic_taps(x * (static_cast<float>(wc) / wf), y * (static_cast<float>(hc) / hf), hc, wc,
                                 P.cubic_a);
  return cubic_sample(src, wc, c);
}

}  // namespace fastmer::common::tvl1
