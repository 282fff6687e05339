// SIFT Flow's belief-propagation sweeps, LANES scan lines at a time (see bands.h and bp.h).
//
// Any order that keeps a pixel after its left and upper neighbours (right and lower going back)
// gives the original's messages exactly; here the 16 pixels of an anti-diagonal of a band are one
// vector of 16 int32 (GCC's vector extensions: one AVX-512 register, two AVX2 ones, four SSE2 ones),
// and blocks of steps of different bands run in parallel on a wavefront. The padding computes on
// zeros, and what it sends is 0 (a message into a pixel from outside the image stays 0, as in the
// original).
#include <algorithm>
#include <cstring>

#include "bp.h"
#include "lanes.h"

namespace siftflow {
namespace {

constexpr int BLOCK_STEPS = 32;  // steps per unit of parallel work; at least LANES - 1 (see sweep)
constexpr int LEFT = 0, RIGHT = 1, ABOVE = 2, BELOW = 3;  // message slots: where the message comes from

// `count` is a compile-time constant for the windows the defaults use (N > 0), else N == 0 and it is
// read at run time: the label loops then have constant trip counts where it matters most.
template <int N>
struct Step {
    const SweepTerms& t;
    const int count;
    const int bands, steps;  // steps: the array's, padding included
    V total[N > 0 ? N : MAX_LABELS];  // per label: the step's beliefs, a scratch vector, the messages sent
    V belief[N > 0 ? N : MAX_LABELS];
    V message[N > 0 ? N : MAX_LABELS];

    Step(const SweepTerms& terms, int count_, int bands_, int steps_)  // the vectors stay uninitialised
        : t(terms), count(count_), bands(bands_), steps(steps_) {}

    SIFTFLOW_INLINE int labels() const { return N > 0 ? N : count; }
    SIFTFLOW_INLINE size_t at(int layer, int band, int step) const {
        return (static_cast<size_t>(layer) * bands + band) * steps + step;
    }
    SIFTFLOW_INLINE int32_t* spatial(int layer, int band, int step, int slot) const {
        return t.spatial + (at(layer, band, step) * 4 + slot) * labels() * LANES;
    }
    SIFTFLOW_INLINE const int32_t* by_label(const int32_t* array, int layer, int band, int step) const {
        return array + at(layer, band, step) * labels() * LANES;
    }
    SIFTFLOW_INLINE const int32_t* offsets(int layer, int band, int step) const {
        return t.offsets + at(layer, band, step) * LANES;
    }

    // A step's beliefs in one layer: range cost + dual message + the 4 spatial messages.
    SIFTFLOW_INLINE void beliefs(int layer, int band, int step, V* out) const {
        const int32_t* range = by_label(t.range, layer, band, step);
        const int32_t* dual = by_label(t.dual, layer, band, step);
        const int32_t* sp = spatial(layer, band, step, 0);
        const size_t slot = static_cast<size_t>(labels()) * LANES;
        for (int label = 0; label < labels(); ++label) {
            const size_t i = static_cast<size_t>(label) * LANES;
            out[label] = load(range + i) + load(dual + i) + load(sp + i) + load(sp + slot + i) +
                         load(sp + 2 * slot + i) + load(sp + 3 * slot + i);
        }
    }

    // The messages of one step's lanes to their neighbours one way, into `message`: the truncated-L1
    // distance transform of the sender's belief without what the receiver sent (slot `excluded`;
    // O(L), Felzenszwalb and Huttenlocher 2006), read at the receiver's labels (the windows are
    // shifted by the offset difference), capped at min + d, normalised; 0 where `sends` (a mask)
    // says a lane has no neighbour that way.
    SIFTFLOW_INLINE void send(int layer, int band, int step, int excluded, V receiver_offset, V sends, bool origin) {
        const int L = labels();
        const int32_t last = L - 1;
        const int32_t s = t.smoothness->s;
        const int32_t* far = t.smoothness->far.data();
        V* h = belief;
        const int32_t* from_receiver = spatial(layer, band, step, excluded);
        V cap = splat(INT32_MAX);
        for (int label = 0; label < L; ++label) {
            h[label] = total[label] - load(from_receiver + label * LANES);
            cap = vmin(cap, h[label]);
        }
        cap += t.smoothness->d;
        for (int label = 1; label < L; ++label) h[label] = vmin(h[label], h[label - 1] + s);
        for (int label = L - 2; label >= 0; --label) h[label] = vmin(h[label], h[label + 1] + s);
        const V shift = receiver_offset - load(offsets(layer, band, step));
        for (int label = 0; label < L; ++label) message[label] = h[label];
        // Receiver label r reads the sender's label r + shift, and beyond the sender's window its edge
        // value + s per label. The shift differs from lane to lane, but each lane's is one of a few
        // values (neighbours' offsets differ by little): one pass per shift some lane has.
        const int32_t least = std::max(least_lane(shift), -last), greatest = std::min(greatest_lane(shift), last);
        for (int32_t value = least; value <= greatest; ++value) {
            const V lanes = shift == value;
            if (value == 0 || least_lane(lanes) == 0) continue;  // masks: -1 where a lane has it
            for (int label = 0; label < L; ++label) {
                const int32_t source = std::min(std::max(label + value, 0), last);
                const int32_t beyond = (label + value - source) * (label + value < source ? -s : s);
                message[label] = lanes ? h[source] + beyond : message[label];
            }
        }
        const V apart = vabs(shift) > last;  // the windows do not overlap: the original's ramp
        for (int label = 0; label < L; ++label) message[label] = vmin(apart ? splat(far[label]) : message[label], cap);
        if (origin && apart[0]) {  // the ramp is negative when the original sends from pixel 0
            for (int label = 0; label < L; ++label) message[label][0] = std::min(-far[label], cap[0]);
        }
        V lowest = cap;  // the cap is one of the candidates
        for (int label = 0; label < L; ++label) lowest = vmin(lowest, message[label]);
        for (int label = 0; label < L; ++label) message[label] = (message[label] - lowest) & sends;
    }

    // The message from `layer` to the other one at each lane's pixel: per label of the other layer,
    // the least data cost + belief (without what the other layer sent) over this layer's.
    SIFTFLOW_INLINE void send_dual(int layer, int band, int step) {
        const int L = labels();
        const int32_t* from_other = by_label(t.dual, layer, band, step);
        const int32_t* data = t.data + (static_cast<size_t>(band) * steps + step) * static_cast<size_t>(L) * L * LANES;
        for (int label = 0; label < L; ++label) belief[label] = total[label] - load(from_other + label * LANES);
        if (layer == 0) {  // to the vertical label b: min over a of data[b, a] + belief[a]
            for (int target = 0; target < L; ++target) {
                const int32_t* row = data + static_cast<size_t>(target) * L * LANES;
                V best = load(row) + belief[0];
                for (int source = 1; source < L; ++source) best = vmin(best, load(row + source * LANES) + belief[source]);
                message[target] = best;
            }
        } else {  // to the horizontal label a: min over b of data[b, a] + belief[b]
            for (int target = 0; target < L; ++target) message[target] = load(data + target * LANES) + belief[0];
            for (int source = 1; source < L; ++source) {
                const int32_t* row = data + static_cast<size_t>(source) * L * LANES;
                for (int target = 0; target < L; ++target) {
                    message[target] = vmin(message[target], load(row + target * LANES) + belief[source]);
                }
            }
        }
        V lowest = message[0];
        for (int target = 1; target < L; ++target) lowest = vmin(lowest, message[target]);
        int32_t* to_other = t.dual + at(1 - layer, band, step) * L * LANES;
        for (int target = 0; target < L; ++target) store(to_other + target * LANES, message[target] - lowest);
    }

    // Per lane, the label of the least value (the first on ties, as the original), stored and returned.
    SIFTFLOW_INLINE V label(const V* values, int layer, int band, int step) const {
        V best = values[0];
        for (int label = 1; label < labels(); ++label) best = vmin(best, values[label]);
        V which = splat(labels() - 1);
        for (int label = labels() - 2; label >= 0; --label) which = values[label] == best ? splat(label) : which;
        store(t.labels + at(layer, band, step) * LANES, which);
        return which;
    }

    // The energy's data and range terms of a step's labels (a horizontal, b vertical), summed over
    // the lanes inside the image: here, where the step's data cells are in cache. Each lane's terms
    // are picked by masks, not read lane by lane (which would stall on the vectors just stored).
    SIFTFLOW_INLINE int64_t unary_terms(V a, V b, V inside, int band, int step) const {
        const int L = labels();
        const int32_t* data = t.data + (static_cast<size_t>(band) * steps + step) * static_cast<size_t>(L) * L * LANES;
        const int32_t* range_a = by_label(t.range, 0, band, step);
        const int32_t* range_b = by_label(t.range, 1, band, step);
        V sum{};
        for (int label = 0; label < L; ++label) {
            sum += (load(range_a + label * LANES) & (a == label)) + (load(range_b + label * LANES) & (b == label));
        }
        const V cell = b * L + a;
        for (int index = 0; index < L * L; ++index) sum += load(data + index * LANES) & (cell == index);
        return lane_sum(sum & inside);
    }

    // Steps first to last - 1 of one band (backwards: from last - 1 down).
    SIFTFLOW_INLINE void block(int iteration, int band, int first, int last) {
        const BandGrid& grid = *t.grid;
        const int layer = iteration % 2, other = 1 - layer;
        const bool forward = iteration % 4 < 2, with_dual = iteration % 8 < 4;
        const int final_step = steps - 1;
        const int L = labels();
        const V y = band * LANES + LANE;
        for (int index = 0; index < last - first; ++index) {
            const int step = forward ? first + index : last - 1 - index;
            beliefs(layer, band, step, total);
            const V x = (step - 1) - LANE;
            const V inside = (x >= 0) & (x < grid.width) & (y < grid.height);
            const bool origin = band == 0 && step == 1;  // the original's sign quirk tests for the sender at pixel 0
            // along the row: to the same lane at the next (previous) step
            const int target = forward ? step + 1 : step - 1;
            const V receiver_x = forward ? x + 1 : x - 1;
            const V along = inside & (receiver_x >= 0) & (receiver_x < grid.width);
            send(layer, band, step, forward ? RIGHT : LEFT, load(offsets(layer, band, target)), along, origin);
            int32_t* into = spatial(layer, band, target, forward ? LEFT : RIGHT);
            for (int label = 0; label < L; ++label) store(into + label * LANES, message[label]);
            // down the column: to the next (previous) lane at the next (previous) step; the last lane
            // sends to the next band's first (the first lane to the band above's last)
            const V receiver_y = forward ? y + 1 : y - 1;
            const V down = inside & (receiver_y >= 0) & (receiver_y < grid.height);
            if (forward) {
                const bool spills = band + 1 < bands && step >= LANES - 1;
                const int32_t beyond = spills ? offsets(layer, band + 1, step - LANES + 1)[0] : 0;
                const V receivers = __builtin_shuffle(load(offsets(layer, band, step + 1)), splat(beyond),
                                                      V{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
                send(layer, band, step, BELOW, receivers, down, origin);
                int32_t* below = spatial(layer, band, step + 1, ABOVE);
                for (int label = 0; label < L; ++label) {  // lane 0 holds what the band above sent: kept
                    store(below + label * LANES,
                          __builtin_shuffle(load(below + label * LANES), message[label],
                                            V{0, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}));
                }
                if (spills) {
                    int32_t* next_band = spatial(layer, band + 1, step - LANES + 1, ABOVE);
                    for (int label = 0; label < L; ++label) next_band[label * LANES] = message[label][LANES - 1];
                }
            } else {
                const bool spills = band > 0 && step + LANES - 1 <= final_step;
                const int32_t beyond = spills ? offsets(layer, band - 1, step + LANES - 1)[LANES - 1] : 0;
                const V receivers = __builtin_shuffle(splat(beyond), load(offsets(layer, band, step - 1)),
                                                      V{0, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30});
                send(layer, band, step, ABOVE, receivers, down, origin);
                int32_t* above = spatial(layer, band, step - 1, BELOW);
                for (int label = 0; label < L; ++label) {  // lane 15 holds what the band below sent: kept
                    store(above + label * LANES,
                          __builtin_shuffle(message[label], load(above + label * LANES),
                                            V{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 31}));
                }
                if (spills) {
                    int32_t* band_above = spatial(layer, band - 1, step + LANES - 1, BELOW);
                    for (int label = 0; label < L; ++label) band_above[label * LANES + LANES - 1] = message[label][0];
                }
            }
            if (with_dual) send_dual(layer, band, step);
            if (t.labels != nullptr) {
                const V own = label(total, layer, band, step);
                V others;
                if (with_dual || t.fresh) {  // otherwise the other layer's belief, and label, did not change
                    beliefs(other, band, step, belief);
                    others = label(belief, other, band, step);
                } else {
                    others = load(t.labels + at(other, band, step) * LANES);
                }
                if (t.unary != nullptr) {
                    t.unary[band] += unary_terms(layer == 0 ? own : others, layer == 0 ? others : own, inside, band, step);
                }
            }
        }
    }
};

template <int N>
SIFTFLOW_INLINE void run_block(const SweepTerms& terms, int iteration, int band, int first, int last) {
    const BandGrid& grid = *terms.grid;
    Step<N> step(terms, terms.count, grid.bands, grid.steps);
    step.block(iteration, band, first, last);
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
