#pragma once

#include <cstdint>

namespace fastmer::ops {

// Elements of work per at::parallel_for task: ATen's own GRAIN_SIZE, which lives in a
// heavier header (ATen/TensorIterator.h).
constexpr int64_t kGrainSize = 32768;

}  // namespace fastmer::ops
