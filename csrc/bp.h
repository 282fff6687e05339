// SIFT Flow belief propagation on integers, the original's own schedule (BPFlow::BP_S): the terms of
// the energy (terms.cpp), the sweeps (sweeps.cpp) and the driver of one pyramid level (solve.cpp).
//
// Every array lives in the band layout of bands.h: `data` (bands, steps, L * L, LANES) int32
// indexed [b * L + a] (vertical label b, horizontal a); `range` (2, bands, steps, L, LANES);
// `offsets` (2, bands, steps, LANES); `spatial` (2, bands, steps, 4, L, LANES), the message into a
// pixel from its left, right, upper and lower neighbour; `dual` (2, bands, steps, L, LANES), the
// message into a layer from the other one; labels like offsets. Layer 0 holds the horizontal labels,
// layer 1 the vertical ones. All values are integers >= 0 (alpha, d and gamma are non-negative), so
// where the original adds a double s or d to an int and stores an int, that is adding floor(s) or
// floor(d).
#pragma once

#include "bands.h"

namespace siftflow {

constexpr int MAX_LABELS = 255;  // 2 * window + 1: the sweeps' per-step vectors live on the stack

// One field: the terms of a pyramid level, or of one of its coarser copies (the in-level hierarchy).
struct Field {
    BandGrid grid;
    int count = 0;                 // labels per layer, 2 * window + 1
    Buffer<int32_t> data;          // (bands, steps, count * count, LANES)
    std::vector<int32_t> offsets;  // (2, H, W): the window centres
    double gamma = 0;              // the small-displacement weight
};

struct Smoothness {
    int32_t s = 0, d = 0;      // floor(alpha), floor(d)
    std::vector<int32_t> far;  // far[r] = (int)(r * alpha): the message where two windows do not overlap
    double exact_s = 0, exact_d = 0;
};

struct SweepTerms {
    const BandGrid* grid;
    int count;
    int32_t* spatial;
    int32_t* dual;
    const int32_t* range;
    const int32_t* offsets;
    const int32_t* data;
    const Smoothness* smoothness;
    int32_t* labels;  // nullptr: no labels this sweep
    bool fresh;       // labels does not hold the previous iteration's labels
    int64_t* unary;   // with labels: per band, the data and range terms of the new labels (added to);
                      // nullptr: the energy reads them itself (its masks cost L * L per step: for large L)
};

// whether the sweep sums the energy's data and range terms (SweepTerms::unary) for `count` labels
inline bool sweep_sums_unary(int count) { return count * count <= 81; }

// terms.cpp
Buffer<int32_t> data_term(const uint8_t* sift1, const uint8_t* sift2, int height, int width, int channels,
                          const int32_t* offsets, int window, int threads);
Buffer<int32_t> range_costs(const Field& field, int threads);
Field coarser(const Field& field, int threads);
Buffer<int32_t> finer(const Buffer<int32_t>& coarse, const BandGrid& coarse_grid, const BandGrid& grid, size_t rest,
                      int threads);
// the energy of terms.labels: its smoothness terms, plus its data and range terms (those the sweep
// summed into `unary`, where terms.unary is set)
double energy(const SweepTerms& terms, const std::vector<int64_t>& unary, int threads);

// sweeps.cpp: iteration n updates layer n % 2, forwards (messages sent right and down) when
// n % 4 < 2, and sends the dual messages too when n % 8 < 4.
void sweep(const SweepTerms& terms, int iteration, int threads);

// The kernels compiled once per instruction set (sweep_kernels.h): per label count (5, 7, 9, 21,
// any other), steps first .. last - 1 of one band; and the smoothness terms of one band's labels.
using BlockFunction = void (*)(const SweepTerms& terms, int iteration, int band, int first, int last);
constexpr int BLOCK_COUNTS = 5;
#define SIFTFLOW_DECLARE_KERNELS(isa)                                                   \
    namespace isa {                                                                     \
    extern const BlockFunction blocks[BLOCK_COUNTS];                                    \
    int64_t band_smoothness(const SweepTerms& terms, int band, int32_t s, int32_t d);   \
    }
SIFTFLOW_DECLARE_KERNELS(avx512)
SIFTFLOW_DECLARE_KERNELS(avx2)
SIFTFLOW_DECLARE_KERNELS(baseline)
#undef SIFTFLOW_DECLARE_KERNELS

struct SweepKernels {
    const BlockFunction* blocks;
    int64_t (*band_smoothness)(const SweepTerms& terms, int band, int32_t s, int32_t d);
};
// The build of the instruction set in use (dispatch.h): the one place that chooses among them.
const SweepKernels& sweep_kernels();

}  // namespace siftflow
