// Python module fastmer._C. Importing it runs the static TORCH_LIBRARY registrations of
// the ops (torch.ops.fastmer.*); the module itself only exposes build_info(). It
// includes no torch headers on purpose: see CMakeLists.txt.
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace fastmer::ops {
const char* tvl1_cpu_capability();  // csrc/ops/cpu/tvl1_kernel.cpp
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastmer native ops; the ops live in torch.ops.fastmer";
  m.def(
      "build_info",
      [] {
        py::dict info;
        info["torch_version"] = FASTMER_INFO_TORCH_VERSION;
        info["torch_cuda_version"] = FASTMER_INFO_TORCH_CUDA_VERSION;
        info["cuda"] = static_cast<bool>(FASTMER_INFO_CUDA);
        info["cuda_version"] = FASTMER_INFO_CUDA_VERSION;
        info["cuda_archs"] = FASTMER_INFO_CUDA_ARCHS;
        info["cuda_reason"] = FASTMER_INFO_CUDA_REASON;
        info["cxx_compiler"] = FASTMER_INFO_CXX_COMPILER;
        info["openmp"] = FASTMER_INFO_OPENMP;
        info["build_type"] = FASTMER_INFO_BUILD_TYPE;
        return info;
      },
      "How this extension was built: torch version, CUDA on/off with archs, compiler, OpenMP.");
  m.def(
      "cpu_capability", [] { return std::string(fastmer::ops::tvl1_cpu_capability()); },
      "The CPU build a CPU tvl1 call runs now: 'avx2' or 'base' (FASTMER_CPU_CAPABILITY=base forces the latter).");
}
