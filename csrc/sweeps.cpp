// SIFT Flow's belief-propagation sweeps, LANES scan lines at a time (see bands.h and bp.h).
//
// Any order that keeps a pixel after its left and upper neighbours (right and lower going back)
// gives the original's messages exactly; here the 16 pixels of an anti-diagonal of a band are one
// value of 16 int32 lanes (lanes.h: one AVX-512 register, two AVX2 ones, four SSE2 ones, compiled
// once per instruction set, dispatch.h), and blocks of steps of different bands run in parallel on a
// wavefront. The padding computes on
// zeros, and what it sends is 0 (a message into a pixel from outside the image stays 0, as in the
// original).
#include <algorithm>
#include <cstring>

#include "bp.h"
#include "dispatch.h"

namespace siftflow {
namespace {

constexpr int BLOCK_STEPS = 32;  // steps per unit of parallel work; at least LANES - 1 (see sweep)

BlockFunction block_for(int count) {
    const int which = count == 5 ? 0 : count == 7 ? 1 : count == 9 ? 2 : count == 21 ? 3 : 4;
    return sweep_kernels().blocks[which];
}

}  // namespace

const SweepKernels& sweep_kernels() {
    static const SweepKernels builds[ISA_COUNT] = {
#if SIFTFLOW_LEVELS
        {avx512::blocks, avx512::band_smoothness},
        {avx2::blocks, avx2::band_smoothness},
#else  // never chosen: the dispatch answers BASELINE
        {baseline::blocks, baseline::band_smoothness},
        {baseline::blocks, baseline::band_smoothness},
#endif
        {baseline::blocks, baseline::band_smoothness},
    };
    return builds[isa()];
}

// One iteration of BP_S. Blocks of BLOCK_STEPS steps run in parallel on diagonals 2 * band + block:
// a block needs the one before it in its band, and the upper band's up to LANES - 1 steps ahead
// (going forward; the lower band's going back). On one thread the bands simply run in turn. The
// result does not depend on the number of threads.
void sweep(const SweepTerms& terms, int iteration, int threads) {
    const BandGrid& grid = *terms.grid;
    const BlockFunction run = block_for(terms.count);
    const int bands = grid.bands, steps = grid.steps - 2;  // steps 1 .. steps hold pixels
    const bool forward = iteration % 4 < 2;
    if (threads <= 1 || bands == 1) {
        for (int index = 0; index < bands; ++index) {
            run(terms, iteration, forward ? index : bands - 1 - index, 1, steps + 1);
        }
        return;
    }
    const int blocks = static_cast<int>(ceil_div(steps, BLOCK_STEPS));
    auto diagonal_work = [&](int diagonal, int index) {
        int band = std::max(0, (diagonal - blocks + 2) / 2) + index;
        int block = diagonal - 2 * band;
        if (!forward) {  // the wavefront starts at the bottom-right corner
            band = bands - 1 - band;
            block = blocks - 1 - block;
        }
        const int first = 1 + block * BLOCK_STEPS;
        run(terms, iteration, band, first, std::min(first + BLOCK_STEPS, steps + 1));
    };
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    for (int diagonal = 0; diagonal < 2 * (bands - 1) + blocks; ++diagonal) {
        const int first_band = std::max(0, (diagonal - blocks + 2) / 2);
        const int last_band = std::min(bands - 1, diagonal / 2);
#pragma omp for schedule(dynamic, 1)
        for (int index = 0; index <= last_band - first_band; ++index) diagonal_work(diagonal, index);
    }
#else
    for (int diagonal = 0; diagonal < 2 * (bands - 1) + blocks; ++diagonal) {
        const int first_band = std::max(0, (diagonal - blocks + 2) / 2);
        const int last_band = std::min(bands - 1, diagonal / 2);
        for (int index = 0; index <= last_band - first_band; ++index) diagonal_work(diagonal, index);
    }
#endif
}

}  // namespace siftflow
