// The schema of every fastmer op, declared once. Backends register implementations
// in csrc/ops/{cpu,cuda}/<op>_kernel.*; Python adds fake (meta) kernels and autograd
// in fastmer/ops/.
#include <torch/library.h>

TORCH_LIBRARY(fastmer, m) {
  m.def("flow_magnitude(Tensor flow) -> Tensor");
  m.def("optical_strain(Tensor flow) -> Tensor");
  m.def("rank_pool(Tensor frames) -> Tensor");
  m.def("rank_pool_backward(Tensor grad, int num_frames) -> Tensor");
  m.def(
      "tvl1(Tensor I0, Tensor I1, float tau, float lambda_, float theta, float gamma, float epsilon, "
      "float scale_step, float presmooth_sigma, float cubic_a, int nscales, int warps, int inner_iterations, "
      "int outer_iterations, int median_size, int min_size, int pyramid, int warp_border, bool half_state, int scheme) -> Tensor");
}
