// The sweeps and the energy's smoothness terms for the baseline instruction set (SSE2 on x86-64, NEON on ARM): 4-lane vectors.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bp.h"
#include "dispatch.h"

#define SIFTFLOW_ISA baseline
#define SIFTFLOW_WIDTH 4
#include "sweep_kernels.h"
