// The sweeps and the energy's smoothness terms for AVX2 (x86-64-v3): 8-lane vectors.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bp.h"
#include "dispatch.h"

#if SIFTFLOW_LEVELS
#pragma GCC target("arch=x86-64-v3")
#define SIFTFLOW_ISA avx2
#define SIFTFLOW_WIDTH 8
#include "sweep_kernels.h"
#endif
