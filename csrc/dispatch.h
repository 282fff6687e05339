// Which instruction set the hand-vectorised kernels (the sweeps, the energy) run with, chosen once
// per process: the best the CPU has, or SIFTFLOW_NN_ISA=avx512|avx2|baseline (the tests run every
// one of them against the reference; all give the same bits). Each kernel is compiled once per
// instruction set, with its own vector width (lanes.h); the other kernels, plain loops that the
// compiler vectorises itself, are multiversioned by SIFTFLOW_CLONES (common.h) instead.
#pragma once

#include <string>

#include "common.h"

namespace siftflow {

enum Isa { AVX512 = 0, AVX2 = 1, BASELINE = 2, ISA_COUNT = 3 };

Isa isa();                // the one in use
const char* isa_name();   // "avx512", "avx2" or "baseline"
// Switches to another the CPU has (the tests run every build in one process); returns the one before.
// Not while a kernel runs.
std::string use_isa(const std::string& name);

#if SIFTFLOW_X86_LEVELS    // common.h: GCC 12 or later on x86-64 Linux
#define SIFTFLOW_LEVELS 1  // sweeps_avx512.cpp and sweeps_avx2.cpp build their kernels
#else                      // one build, 4-lane vectors (SSE2, NEON): the dispatch always answers BASELINE
#define SIFTFLOW_LEVELS 0
#endif

}  // namespace siftflow
