// The sweeps and the energy's smoothness terms for AVX512 (x86-64-v4): 16-lane vectors.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bp.h"
#include "dispatch.h"

#if SIFTFLOW_LEVELS
#pragma GCC target("arch=x86-64-v4")
#define SIFTFLOW_ISA avx512
#define SIFTFLOW_WIDTH 16
#include "sweep_kernels.h"
#endif
