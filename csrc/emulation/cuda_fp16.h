// CUDA's __half on HIP-CPU (half_float::half: IEEE binary16, round to nearest even, as
// __float2half and c10::Half). See cuda_runtime.h beside this file.
#pragma once

#include "cuda_runtime.h"
