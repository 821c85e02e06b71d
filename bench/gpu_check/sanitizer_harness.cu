// The CUDA launchers on small inputs, without torch, for compute-sanitizer (make gpu-check).
//
// Built by nvcc straight from csrc/ops/cuda/*_kernel.cuh, with the grid caps
// (FASTMER_CUDA_MAX_GRID_X/_Y, launch.cuh) bound to host variables, so one binary runs
// every call twice: with CUDA's caps and with 2 x 2 blocks, where every grid-stride and
// pair-stride loop (and the TV-L1 block reduction's loop) makes several trips — what
// racecheck needs to see the barriers between trips. Results of the two passes must be
// identical where no early stop is involved, and never NaN (outputs and workspace are
// pre-filled with NaN bytes unless --no-prefill, which initcheck runs use so that a read
// of never-written memory is reported).
//
//   sanitizer_harness [--no-prefill]      exit 0: all calls ran and agreed; 1 otherwise
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static int64_t g_max_grid_x = int64_t{1} << 16;
static int64_t g_max_grid_y = 65535;
#define FASTMER_CUDA_MAX_GRID_X g_max_grid_x
#define FASTMER_CUDA_MAX_GRID_Y g_max_grid_y

#include "ops/cuda/flow_magnitude_kernel.cuh"
#include "ops/cuda/optical_strain_kernel.cuh"
#include "ops/cuda/rank_pool_kernel.cuh"
#include "ops/cuda/tvl1_kernel.cuh"

namespace {

bool g_prefill = true;
int g_failures = 0;

void check(cudaError_t status, const std::string& what) {
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  if (status != cudaSuccess) {
    std::fprintf(stderr, "sanitizer_harness: %s: %s\n", what.c_str(), cudaGetErrorString(status));
    std::exit(1);
  }
}

// A device buffer of `count` T, NaN bytes unless --no-prefill.
template <typename T>
T* device_buffer(size_t count, const std::string& what) {
  void* p = nullptr;
  check(cudaMalloc(&p, count * sizeof(T) + 1), "cudaMalloc " + what);
  if (g_prefill) check(cudaMemset(p, 0xFF, count * sizeof(T) + 1), "cudaMemset " + what);
  return static_cast<T*>(p);
}

template <typename T>
std::vector<T> download(const T* device, size_t count, const std::string& what) {
  std::vector<T> host(count);
  check(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "download " + what);
  return host;
}

template <typename T>
T* upload(const std::vector<T>& host, const std::string& what) {
  T* device = device_buffer<T>(host.size(), what);
  check(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload " + what);
  return device;
}

// n pairs of a smooth texture and its shift by a smooth sub-pixel flow, intensities 0..255.
void moving_texture(int64_t n, int h, int w, std::vector<float>& I0, std::vector<float>& I1) {
  I0.resize(n * h * w);
  I1.resize(n * h * w);
  auto texture = [](double x, double y, int64_t k) {
    return 127.5 + 60.0 * std::sin(0.31 * x + k) * std::cos(0.23 * y) + 50.0 * std::sin(0.17 * (x + y) + 2.0 * k);
  };
  for (int64_t k = 0; k < n; ++k)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const double u = (1.0 + 0.5 * k) * std::sin(3.1 * y / h + k), v = 0.8 * std::cos(2.7 * x / w - k);
        I0[(k * h + y) * w + x] = static_cast<float>(texture(x, y, k));
        I1[(k * h + y) * w + x] = static_cast<float>(texture(x - u, y - v, k));
      }
}

template <typename T>
void compare(const std::vector<T>& a, const std::vector<T>& b, const std::string& what, bool exact) {
  size_t nans = 0;
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(static_cast<double>(a[i])) || std::isnan(static_cast<double>(b[i]))) ++nans;
    worst = std::fmax(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  const bool ok = nans == 0 && (!exact || worst == 0.0);
  std::printf("%-44s %s (NaN %zu, max |CUDA caps - 2x2 grid| %.3g)\n", what.c_str(), ok ? "ok" : "FAILED", nans, worst);
  if (!ok) ++g_failures;
}

struct Tvl1Case {
  const char* name;
  fastmer::common::tvl1::Params P;
  bool half_state;
  bool early_stop;  // the stop decision depends on atomics' order: compare NaN-freedom only
};

fastmer::common::tvl1::Params short_params(int pyramid, float gamma, float epsilon) {
  fastmer::common::tvl1::Params P{};
  P.tau = 0.25f;
  P.lambda = 0.15f;
  P.theta = 0.3f;
  P.gamma = gamma;
  P.epsilon = epsilon;
  P.scale_step = pyramid == fastmer::common::tvl1::kPyramidIPOL ? 0.5f : 0.8f;
  P.presmooth_sigma = pyramid == fastmer::common::tvl1::kPyramidIPOL ? 0.8f : 0.f;
  P.cubic_a = pyramid == fastmer::common::tvl1::kPyramidIPOL ? -0.5f : -0.75f;
  P.nscales = 2;
  P.warps = 1;
  P.inner_iterations = 4;
  P.outer_iterations = 2;
  P.median_size = pyramid == fastmer::common::tvl1::kPyramidIPOL ? 1 : 5;
  P.min_size = 16;
  P.pyramid = pyramid;
  P.warp_border = pyramid == fastmer::common::tvl1::kPyramidIPOL ? fastmer::common::tvl1::kWarpBorderReplicate
                                                                : fastmer::common::tvl1::kWarpBorderZero;
  return P;
}

std::vector<float> run_tvl1(const Tvl1Case& c, const std::vector<float>& I0, const std::vector<float>& I1, int64_t n,
                            int h, int w) {
  using namespace fastmer::cuda::tvl1;
  float* a = upload(I0, "I0");
  float* b = upload(I1, "I1");
  float* flow = device_buffer<float>(n * 2 * h * w, "flow");
  void* workspace = device_buffer<unsigned char>(workspace_bytes(c.P, n, h, w, c.half_state), "workspace");
  check(c.half_state ? run<__half>(c.P, a, b, flow, n, h, w, workspace, nullptr)
                     : run<float>(c.P, a, b, flow, n, h, w, workspace, nullptr),
        std::string("tvl1 ") + c.name);
  std::vector<float> out = download(flow, n * 2 * h * w, "flow");
  for (void* p : {static_cast<void*>(a), static_cast<void*>(b), static_cast<void*>(flow), workspace}) cudaFree(p);
  return out;
}

template <typename T>
std::vector<T> run_map(bool strain, const std::vector<T>& flow_host, int64_t n, int64_t h, int64_t w) {
  T* flow = upload(flow_host, "flow");
  T* out = device_buffer<T>(n * h * w, "map");
  check(strain ? fastmer::cuda::launch_optical_strain(flow, out, n, h, w, nullptr)
               : fastmer::cuda::launch_flow_magnitude(flow, out, n, h * w, nullptr),
        strain ? "optical_strain" : "flow_magnitude");
  std::vector<T> result = download(out, n * h * w, "map");
  cudaFree(flow);
  cudaFree(out);
  return result;
}

template <typename T>
std::vector<T> run_rank_pool(bool backward, const std::vector<T>& in_host, int64_t n, int64_t t, int64_t p) {
  T* in = upload(in_host, "rank_pool input");
  const size_t out_count = backward ? n * t * p : n * p;
  T* out = device_buffer<T>(out_count, "rank_pool output");
  check(backward ? fastmer::cuda::launch_rank_pool_backward(in, out, n, t, p, nullptr)
                 : fastmer::cuda::launch_rank_pool(in, out, n, t, p, nullptr),
        backward ? "rank_pool_backward" : "rank_pool");
  std::vector<T> result = download(out, out_count, "rank_pool output");
  cudaFree(in);
  cudaFree(out);
  return result;
}

// Every call with CUDA's grid caps, then with 2 x 2 blocks; the two results compared.
template <typename Call>
void both_grids(const std::string& what, bool exact, Call call) {
  g_max_grid_x = int64_t{1} << 16;
  g_max_grid_y = 65535;
  const auto wide = call();
  g_max_grid_x = 2;
  g_max_grid_y = 2;
  const auto tiny = call();
  g_max_grid_x = int64_t{1} << 16;
  g_max_grid_y = 65535;
  compare(wide, tiny, what, exact);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-prefill") == 0) {
      g_prefill = false;
    } else {
      std::fprintf(stderr, "usage: %s [--no-prefill]\n", argv[0]);
      return 2;
    }
  }
  using fastmer::common::tvl1::kPyramidIPOL;
  using fastmer::common::tvl1::kPyramidOpenCV;
  // 3 pairs of 48 x 64 = 3,072 px: 6 trips of the 2 x 2 grid's 512 threads, 2 pair passes.
  const int64_t n = 3;
  const int h = 48, w = 64;
  std::vector<float> I0, I1;
  moving_texture(n, h, w, I0, I1);
  const Tvl1Case cases[] = {
      {"tvl1 opencv float", short_params(kPyramidOpenCV, 0.f, 1e-12f), false, false},
      {"tvl1 opencv half state", short_params(kPyramidOpenCV, 0.f, 1e-12f), true, false},
      {"tvl1 ipol gamma float", short_params(kPyramidIPOL, 0.2f, 1e-12f), false, false},
      {"tvl1 ipol gamma half state", short_params(kPyramidIPOL, 0.2f, 1e-12f), true, false},
      // epsilon 1: every pair stops after its first iteration (converged blocks carry over)
      {"tvl1 opencv early stop", short_params(kPyramidOpenCV, 0.f, 1.f), false, true},
      {"tvl1 ipol gamma early stop half", short_params(kPyramidIPOL, 0.3f, 1.f), true, true},
  };
  for (const Tvl1Case& c : cases)
    both_grids(c.name, !c.early_stop, [&] { return run_tvl1(c, I0, I1, n, h, w); });

  std::vector<float> flow_f(n * 2 * h * w);
  for (size_t i = 0; i < flow_f.size(); ++i) flow_f[i] = 3.f * std::sin(0.37f * static_cast<float>(i));
  const std::vector<double> flow_d(flow_f.begin(), flow_f.end());
  for (bool strain : {false, true}) {
    const std::string name = strain ? "optical_strain" : "flow_magnitude";
    both_grids(name + " float", true, [&] { return run_map(strain, flow_f, n, h, w); });
    both_grids(name + " double", true, [&] { return run_map(strain, flow_d, n, h, w); });
  }
  const int64_t clips = 2, frames = 7, pixels = h * w;
  std::vector<float> frames_f(clips * frames * pixels);
  for (size_t i = 0; i < frames_f.size(); ++i) frames_f[i] = 255.f * (0.5f + 0.5f * std::sin(0.013f * i));
  const std::vector<double> frames_d(frames_f.begin(), frames_f.end());
  const std::vector<float> grad_f(frames_f.begin(), frames_f.begin() + clips * pixels);
  const std::vector<double> grad_d(grad_f.begin(), grad_f.end());
  both_grids("rank_pool float", true, [&] { return run_rank_pool(false, frames_f, clips, frames, pixels); });
  both_grids("rank_pool double", true, [&] { return run_rank_pool(false, frames_d, clips, frames, pixels); });
  both_grids("rank_pool_backward float", true, [&] { return run_rank_pool(true, grad_f, clips, frames, pixels); });
  both_grids("rank_pool_backward double", true, [&] { return run_rank_pool(true, grad_d, clips, frames, pixels); });

  std::printf("sanitizer_harness: %d failure(s)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
