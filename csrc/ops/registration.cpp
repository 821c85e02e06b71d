// The schema of every fastmer op, declared once. Backends register implementations
// in csrc/ops/{cpu,cuda}/<op>_kernel.*; Python adds fake (meta) kernels and autograd
// in fastmer/ops/.
#include <torch/library.h>

TORCH_LIBRARY(fastmer, m) {
  m.def("flow_magnitude(Tensor flow) -> Tensor");
  m.def("optical_strain(Tensor flow) -> Tensor");
  m.def("rank_pool(Tensor frames) -> Tensor");
  m.def("rank_pool_backward(Tensor grad, int num_frames) -> Tensor");
}
