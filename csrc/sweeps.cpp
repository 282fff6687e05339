// SIFT Flow's belief-propagation sweeps, LANES scan lines at a time (see bands.h and bp.h).
//
// Any order that keeps a pixel after its left and upper neighbours (right and lower going back)
// gives the original's messages exactly; here the 16 pixels of an anti-diagonal of a band are one
// vector of int32, and blocks of steps of different bands run in parallel on a wavefront. The
// padding computes on zeros, and what it sends is 0 (a message into a pixel from outside the image
// stays 0, as in the original).
#include <algorithm>
#include <cstdlib>

#include "bp.h"

namespace siftflow {
namespace {

constexpr int BLOCK_STEPS = 32;  // steps per unit of parallel work; at least LANES - 1 (see sweep)
constexpr int LEFT = 0, RIGHT = 1, ABOVE = 2, BELOW = 3;  // message slots: where the message comes from

using Lanes = int32_t[LANES];

// The per-step vectors of one sweep block, on the stack: count x LANES each.
struct Scratch {
    alignas(64) int32_t total[MAX_LABELS][LANES];
    alignas(64) int32_t belief[MAX_LABELS][LANES];
    alignas(64) int32_t message[MAX_LABELS][LANES];
    alignas(64) int32_t receiver_offset[LANES];
    alignas(64) int32_t sends[LANES];  // 1 where the lane has a receiver that way, else 0
    alignas(64) int32_t cap[LANES];
    alignas(64) int32_t shift[LANES];
};

// `count` is a compile-time constant for the windows the defaults use (N > 0), else N == 0 and it
// is read at run time: the label loops then have constant trip counts where it matters most.
template <int N>
struct Step {
    const SweepTerms& t;
    const int count;
    const int bands, steps;  // steps: the array's, padding included
    Scratch& v;

    SIFTFLOW_INLINE int labels() const { return N > 0 ? N : count; }
    SIFTFLOW_INLINE size_t cell() const { return static_cast<size_t>(labels()) * LANES; }
    SIFTFLOW_INLINE size_t plane() const { return static_cast<size_t>(bands) * steps; }

    SIFTFLOW_INLINE int32_t* spatial(int layer, int band, int step, int slot) const {
        return t.spatial + ((layer * plane() + static_cast<size_t>(band) * steps + step) * 4 + slot) * cell();
    }
    SIFTFLOW_INLINE const int32_t* by_label(const int32_t* array, int layer, int band, int step) const {
        return array + (layer * plane() + static_cast<size_t>(band) * steps + step) * cell();
    }
    SIFTFLOW_INLINE int32_t* dual(int layer, int band, int step) const {
        return t.dual + (layer * plane() + static_cast<size_t>(band) * steps + step) * cell();
    }
    SIFTFLOW_INLINE const int32_t* offsets(int layer, int band, int step) const {
        return t.offsets + (layer * plane() + static_cast<size_t>(band) * steps + step) * LANES;
    }

    // A step's beliefs in one layer: range cost + dual message + the 4 spatial messages.
    SIFTFLOW_INLINE void belief(int layer, int band, int step, int32_t (*out)[LANES]) const {
        const int L = labels();
        const int32_t* SIFTFLOW_RESTRICT range = by_label(t.range, layer, band, step);
        const int32_t* SIFTFLOW_RESTRICT dual_in = by_label(t.dual, layer, band, step);
        const int32_t* SIFTFLOW_RESTRICT sp = spatial(layer, band, step, 0);
        const size_t slot = cell();
        for (int label = 0; label < L; ++label) {
            const size_t i = static_cast<size_t>(label) * LANES;
            for (int k = 0; k < LANES; ++k) {
                out[label][k] = range[i + k] + dual_in[i + k] + sp[i + k] + sp[slot + i + k] + sp[2 * slot + i + k] +
                                sp[3 * slot + i + k];
            }
        }
    }

    // The messages of one step's lanes to their neighbours one way, into v.message: the truncated-L1
    // distance transform of the sender's belief without what the receiver sent (slot `excluded`;
    // O(L), Felzenszwalb and Huttenlocher 2006), read at the receiver's labels (the windows are
    // shifted by the offset difference), capped at min + d, normalised; 0 where v.sends says a lane
    // has no neighbour that way. v.receiver_offset: the receivers' offsets.
    SIFTFLOW_INLINE void message(int layer, int band, int step, int excluded, bool origin) const {
        const int L = labels();
        const int32_t last = L - 1;
        const int32_t s = t.smoothness->s, d = t.smoothness->d;
        const int32_t* far = t.smoothness->far.data();
        int32_t(*h)[LANES] = v.belief;
        int32_t(*out)[LANES] = v.message;
        const int32_t* SIFTFLOW_RESTRICT from_receiver = spatial(layer, band, step, excluded);
        const int32_t* SIFTFLOW_RESTRICT own_offset = offsets(layer, band, step);
        for (int label = 0; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) h[label][k] = v.total[label][k] - from_receiver[label * LANES + k];
        }
        for (int k = 0; k < LANES; ++k) {
            v.cap[k] = h[0][k];
            v.shift[k] = v.receiver_offset[k] - own_offset[k];
        }
        for (int label = 1; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) v.cap[k] = std::min(v.cap[k], h[label][k]);
        }
        for (int k = 0; k < LANES; ++k) v.cap[k] += d;
        for (int label = 1; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) h[label][k] = std::min(h[label][k], h[label - 1][k] + s);
        }
        for (int label = L - 2; label >= 0; --label) {
            for (int k = 0; k < LANES; ++k) h[label][k] = std::min(h[label][k], h[label + 1][k] + s);
        }
        // Receiver label r reads the sender's label r + shift, and beyond the sender's window its edge
        // value + s per label. The shift differs from lane to lane, but each lane's is one of a few
        // values: one pass per shift some lane has, with constant indices inside (no gather).
        for (int label = 0; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) out[label][k] = h[label][k];
        }
        int32_t least = last, greatest = -last;
        for (int k = 0; k < LANES; ++k) {
            least = std::min(least, v.shift[k]);
            greatest = std::max(greatest, v.shift[k]);
        }
        for (int32_t shift = std::max(least, -last); shift <= std::min(greatest, last); ++shift) {
            int32_t found = 0;
            for (int k = 0; k < LANES; ++k) found |= v.shift[k] == shift;
            if (shift == 0 || !found) continue;
            for (int label = 0; label < L; ++label) {
                const int32_t source = std::min(std::max(label + shift, 0), last);
                const int32_t beyond = std::abs(label + shift - source) * s;
                for (int k = 0; k < LANES; ++k) {
                    out[label][k] = v.shift[k] == shift ? h[source][k] + beyond : out[label][k];
                }
            }
        }
        for (int label = 0; label < L; ++label) {  // where the windows do not overlap, the original's ramp
            const int32_t ramp = far[label];
            for (int k = 0; k < LANES; ++k) {
                out[label][k] = std::min(std::abs(v.shift[k]) <= last ? out[label][k] : ramp, v.cap[k]);
            }
        }
        if (origin && std::abs(v.shift[0]) > last) {  // the ramp is negative when the original sends from pixel 0
            for (int label = 0; label < L; ++label) out[label][0] = std::min(-far[label], v.cap[0]);
        }
        for (int label = 0; label < L; ++label) {  // the cap is one of the candidates: it becomes the least one
            for (int k = 0; k < LANES; ++k) v.cap[k] = std::min(v.cap[k], out[label][k]);
        }
        for (int label = 0; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) out[label][k] = (out[label][k] - v.cap[k]) * v.sends[k];
        }
    }

    // The message from `layer` to the other one at each lane's pixel: per label of the other layer,
    // the least data cost + belief (without what the other layer sent) over this layer's.
    SIFTFLOW_INLINE void dual_message(int layer, int band, int step) const {
        const int L = labels();
        int32_t(*belief)[LANES] = v.belief;
        int32_t(*out)[LANES] = v.message;
        const int32_t* SIFTFLOW_RESTRICT from_other = by_label(t.dual, layer, band, step);
        const int32_t* SIFTFLOW_RESTRICT data =
            t.data + (static_cast<size_t>(band) * steps + step) * static_cast<size_t>(L) * L * LANES;
        for (int label = 0; label < L; ++label) {
            for (int k = 0; k < LANES; ++k) belief[label][k] = v.total[label][k] - from_other[label * LANES + k];
        }
        if (layer == 0) {  // to the vertical label b: min over a of data[b, a] + belief[a]
            for (int target = 0; target < L; ++target) {
                const int32_t* row = data + static_cast<size_t>(target) * L * LANES;
                for (int k = 0; k < LANES; ++k) out[target][k] = row[k] + belief[0][k];
                for (int source = 1; source < L; ++source) {
                    for (int k = 0; k < LANES; ++k) {
                        out[target][k] = std::min(out[target][k], row[source * LANES + k] + belief[source][k]);
                    }
                }
            }
        } else {  // to the horizontal label a: min over b of data[b, a] + belief[b]
            for (int target = 0; target < L; ++target) {
                for (int k = 0; k < LANES; ++k) out[target][k] = data[target * LANES + k] + belief[0][k];
            }
            for (int source = 1; source < L; ++source) {
                const int32_t* row = data + static_cast<size_t>(source) * L * LANES;
                for (int target = 0; target < L; ++target) {
                    for (int k = 0; k < LANES; ++k) {
                        out[target][k] = std::min(out[target][k], row[target * LANES + k] + belief[source][k]);
                    }
                }
            }
        }
        least(out, v.cap);
        int32_t* SIFTFLOW_RESTRICT to_other = dual(1 - layer, band, step);
        for (int target = 0; target < L; ++target) {
            for (int k = 0; k < LANES; ++k) to_other[target * LANES + k] = out[target][k] - v.cap[k];
        }
    }

    SIFTFLOW_INLINE void least(int32_t (*values)[LANES], int32_t* out) const {
        for (int k = 0; k < LANES; ++k) out[k] = values[0][k];
        for (int label = 1; label < labels(); ++label) {
            for (int k = 0; k < LANES; ++k) out[k] = std::min(out[k], values[label][k]);
        }
    }

    // Per lane, the label of the least value (the first on ties, as the original).
    SIFTFLOW_INLINE void argmin(int32_t (*values)[LANES], int layer, int band, int step) const {
        least(values, v.cap);
        int32_t* SIFTFLOW_RESTRICT which = t.labels + (layer * plane() + static_cast<size_t>(band) * steps + step) * LANES;
        for (int k = 0; k < LANES; ++k) v.shift[k] = labels() - 1;
        for (int label = labels() - 2; label >= 0; --label) {  // down to the first label that reaches the least
            for (int k = 0; k < LANES; ++k) v.shift[k] = values[label][k] == v.cap[k] ? label : v.shift[k];
        }
        for (int k = 0; k < LANES; ++k) which[k] = v.shift[k];
    }

    // Steps first to last - 1 of one band (backwards: from last - 1 down).
    SIFTFLOW_INLINE void block(int iteration, int band, int first, int last) const {
        const BandGrid& grid = *t.grid;
        const int layer = iteration % 2, other = 1 - layer;
        const bool forward = iteration % 4 < 2, with_dual = iteration % 8 < 4;
        const int final_step = steps - 1;
        const int L = labels();
        for (int index = 0; index < last - first; ++index) {
            const int step = forward ? first + index : last - 1 - index;
            belief(layer, band, step, v.total);
            // along the row: to the same lane at the next (previous) step
            const int target = forward ? step + 1 : step - 1;
            const int32_t* target_offsets = offsets(layer, band, target);
            for (int k = 0; k < LANES; ++k) {
                const int x = step - 1 - k, y = band * LANES + k;
                const int receiver_x = forward ? x + 1 : x - 1;
                v.sends[k] = (x >= 0) & (x < grid.width) & (y < grid.height) & (receiver_x >= 0) & (receiver_x < grid.width);
                v.receiver_offset[k] = target_offsets[k];
            }
            const bool origin = band == 0 && step == 1;  // the original's sign quirk tests for the sender at pixel 0
            message(layer, band, step, forward ? RIGHT : LEFT, origin);
            int32_t* SIFTFLOW_RESTRICT along = spatial(layer, band, target, forward ? LEFT : RIGHT);
            for (int label = 0; label < L; ++label) {
                for (int k = 0; k < LANES; ++k) along[label * LANES + k] = v.message[label][k];
            }
            // down the column: to the next (previous) lane at the next (previous) step
            for (int k = 0; k < LANES; ++k) {
                const int x = step - 1 - k, y = band * LANES + k;
                const int receiver_y = forward ? y + 1 : y - 1;
                v.sends[k] = (x >= 0) & (x < grid.width) & (y < grid.height) & (receiver_y >= 0) & (receiver_y < grid.height);
            }
            bool spills;
            if (forward) {
                const int32_t* next = offsets(layer, band, step + 1);
                for (int k = 0; k < LANES - 1; ++k) v.receiver_offset[k] = next[k + 1];
                spills = band + 1 < bands && step >= LANES - 1;  // the last lane sends to the next band
                v.receiver_offset[LANES - 1] = spills ? offsets(layer, band + 1, step - LANES + 1)[0] : 0;
            } else {
                const int32_t* previous = offsets(layer, band, step - 1);
                for (int k = 1; k < LANES; ++k) v.receiver_offset[k] = previous[k - 1];
                spills = band > 0 && step + LANES - 1 <= final_step;  // lane 0 sends to the band above
                v.receiver_offset[0] = spills ? offsets(layer, band - 1, step + LANES - 1)[LANES - 1] : 0;
            }
            message(layer, band, step, forward ? BELOW : ABOVE, origin);
            const int slot = forward ? ABOVE : BELOW;
            if (forward) {
                int32_t* SIFTFLOW_RESTRICT down = spatial(layer, band, step + 1, slot);
                for (int label = 0; label < L; ++label) {
                    for (int k = 0; k < LANES - 1; ++k) down[label * LANES + k + 1] = v.message[label][k];
                }
                if (spills) {
                    int32_t* next_band = spatial(layer, band + 1, step - LANES + 1, slot);
                    for (int label = 0; label < L; ++label) next_band[label * LANES] = v.message[label][LANES - 1];
                }
            } else {
                int32_t* SIFTFLOW_RESTRICT up = spatial(layer, band, step - 1, slot);
                for (int label = 0; label < L; ++label) {
                    for (int k = 1; k < LANES; ++k) up[label * LANES + k - 1] = v.message[label][k];
                }
                if (spills) {
                    int32_t* band_above = spatial(layer, band - 1, step + LANES - 1, slot);
                    for (int label = 0; label < L; ++label) band_above[label * LANES + LANES - 1] = v.message[label][0];
                }
            }
            if (with_dual) dual_message(layer, band, step);
            if (t.labels != nullptr) {
                argmin(v.total, layer, band, step);
                if (with_dual || t.fresh) {  // otherwise the other layer's belief, and label, did not change
                    belief(other, band, step, v.belief);
                    argmin(v.belief, other, band, step);
                }
            }
        }
    }
};

template <int N>
SIFTFLOW_INLINE void run_block(const SweepTerms& terms, int iteration, int band, int first, int last) {
    Scratch scratch;
    const BandGrid& grid = *terms.grid;
    Step<N>{terms, terms.count, grid.bands, grid.steps, scratch}.block(iteration, band, first, last);
}

// One entry per label count the defaults use (windows 2, 3, 4 and 10), and one for any other.
SIFTFLOW_CLONES void block_5(const SweepTerms& t, int n, int b, int f, int l) { run_block<5>(t, n, b, f, l); }
SIFTFLOW_CLONES void block_7(const SweepTerms& t, int n, int b, int f, int l) { run_block<7>(t, n, b, f, l); }
SIFTFLOW_CLONES void block_9(const SweepTerms& t, int n, int b, int f, int l) { run_block<9>(t, n, b, f, l); }
SIFTFLOW_CLONES void block_21(const SweepTerms& t, int n, int b, int f, int l) { run_block<21>(t, n, b, f, l); }
SIFTFLOW_CLONES void block_any(const SweepTerms& t, int n, int b, int f, int l) { run_block<0>(t, n, b, f, l); }

using BlockFunction = void (*)(const SweepTerms&, int, int, int, int);

BlockFunction block_for(int count) {
    switch (count) {
        case 5: return block_5;
        case 7: return block_7;
        case 9: return block_9;
        case 21: return block_21;
        default: return block_any;
    }
}

}  // namespace

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
