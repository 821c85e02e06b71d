// fastmer::tvl1 on the CPU: a batch of pairs through ATen's OpenMP pool, parallel across
// pairs handed out dynamically (each pair's working set stays in one core's cache, and a
// slow core takes fewer pairs) or, when the batch has fewer pairs than threads, across
// bands of rows within each pair. Every pass is fused and its
// inner loops are branch-free so they vectorise.
//
// The inner iteration is one in-place sweep over the rows: the primal step of row y only
// needs the dual field of rows y and y-1 from the previous iteration, and the dual step of
// row y-1 only needs the new u of rows y-1 and y, so running the dual step one row behind
// the primal step computes exactly OpenCV's sequence (TH, divergence, u, gradient, p) in a
// single cache-friendly pass instead of seven full-image passes. Bands of rows sweep in
// parallel and then update the dual field of their last row. Errors are summed per row and
// then in row order, so the result is identical whatever the number of threads or bands.
// The Jacobi stencil of the CUDA kernel is available as scheme 1 so CI exercises it too.
//
// Compiled twice on x86-64 (CMakeLists.txt), like ATen's CPU_CAPABILITY kernels: for the
// baseline ISA and with AVX2/FMA/F16C (-ffp-contract=off, so every element's arithmetic is
// the same IEEE sequence as the baseline's and the CUDA kernels'); the op picks the AVX2
// build when the CPU has it, unless FASTMER_CPU_CAPABILITY=base. Error sums run in a
// fixed order too, so both builds give bit-identical flow (tested).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <limits>
#include <utility>
#include <vector>

#include "ops/common/tvl1.h"
#include "ops/common/tvl1_host.h"
#include "ops/tvl1_args.h"

#ifndef FASTMER_CPU_CAPABILITY
#define FASTMER_CPU_CAPABILITY base
#endif

namespace fastmer::ops {
namespace FASTMER_CPU_CAPABILITY {

// The whole solver, for one CPU capability (defined at the end of this file).
void tvl1_solve(const common::tvl1::Params& P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W,
                int64_t scheme, bool half_state);

namespace {

using namespace common::tvl1;  // NOLINT: the kernel is all TV-L1 math

// The state planes of one pair, sized for the finest level; coarser levels use a prefix.
template <typename S>
struct Planes {
  std::vector<S> u1, u2, u3, p11, p12, p21, p22, p31, p32, I1wx, I1wy, grad, rho_c;

  explicit Planes(size_t n = 0)
      : u1(n), u2(n), u3(n), p11(n), p12(n), p21(n), p22(n), p31(n), p32(n), I1wx(n), I1wy(n), grad(n), rho_c(n) {}

  StateIn<S> in(bool use_gamma) const {
    return {u1.data(),  u2.data(),  use_gamma ? u3.data() : nullptr,  p11.data(),  p12.data(),
            p21.data(), p22.data(), use_gamma ? p31.data() : nullptr, use_gamma ? p32.data() : nullptr,
            I1wx.data(), I1wy.data(), grad.data(), rho_c.data()};
  }

  Iterates<S> out() {
    return {u1.data(), u2.data(), u3.data(), p11.data(), p12.data(), p21.data(), p22.data(), p31.data(), p32.data()};
  }

  // The iteration variables (u, p): what the stencil scheme double-buffers.
  void swap_iterates(Planes& other) {
    for (auto member : {&Planes::u1, &Planes::u2, &Planes::u3, &Planes::p11, &Planes::p12, &Planes::p21, &Planes::p22,
                        &Planes::p31, &Planes::p32})
      std::swap(this->*member, other.*member);
  }
};

// Element-wise compare-exchange of two rows: a <- min, b <- max.
void exchange(float* __restrict a, float* __restrict b, int n) {
#pragma omp simd
  for (int x = 0; x < n; ++x) {
    const float lo = a[x] < b[x] ? a[x] : b[x], hi = a[x] < b[x] ? b[x] : a[x];
    a[x] = lo;
    b[x] = hi;
  }
}

// Sorts the 5 rows v[i0 + k * step] (k = 0..4, rows of `stride` floats) element-wise with
// the optimal 9-comparator network.
void sort5(float* v, int i0, int step, int stride, int n) {
  static constexpr int kNet[9][2] = {{0, 1}, {3, 4}, {2, 4}, {2, 3}, {1, 4}, {0, 3}, {0, 2}, {1, 3}, {1, 2}};
  for (const auto& c : kNet) exchange(v + (i0 + c[0] * step) * stride, v + (i0 + c[1] * step) * stride, n);
}

// Scratch of the median filter, one per thread.
struct MedianScratch {
  std::vector<float> rows, cols, candidates;
  explicit MedianScratch(int W)
      : rows(static_cast<size_t>(kMaxMedianSize) * kMaxMedianSize * W),
        cols(static_cast<size_t>(kMaxMedianSize) * (W + 4)),
        candidates(13 * static_cast<size_t>(W)) {}
};

template <typename S>
class PairSolver {
 public:
  // row_parallel: split each pass over bands of rows on ATen's pool (when the batch has
  // fewer pairs than threads); otherwise this solver runs on a single thread.
  PairSolver(const Params& P, int H, int W, int64_t scheme, bool row_parallel)
      : P_(P),
        H_(H),
        W_(W),
        scheme_(scheme),
        row_parallel_(row_parallel),
        sizes_(pyramid_sizes(H, W, P)),
        use_gamma_(P.gamma != 0.f) {
    const size_t n = static_cast<size_t>(H) * W;
    state_ = Planes<S>(n);
    if (scheme_ == kSchemeStencil) next_ = Planes<S>(n);
    tmp_.resize(n);
    zero_row_.assign(W, S(0.f));
    row_errors_.resize(H);
    pixel_errors_.resize(n);
    I1x_.resize(n);
    I1y_.resize(n);
    blur_.resize(n);
    for (const LevelSize& s : sizes_) {
      I0s_.emplace_back(static_cast<size_t>(s.h) * s.w);
      I1s_.emplace_back(static_cast<size_t>(s.h) * s.w);
    }
    if (P_.presmooth_sigma > 0.f) presmooth_ = gaussian_weights(P_.presmooth_sigma);
    if (P_.pyramid == kPyramidIPOL) {
      zoom_ = gaussian_weights(zoom_sigma(P_.scale_step));
      antialiased_.resize(n);
    }
  }

  // I0, I1: H x W float images; flow: 2 x H x W (u, then v).
  void solve(const float* I0, const float* I1, float* flow) {
    build_pyramid(I0, I1);
    const int coarsest = static_cast<int>(sizes_.size()) - 1;
    const size_t n0 = static_cast<size_t>(sizes_[coarsest].h) * sizes_[coarsest].w;
    std::fill_n(state_.u1.begin(), n0, S(0.f));
    std::fill_n(state_.u2.begin(), n0, S(0.f));
    std::fill_n(state_.u3.begin(), n0, S(0.f));
    for (int s = coarsest; s >= 0; --s) {
      solve_level(s);
      if (s > 0) upsample(s);
    }
    const size_t n = static_cast<size_t>(H_) * W_;
    for (size_t i = 0; i < n; ++i) {
      flow[i] = load(&state_.u1[i]);
      flow[n + i] = load(&state_.u2[i]);
    }
  }

 private:
  // Runs body(first_row, end_row) over [0, h): one call, or bands on the thread pool.
  template <typename Body>
  void for_rows(int h, const Body& body) {
    if (!row_parallel_) {
      body(0, h);
      return;
    }
    at::parallel_for(0, h, 8, [&](int64_t begin, int64_t end) { body(static_cast<int>(begin), static_cast<int>(end)); });
  }

  // Separable Gaussian of an h x w image, in place (through blur_).
  void gaussian(float* img, int h, int w, const std::vector<float>& weights) {
    const int r = static_cast<int>(weights.size()) - 1;
    for_rows(h, [&](int y0, int y1) {
      for (int y = y0; y < y1; ++y)
        for (int x = 0; x < w; ++x) blur_[y * w + x] = gaussian_x_at(img, w, y, x, weights.data(), r);
    });
    for_rows(h, [&](int y0, int y1) {
      for (int y = y0; y < y1; ++y)
        for (int x = 0; x < w; ++x) img[y * w + x] = gaussian_y_at(blur_.data(), h, w, y, x, weights.data(), r);
    });
  }

  void build_pyramid(const float* I0, const float* I1) {
    std::copy_n(I0, static_cast<size_t>(H_) * W_, I0s_[0].begin());
    std::copy_n(I1, static_cast<size_t>(H_) * W_, I1s_[0].begin());
    if (!presmooth_.empty()) {
      gaussian(I0s_[0].data(), H_, W_, presmooth_);
      gaussian(I1s_[0].data(), H_, W_, presmooth_);
    }
    for (size_t s = 1; s < sizes_.size(); ++s) {
      const LevelSize src = sizes_[s - 1], dst = sizes_[s];
      for (auto* images : {&I0s_, &I1s_}) {
        const float* from = (*images)[s - 1].data();
        if (P_.pyramid == kPyramidIPOL) {  // anti-alias a copy, then decimate
          std::copy_n(from, static_cast<size_t>(src.h) * src.w, antialiased_.begin());
          gaussian(antialiased_.data(), src.h, src.w, zoom_);
          from = antialiased_.data();
        }
        float* to = (*images)[s].data();
        for_rows(dst.h, [&](int y0, int y1) {
          for (int y = y0; y < y1; ++y)
            for (int x = 0; x < dst.w; ++x)
              to[y * dst.w + x] = downscale_at(from, src.h, src.w, dst.h, dst.w, y, x, P_);
        });
      }
    }
  }

  void solve_level(int s) {
    const int h = sizes_[s].h, w = sizes_[s].w;
    const size_t n = static_cast<size_t>(h) * w;
    const float* I0 = I0s_[s].data();
    const float* I1 = I1s_[s].data();
    for_rows(h, [&](int y0, int y1) {
      for (int y = y0; y < y1; ++y)
        for (int x = 0; x < w; ++x) centered_gradient_at(I1, h, w, y, x, I1x_[y * w + x], I1y_[y * w + x]);
    });
    for (auto* p : {&state_.p11, &state_.p12, &state_.p21, &state_.p22, &state_.p31, &state_.p32})
      std::fill_n(p->begin(), n, S(0.f));

    const double scaled_epsilon = static_cast<double>(P_.epsilon) * P_.epsilon * static_cast<double>(n);
    const float l_t = P_.lambda * P_.theta;
    const float taut = P_.tau / P_.theta;
    for (int warp = 0; warp < P_.warps; ++warp) {
      for_rows(h, [&](int y0, int y1) {
        for (int y = y0; y < y1; ++y)
          for (int x = 0; x < w; ++x) {
            const int i = y * w + x;
            const WarpTerms t = warp_at(I0, I1, I1x_.data(), I1y_.data(), h, w, y, x, load(&state_.u1[i]),
                                        load(&state_.u2[i]), P_.cubic_a, P_.warp_border);
            store(&state_.I1wx[i], t.I1wx);
            store(&state_.I1wy[i], t.I1wy);
            store(&state_.grad[i], t.grad);
            store(&state_.rho_c[i], t.rho_c);
          }
      });
      double error = std::numeric_limits<double>::infinity();
      for (int outer = 0; error > scaled_epsilon && outer < P_.outer_iterations; ++outer) {
        if (P_.median_size > 1) median(h, w);
        for (int inner = 0; error > scaled_epsilon && inner < P_.inner_iterations; ++inner)
          error = scheme_ == kSchemeStencil ? stencil(h, w, l_t, taut) : sweep(h, w, l_t, taut);
      }
    }
  }

  // Primal step of row y in place. Needs the dual field of rows y and y - 1 (still the
  // previous iteration's). Returns the row's sum of |u_new - u_old|^2.
  float primal_row(int w, int y, float l_t) {
    return use_gamma_ ? primal_row<true>(w, y, l_t) : primal_row<false>(w, y, l_t);
  }

  // Instantiated per gamma use, so that the usual gamma = 0 loop carries no u3/p3 loads.
  template <bool use_gamma>
  float primal_row(int w, int y, float l_t) {
    Planes<S>& st = state_;
    const int o = y * w;
    // The row above, or zeros on the first row (p is zero above the image).
    const S* p12u = y > 0 ? &st.p12[o - w] : zero_row_.data();
    const S* p22u = y > 0 ? &st.p22[o - w] : zero_row_.data();
    const S* p32u = y > 0 ? &st.p32[o - w] : zero_row_.data();
    S* __restrict u1 = &st.u1[o];
    S* __restrict u2 = &st.u2[o];
    S* __restrict u3 = &st.u3[o];
    const S* p11 = &st.p11[o];
    const S* p12 = &st.p12[o];
    const S* p21 = &st.p21[o];
    const S* p22 = &st.p22[o];
    const S* p31 = &st.p31[o];
    const S* p32 = &st.p32[o];
    const S* wx = &st.I1wx[o];
    const S* wy = &st.I1wy[o];
    const S* gr = &st.grad[o];
    const S* rc = &st.rho_c[o];
    const float theta = P_.theta, gamma = use_gamma ? P_.gamma : 0.f;
    float* __restrict errors = &pixel_errors_[o];
    // x = 0 has no left neighbour (p is zero there); the rest is one branch-free loop. The
    // lambda captures by value and the errors go to a row buffer, summed after the loop in x
    // order: with a reference capture or an `omp simd reduction`, GCC ran this loop scalar
    // (2/3 of the time of an iteration), and the fixed order makes the sum the same in
    // every build.
    auto pixel = [=](int x, float p11l, float p21l, float p31l) __attribute__((always_inline)) {
      const WarpTerms t{load(wx + x), load(wy + x), load(gr + x), load(rc + x)};
      const float o1 = load(u1 + x), o2 = load(u2 + x);
      float o3 = 0.f;
      if constexpr (use_gamma) o3 = load(u3 + x);
      float n1 = o1, n2 = o2, n3 = o3;
      const float div1 = (load(p11 + x) - p11l) + (load(p12 + x) - load(p12u + x));
      const float div2 = (load(p21 + x) - p21l) + (load(p22 + x) - load(p22u + x));
      float div3 = 0.f;
      if constexpr (use_gamma) div3 = (load(p31 + x) - p31l) + (load(p32 + x) - load(p32u + x));
      primal_update(n1, n2, n3, t, div1, div2, div3, l_t, theta, gamma);
      store(u1 + x, n1);
      store(u2 + x, n2);
      float e = (n1 - o1) * (n1 - o1) + (n2 - o2) * (n2 - o2);
      if constexpr (use_gamma) {
        store(u3 + x, n3);
        e += (n3 - o3) * (n3 - o3);
      }
      errors[x] = e;
    };
    pixel(0, 0.f, 0.f, 0.f);
#pragma omp simd
    for (int x = 1; x < w; ++x) {
      float p31l = 0.f;
      if constexpr (use_gamma) p31l = load(p31 + x - 1);
      pixel(x, load(p11 + x - 1), load(p21 + x - 1), p31l);
    }
    float err = 0.f;
    for (int x = 0; x < w; ++x) err += errors[x];
    return err;
  }

  // Dual step of one component on a row, from the (already new) u of this row and the
  // next (`below` = 0 on the last row, where d/dy is zero; d/dx is zero in the last column).
  static void dual_component_row(const S* __restrict u, S* __restrict pa, S* __restrict pb, int w, int below,
                                 float taut) {
#pragma omp simd
    for (int x = 0; x < w - 1; ++x) {
      float a = load(pa + x), b = load(pb + x);
      dual_update(a, b, load(u + x + 1) - load(u + x), load(u + x + below) - load(u + x), taut);
      store(pa + x, a);
      store(pb + x, b);
    }
    const int x = w - 1;
    float a = load(pa + x), b = load(pb + x);
    dual_update(a, b, 0.f, load(u + x + below) - load(u + x), taut);
    store(pa + x, a);
    store(pb + x, b);
  }

  void dual_row(int h, int w, int y, float taut) {
    Planes<S>& st = state_;
    const int o = y * w, below = y < h - 1 ? w : 0;
    dual_component_row(&st.u1[o], &st.p11[o], &st.p12[o], w, below, taut);
    dual_component_row(&st.u2[o], &st.p21[o], &st.p22[o], w, below, taut);
    if (use_gamma_) dual_component_row(&st.u3[o], &st.p31[o], &st.p32[o], w, below, taut);
  }

  // Sum of the per-row errors, in row order (the same whatever the banding).
  double total_error(int h) const {
    double error = 0.0;
    for (int y = 0; y < h; ++y) error += row_errors_[y];
    return error;
  }

  double sweep(int h, int w, float l_t, float taut) {
    // Each band [y0, y1) sweeps its rows with the dual step one row behind; the dual step
    // of its last row needs the next band's first row of new u, so it waits for all bands.
    // The bands are fixed here (not left to the pool's chunking) so both phases agree.
    const int bands = row_parallel_ ? std::max(1, std::min(at::get_num_threads(), h / 4)) : 1;
    auto band = [&](int64_t k) { return std::pair<int, int>(static_cast<int>(k * h / bands), static_cast<int>((k + 1) * h / bands)); };
    auto for_bands = [&](const auto& body) {
      if (bands == 1) return body(0);
      at::parallel_for(0, bands, 1, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) body(k);
      });
    };
    for_bands([&](int64_t k) {
      const auto [y0, y1] = band(k);
      for (int y = y0; y < y1; ++y) {
        row_errors_[y] = primal_row(w, y, l_t);
        if (y > y0) dual_row(h, w, y - 1, taut);
      }
    });
    for_bands([&](int64_t k) { dual_row(h, w, band(k).second - 1, taut); });
    return total_error(h);
  }

  double stencil(int h, int w, float l_t, float taut) {
    const StateIn<S> in = state_.in(use_gamma_);
    const Iterates<S> out = next_.out();
    for_rows(h, [&](int y0, int y1) {
      for (int y = y0; y < y1; ++y) {
        float row_error = 0.f;
        for (int x = 0; x < w; ++x) row_error += fused_iteration_at(in, out, h, w, y, x, l_t, P_.theta, P_.gamma, taut);
        row_errors_[y] = row_error;
      }
    });
    state_.swap_iterates(next_);
    return total_error(h);
  }

  // 5x5 median of one row of a plane (replicated border), for every x at once, branch-free
  // so it vectorises. Each column of 5 is sorted once (9 exchanges, shared by 5 windows);
  // each window's 5 rows are then sorted, which leaves the 5x5 matrix sorted along rows and
  // columns. Element (i, j) then has at least (i+1)(j+1) - 1 elements below it and
  // (5-i)(5-j) - 1 above, so only the 13 with (i+1)(j+1) <= 13 and (5-i)(5-j) <= 13 can be
  // the median, and it is the 7th smallest of them (6 smaller ones were excluded):
  // 117 exchanges per pixel instead of 234 for a plain selection.
  static void median5_row(const S* u, int h, int w, int y, S* out, MedianScratch& scratch) {
    float* cols = scratch.cols.data();  // 5 rows of w + 4 (two replicated columns each side)
    const int wp = w + 4;
    for (int k = 0; k < 5; ++k) {
      const S* row = u + clamp_index(y + k - 2, h) * w;
      float* c = cols + k * wp;
      for (int x = 0; x < wp; ++x) c[x] = load(row + clamp_index(x - 2, w));
    }
    sort5(cols, 0, 1, wp, wp);  // each column sorted: cols[k] holds the k-th smallest
    float* m = scratch.rows.data();  // 25 rows of w: m[k * 5 + j][x] = cols[k][x + j]
    for (int k = 0; k < 5; ++k)
      for (int j = 0; j < 5; ++j) std::copy_n(cols + k * wp + j, w, m + (k * 5 + j) * w);
    for (int k = 0; k < 5; ++k) sort5(m, k * 5, 1, w, w);
    static constexpr int kCandidates[13] = {3, 4, 7, 8, 9, 11, 12, 13, 15, 16, 17, 20, 21};  // i * 5 + j
    float* c = scratch.candidates.data();
    for (int q = 0; q < 13; ++q) std::copy_n(m + kCandidates[q] * w, w, c + q * w);
    for (int a = 0; a <= 6; ++a)
      for (int b = a + 1; b < 13; ++b) exchange(c + a * w, c + b * w, w);
    for (int x = 0; x < w; ++x) store(out + x, c[6 * w + x]);
  }

  // Any odd size (3 here): exchange selection of the middle of size^2 values.
  static void median_small_row(const S* u, int h, int w, int y, int size, S* out, MedianScratch& scratch) {
    const int r = size / 2, n = size * size, mid = n / 2;
    float* v = scratch.rows.data();
    int k = 0;
    for (int dy = -r; dy <= r; ++dy) {
      const S* row = u + clamp_index(y + dy, h) * w;
      for (int dx = -r; dx <= r; ++dx, ++k)
        for (int x = 0; x < w; ++x) v[k * w + x] = load(row + clamp_index(x + dx, w));
    }
    for (int a = 0; a <= mid; ++a)
      for (int b = a + 1; b < n; ++b) exchange(v + a * w, v + b * w, w);
    for (int x = 0; x < w; ++x) store(out + x, v[mid * w + x]);
  }

  void median(int h, int w) {
    for (auto member : {&Planes<S>::u1, &Planes<S>::u2}) {
      std::vector<S>& u = state_.*member;
      for_rows(h, [&](int y0, int y1) {
        MedianScratch scratch(W_);
        for (int y = y0; y < y1; ++y) {
          if (P_.median_size == 5)
            median5_row(u.data(), h, w, y, &tmp_[y * w], scratch);
          else
            median_small_row(u.data(), h, w, y, P_.median_size, &tmp_[y * w], scratch);
        }
      });
      std::copy_n(tmp_.begin(), static_cast<size_t>(h) * w, u.begin());
    }
  }

  // Flow of level s -> level s - 1.
  void upsample(int s) {
    const LevelSize c = sizes_[s], f = sizes_[s - 1];
    const float zoom = 1.f / P_.scale_step;
    struct Component {
      std::vector<S>* plane;
      float scale;
    };
    std::vector<Component> components{{&state_.u1, zoom}, {&state_.u2, zoom}};
    if (use_gamma_) components.push_back({&state_.u3, 1.f});
    for (const Component& comp : components) {
      const S* src = comp.plane->data();
      for_rows(f.h, [&](int y0, int y1) {
        for (int y = y0; y < y1; ++y)
          for (int x = 0; x < f.w; ++x)
            store(&tmp_[y * f.w + x], comp.scale * upsample_at(src, c.h, c.w, f.h, f.w, y, x, P_));
      });
      std::copy_n(tmp_.begin(), static_cast<size_t>(f.h) * f.w, comp.plane->begin());
    }
  }

  Params P_;
  int H_, W_;
  int64_t scheme_;
  bool row_parallel_;
  std::vector<LevelSize> sizes_;
  bool use_gamma_;
  Planes<S> state_, next_;
  std::vector<S> tmp_;  // median and up-sampling output
  std::vector<S> zero_row_;
  std::vector<float> row_errors_;
  std::vector<float> pixel_errors_;  // the sweep's |u_new - u_old|^2, summed per row in x order
  std::vector<float> I1x_, I1y_, blur_, antialiased_, presmooth_, zoom_;
  std::vector<std::vector<float>> I0s_, I1s_;
};

template <typename S>
void solve_batch(const Params& P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W,
                 int64_t scheme) {
  const int64_t hw = static_cast<int64_t>(H) * W;
  const int threads = at::get_num_threads();
  if (N >= threads || threads == 1) {
    // Pairs in parallel, handed out one at a time from a shared counter: a thread slowed by a
    // busy core (the decoders beside us in `fastmer extract`, another process) simply takes
    // fewer pairs, and nobody waits on anybody until the batch is done. (Row bands within a
    // pair synchronise twice per iteration; under contention each of those waits costs a time
    // slice, which made the old banded split lose ~75% of its speed to one busy process.)
    std::atomic<int64_t> next{0};
    const int64_t workers = std::min<int64_t>(threads, N);
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
      PairSolver<S> solver(P, H, W, scheme, /*row_parallel=*/false);
      for (int64_t n = next++; n < N; n = next++) solver.solve(I0 + n * hw, I1 + n * hw, flow + n * 2 * hw);
    });
  } else {
    // Fewer pairs than threads: bands of rows of each pair, so no thread idles.
    PairSolver<S> solver(P, H, W, scheme, /*row_parallel=*/true);
    for (int64_t n = 0; n < N; ++n) solver.solve(I0 + n * hw, I1 + n * hw, flow + n * 2 * hw);
  }
}

}  // namespace

void tvl1_solve(const Params& P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W, int64_t scheme,
                bool half_state) {
  if (half_state)
    solve_batch<c10::Half>(P, I0, I1, flow, N, H, W, scheme);
  else
    solve_batch<float>(P, I0, I1, flow, N, H, W, scheme);
}

}  // namespace FASTMER_CPU_CAPABILITY

#if !defined(FASTMER_CPU_VARIANT)  // the op itself lives in the baseline build only
#if defined(FASTMER_CPU_AVX2)
namespace avx2 {
void tvl1_solve(const common::tvl1::Params& P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W,
                int64_t scheme, bool half_state);
}  // namespace avx2
#endif

namespace {

// The AVX2 build when this CPU runs it and FASTMER_CPU_CAPABILITY does not say "base".
bool use_avx2() {
#if defined(FASTMER_CPU_AVX2)
  static const bool supported =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const char* forced = std::getenv("FASTMER_CPU_CAPABILITY");
  return supported && !(forced != nullptr && std::string_view(forced) == "base");
#else
  return false;
#endif
}

at::Tensor tvl1_cpu(const at::Tensor& I0, const at::Tensor& I1, double tau, double lambda, double theta, double gamma,
                    double epsilon, double scale_step, double presmooth_sigma, double cubic_a, int64_t nscales,
                    int64_t warps, int64_t inner_iterations, int64_t outer_iterations, int64_t median_size,
                    int64_t min_size, int64_t pyramid, int64_t warp_border, bool half_state, int64_t scheme) {
  const common::tvl1::Params P =
      tvl1_params(I0, I1, tau, lambda, theta, gamma, epsilon, scale_step, presmooth_sigma, cubic_a, nscales, warps,
                  inner_iterations, outer_iterations, median_size, min_size, pyramid, warp_border);
  TORCH_CHECK(scheme >= kSchemeDefault && scheme <= kSchemeStencil, "fastmer::tvl1: unknown scheme ", scheme);
  if (scheme == kSchemeDefault) scheme = kSchemeSweep;
  const at::Tensor a = I0.contiguous(), b = I1.contiguous();
  const int64_t N = a.size(0);
  const int H = static_cast<int>(a.size(1)), W = static_cast<int>(a.size(2));
  at::Tensor flow = at::empty({N, 2, H, W}, a.options());
  if (N == 0) return flow;
  const float* pa = a.const_data_ptr<float>();
  const float* pb = b.const_data_ptr<float>();
  float* out = flow.mutable_data_ptr<float>();
#if defined(FASTMER_CPU_AVX2)
  if (use_avx2()) {
    avx2::tvl1_solve(P, pa, pb, out, N, H, W, scheme, half_state);
    return flow;
  }
#endif
  base::tvl1_solve(P, pa, pb, out, N, H, W, scheme, half_state);
  return flow;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastmer, CPU, m) { m.impl("tvl1", &tvl1_cpu); }

// The build a tvl1 call on this CPU runs: "avx2" or "base" (for benchmarks and `fastmer info`).
const char* tvl1_cpu_capability() { return use_avx2() ? "avx2" : "base"; }
#endif

}  // namespace fastmer::ops
