// The CUDA runtime, as much of it as csrc/ops/cuda/*_kernel.cuh use, on HIP-CPU
// (ROCm/HIP-CPU: each block's threads are fibers, __syncthreads() is a fiber barrier,
// __shared__ and atomics are real). With this directory first on the include path a host
// compiler builds the project's unmodified device code into a CPU library that the tests
// compare with the CPU ops (tests/ops/test_cuda_emulated.py). Never seen by nvcc.
//
// Two defects of HIP-CPU are worked around here (../shared/third_party/README.md):
//  * its stream runner may start a launch while an earlier one of the same stream still
//    runs: launches, memsets and copies run here synchronously on the calling thread, in
//    program order, which is exactly the order a CUDA stream guarantees; no stream thread;
//  * its shuffles model 64-lane wavefronts and wait on a whole-block barrier: the 32-lane
//    __shfl_down_sync below trades values through a per-warp slot array and a barrier over
//    the warp's 32 fibers only, so it works inside `if (warp == 0)`.
// HIP-CPU releases a barrier fiber by fiber from fiber 0 on, so warp 0 always runs first
// after it: a missing barrier that lets another warp overtake warp 0 would never show.
// `threadIdx` is therefore re-mapped here: with a warp rotation r, fiber f is thread
// (f + 32 r) mod blockDim, so warp r runs first and warp 0 last (r = 1).
// Launch configurations are validated as CUDA does (cudaErrorInvalidConfiguration), and
// every launch, memset and copy is counted by name for the tests.
//
// What only nvcc compiles (`__CUDACC__` / `__CUDA_ARCH__` branches), and why the emulated
// build still checks the same arithmetic:
//  * FASTMER_HD is `__host__ __device__ __forceinline__` under nvcc, `inline` here: qualifiers;
//  * fm_sqrt is sqrtf/sqrt on the device, std::sqrt here: all IEEE correctly rounded (nvcc's
//    default -prec-sqrt=true);
//  * load/store<__half> use __half2float/__float2half (round to nearest even) under nvcc;
//    here the generic static_cast of HIP-CPU's __half (half_float::half), which rounds the
//    same way, as does c10::Half in the CPU op that the tests compare with;
//  * FASTMER_LAUNCH is `<<<...>>>` under nvcc (launch.cuh);
//  * the FASTMER_COMPILE_CHECK instantiations serve the nvcc compile check only.
// Not modelled: FMA contraction and other device numerics (nvcc contracts a*b+c; the CPU
// does not), warp-synchronous timing, and races that need another schedule than HIP-CPU's
// in-order barrier release (compute-sanitizer in `make gpu-check` covers those).
#pragma once

#if defined(__CUDACC__)
#error "csrc/emulation is for host compilers; nvcc must use the real CUDA runtime"
#endif

#include <hip/hip_runtime.h>

// HIP-CPU marks kernels and device functions `simd` (GCC then compiles unused SIMD clones of
// every kernel, with warnings) and kernels `flatten`: plain host functions suffice here.
#undef __global__
#define __global__
#undef __device__
#define __device__

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>

using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
constexpr cudaError_t cudaSuccess = hipSuccess;
constexpr cudaError_t cudaErrorInvalidValue = hipErrorInvalidValue;
constexpr cudaError_t cudaErrorInvalidConfiguration = hipErrorInvalidConfiguration;
constexpr cudaError_t cudaErrorLaunchFailure = hipErrorLaunchFailure;

enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };

namespace fastmer::emulation {

// Process-wide state of the emulator (one test process, one thread launching).
struct State {
  cudaError_t last_error = cudaSuccess;  // what cudaGetLastError returns (and clears)
  std::string message;                   // why, for the tests' messages
  int64_t max_grid_x = int64_t{1} << 16; // FASTMER_CUDA_MAX_GRID_X (see launch.cuh)
  int64_t max_grid_y = 65535;            // FASTMER_CUDA_MAX_GRID_Y
  std::map<std::string, int64_t> counts; // launches by kernel name, "memset", "memcpy"
  uint32_t warp_rotation = 0;            // fiber f is thread f + 32 * warp_rotation (mod block)
};

inline State& state() {
  static State s;
  return s;
}

inline void fail(cudaError_t error, const std::string& message) {
  State& s = state();
  if (s.last_error == cudaSuccess) {  // keep the first error, as CUDA's sticky errors do
    s.last_error = error;
    s.message = message;
  }
}

inline int64_t grid_cap_x() { return state().max_grid_x; }
inline int64_t grid_cap_y() { return state().max_grid_y; }

// "warp_kernel<S>" -> "warp_kernel": counts are per kernel, whatever its template arguments.
inline std::string kernel_name(const char* spelled) {
  std::string name(spelled);
  const size_t angle = name.find('<');
  return angle == std::string::npos ? name : name.substr(0, angle);
}

// A launch that CUDA would refuse is refused (and not run).
inline bool valid_configuration(const dim3& grid, const dim3& block, size_t shared_bytes) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  return grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535 &&
         threads >= 1 && threads <= 1024 && block.z <= 64 && shared_bytes <= 48 * 1024;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), run to completion before returning.
// The arguments are converted to the kernel's parameter types first, as a launch does.
template <typename... Params, typename... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t /*stream: one synchronous queue*/, Args&&... args) {
  ++state().counts[kernel_name(name)];
  if (!valid_configuration(grid, block, shared_bytes)) {
    fail(cudaErrorInvalidConfiguration, std::string("invalid launch configuration of ") + name + ": grid (" +
                                            std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
                                            std::to_string(grid.z) + "), block (" + std::to_string(block.x) + ", " +
                                            std::to_string(block.y) + ", " + std::to_string(block.z) + ")");
    return;
  }
  // What hip::detail::launch enqueues on a stream, run here on the calling thread.
  const std::tuple<std::decay_t<Params>...> params{static_cast<std::decay_t<Params>>(std::forward<Args>(args))...};
  auto body = [kernel](auto&&... xs) noexcept { kernel(std::forward<decltype(xs)>(xs)...); };
  struct Fiber_entry {
    const decltype(body)* fn;
    const decltype(params)* args;
    void operator()() const noexcept { std::apply(*fn, *args); }
  };
  hip::detail::Tiled_domain domain{block, grid, static_cast<std::uint32_t>(shared_bytes), Fiber_entry{&body, &params}};
  for_each_tile(domain, body, params);
}

// A barrier over the 32 fibers of the calling thread's warp. HIP-CPU's __syncthreads()
// passes control to the next fiber of the block in a ring; this passes it to the next
// fiber of the warp, so after 32 hand-overs every lane has reached this point and the
// ring continues where it left off (the block's fibers stay in step).
inline void warp_barrier() {
  using hip::detail::Fiber;
  using hip::detail::Tile;
  const std::uint32_t threads = count(Tile::this_tile().dimensions());
  if (threads % 32 != 0) {
    fail(cudaErrorLaunchFailure, "a warp shuffle in a block of " + std::to_string(threads) +
                                     " threads (the emulator models full 32-lane warps only)");
    return;
  }
  hip::detail::this_tile::has_barrier = true;  // the tile's fibers must be run as fibers
  const std::uint32_t tid = id(Fiber::this_fiber());
  const std::uint32_t next = tid / 32 * 32 + (tid + 1) % 32;
  Fiber::yield(Tile::fibers()[next]);
}

// threadIdx of the calling fiber under the warp rotation (see the top of this file).
inline hip::detail::Dim3 thread_index() {
  using hip::detail::Tile;
  const hip::detail::Dim3& block = Tile::this_tile().dimensions();
  const std::uint32_t threads = count(block);
  std::uint32_t flat = id(hip::detail::Fiber::this_fiber());
  if (threads % 32 == 0) flat = (flat + 32 * state().warp_rotation) % threads;
  return extrude(block, flat);
}

struct Thread_idx {
  struct X {
    operator std::uint32_t() const { return thread_index().x; }
  };
  struct Y {
    operator std::uint32_t() const { return thread_index().y; }
  };
  struct Z {
    operator std::uint32_t() const { return thread_index().z; }
  };
  X x;
  Y y;
  Z z;
};
inline constexpr Thread_idx thread_idx{};

// Per-warp slots for one shuffle: [warp][lane] (1024 threads at most per block).
template <typename T>
std::array<std::array<T, 32>, 32>& warp_slots() {
  thread_local std::array<std::array<T, 32>, 32> slots;
  return slots;
}

}  // namespace fastmer::emulation

// CUDA's 32-lane __shfl_down_sync: lane i gets lane i + delta's value (its own where
// i + delta leaves the width-lane segment). Only full-warp masks are modelled: the
// kernels here never shuffle with a partial warp.
template <typename T>
T __shfl_down_sync(unsigned int mask, T var, unsigned int delta, int width = 32) {
  namespace emu = fastmer::emulation;
  if (mask != 0xffffffffu || width < 1 || width > 32 || (width & (width - 1)) != 0) {
    emu::fail(cudaErrorLaunchFailure, "__shfl_down_sync with a partial mask or a width that is not a power of two <= 32");
    return var;
  }
  const std::uint32_t tid = id(hip::detail::Fiber::this_fiber());
  const std::uint32_t lane = tid % 32;
  std::array<T, 32>& slots = emu::warp_slots<T>()[tid / 32];
  slots[lane] = var;
  emu::warp_barrier();  // every lane has published its value
  const std::uint32_t source = lane + delta;
  const T result = lane % width + delta < static_cast<std::uint32_t>(width) ? slots[source] : var;
  emu::warp_barrier();  // every lane has read before any lane publishes the next value
  return result;
}

inline cudaError_t cudaGetLastError() {
  fastmer::emulation::State& s = fastmer::emulation::state();
  return std::exchange(s.last_error, cudaSuccess);
}

inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t /*stream*/) {
  ++fastmer::emulation::state().counts["memset"];
  if (bytes != 0 && ptr == nullptr) return cudaErrorInvalidValue;
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind /*kind*/,
                                   cudaStream_t /*stream*/) {
  ++fastmer::emulation::state().counts["memcpy"];
  if (bytes != 0 && (dst == nullptr || src == nullptr)) return cudaErrorInvalidValue;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

// The kernels' threadIdx is the rotated one.
#define threadIdx (::fastmer::emulation::thread_idx)

// Grid caps read at run time, so one build tests both the real caps and tiny ones.
#define FASTMER_CUDA_MAX_GRID_X (::fastmer::emulation::grid_cap_x())
#define FASTMER_CUDA_MAX_GRID_Y (::fastmer::emulation::grid_cap_y())
