// The project's CUDA launchers, built by a host compiler against HIP-CPU (see
// cuda_runtime.h beside this file), behind a plain C interface that the tests load with
// ctypes (tests/ops/cuda_emulation.py). "Device" pointers are host pointers here; every
// call runs to completion before it returns. Each entry returns 0 or a cudaError_t, and
// fastmer_emu_message() says why.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/cuda/flow_magnitude_kernel.cuh"
#include "ops/cuda/optical_strain_kernel.cuh"
#include "ops/cuda/rank_pool_kernel.cuh"
#include "ops/cuda/tvl1_kernel.cuh"

namespace {

namespace emu = fastmer::emulation;
using fastmer::common::tvl1::Params;

// The launcher's own status, or the first error raised inside the emulator (a bad shuffle,
// a refused launch), which a launcher that does not check cudaGetLastError would miss.
int finish(cudaError_t status) {
  const cudaError_t pending = cudaGetLastError();
  if (status == cudaSuccess) status = pending;
  if (status != cudaSuccess && emu::state().message.empty()) emu::state().message = "CUDA error " + std::to_string(status);
  return static_cast<int>(status);
}

void begin() { emu::state().message.clear(); }

template <typename T>
int rank_pool(const void* frames, void* out, int64_t N, int64_t T_, int64_t P) {
  begin();
  return finish(fastmer::cuda::launch_rank_pool<T>(static_cast<const T*>(frames), static_cast<T*>(out), N, T_, P,
                                                   nullptr));
}

template <typename T>
int rank_pool_backward(const void* grad, void* out, int64_t N, int64_t T_, int64_t P) {
  begin();
  return finish(fastmer::cuda::launch_rank_pool_backward<T>(static_cast<const T*>(grad), static_cast<T*>(out), N, T_,
                                                            P, nullptr));
}

}  // namespace

extern "C" {

// sizeof(common::tvl1::Params), so the caller can check its mirror of the struct.
size_t fastmer_emu_params_size() { return sizeof(Params); }

const char* fastmer_emu_message() { return emu::state().message.c_str(); }

// Grid caps (FASTMER_CUDA_MAX_GRID_X / _Y); <= 0 restores CUDA's.
void fastmer_emu_set_grid_caps(int64_t max_x, int64_t max_y) {
  emu::state().max_grid_x = max_x > 0 ? max_x : int64_t{1} << 16;
  emu::state().max_grid_y = max_y > 0 ? max_y : 65535;
}

// Fiber f runs thread (f + 32 * warps) mod blockDim: 1 schedules warp 0 last after every
// barrier instead of first; 0 restores HIP-CPU's order.
void fastmer_emu_set_warp_rotation(int warps) { emu::state().warp_rotation = warps > 0 ? warps : 0; }

// Launches, memsets and copies so far, as "name=count;..." (sorted by name); returns the
// text's length. With a buffer of at least that length + 1 the text is copied and the
// counts restart from zero; with no buffer, only the length is returned.
size_t fastmer_emu_take_counts(char* buffer, size_t size) {
  std::string text;
  for (const auto& [name, count] : emu::state().counts) text += name + "=" + std::to_string(count) + ";";
  if (buffer != nullptr && size > text.size()) {
    text.copy(buffer, text.size());
    buffer[text.size()] = '\0';
    emu::state().counts.clear();
  }
  return text.size();
}

size_t fastmer_emu_tvl1_workspace_bytes(const Params* P, int64_t N, int H, int W, int half_state) {
  return fastmer::cuda::tvl1::workspace_bytes(*P, N, H, W, half_state != 0);
}

// I0, I1 [N, H, W] float, prepared as for the op; flow [N, 2, H, W]; workspace of
// fastmer_emu_tvl1_workspace_bytes (its contents need not be initialised).
int fastmer_emu_tvl1(const Params* P, const float* I0, const float* I1, float* flow, int64_t N, int H, int W,
                     void* workspace, int half_state) {
  begin();
  return finish(half_state ? fastmer::cuda::tvl1::run<__half>(*P, I0, I1, flow, N, H, W, workspace, nullptr)
                           : fastmer::cuda::tvl1::run<float>(*P, I0, I1, flow, N, H, W, workspace, nullptr));
}

// flow [N, 2, H, W] -> out [N, 1, H, W]; double_precision selects double over float.
int fastmer_emu_flow_magnitude(const void* flow, void* out, int64_t N, int64_t H, int64_t W, int double_precision) {
  begin();
  return finish(double_precision ? fastmer::cuda::launch_flow_magnitude(static_cast<const double*>(flow),
                                                                        static_cast<double*>(out), N, H * W, nullptr)
                                 : fastmer::cuda::launch_flow_magnitude(static_cast<const float*>(flow),
                                                                        static_cast<float*>(out), N, H * W, nullptr));
}

int fastmer_emu_optical_strain(const void* flow, void* out, int64_t N, int64_t H, int64_t W, int double_precision) {
  begin();
  return finish(double_precision ? fastmer::cuda::launch_optical_strain(static_cast<const double*>(flow),
                                                                        static_cast<double*>(out), N, H, W, nullptr)
                                 : fastmer::cuda::launch_optical_strain(static_cast<const float*>(flow),
                                                                        static_cast<float*>(out), N, H, W, nullptr));
}

// frames [N, T, P] -> out [N, P]
int fastmer_emu_rank_pool(const void* frames, void* out, int64_t N, int64_t T_, int64_t P, int double_precision) {
  return double_precision ? rank_pool<double>(frames, out, N, T_, P) : rank_pool<float>(frames, out, N, T_, P);
}

// grad [N, P] -> out [N, T, P]
int fastmer_emu_rank_pool_backward(const void* grad, void* out, int64_t N, int64_t T_, int64_t P,
                                   int double_precision) {
  return double_precision ? rank_pool_backward<double>(grad, out, N, T_, P)
                          : rank_pool_backward<float>(grad, out, N, T_, P);
}

}  // extern "C"
