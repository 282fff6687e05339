// The kernels written once against Lanes<W> (lanes.h) and compiled once per instruction set:
// sweeps_avx512.cpp, sweeps_avx2.cpp and sweeps_baseline.cpp each set the target (a pragma that
// covers everything defined after it, so that the 16-lane vectors are lowered for that instruction
// set and no other) and include this file, which defines in namespace SIFTFLOW_ISA:
//
// - blocks[5]: the sweep of one band's steps for 5, 7, 9, 21 labels and any other count;
// - band_smoothness: the energy's smoothness terms of one band, integral s and d (terms.cpp).
//
// Shared headers are included before the pragma by the including file: their inline functions keep
// the default target (they are merged across files by the linker), and this file's own functions
// have internal linkage but for the two entry points above.
#include "lanes.h"

namespace siftflow {
namespace SIFTFLOW_ISA {
namespace {

constexpr int LEFT = 0, RIGHT = 1, ABOVE = 2, BELOW = 3;  // message slots: where the message comes from

// `count` is a compile-time constant for the windows the defaults use (N > 0), else N == 0 and it is
// read at run time: the label loops then have constant trip counts where it matters most.
template <int N, int W>
struct Step {
    typedef Lanes<W> V;
    static SIFTFLOW_INLINE V load(const int32_t* address) { return V::load(address); }
    static SIFTFLOW_INLINE void store(int32_t* address, const V& value) { value.store(address); }
    static SIFTFLOW_INLINE V splat(int32_t value) { return V::splat(value); }

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
                message[label] = select(lanes, h[source] + beyond, message[label]);
            }
        }
        const V apart = vabs(shift) > last;  // the windows do not overlap: the original's ramp
        for (int label = 0; label < L; ++label) message[label] = vmin(select(apart, splat(far[label]), message[label]), cap);
        if (origin && apart.get(0)) {  // the ramp is negative when the original sends from pixel 0
            for (int label = 0; label < L; ++label) message[label].set(0, std::min(-far[label], cap.get(0)));
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
        for (int label = labels() - 2; label >= 0; --label) which = select(values[label] == best, splat(label), which);
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
        const V y = band * LANES + V::index();
        for (int index = 0; index < last - first; ++index) {
            const int step = forward ? first + index : last - 1 - index;
            beliefs(layer, band, step, total);
            const V x = (step - 1) - V::index();
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
                const V receivers = shift_in_next(load(offsets(layer, band, step + 1)), beyond);
                send(layer, band, step, BELOW, receivers, down, origin);
                int32_t* below = spatial(layer, band, step + 1, ABOVE);
                for (int label = 0; label < L; ++label) {  // lane 0 holds what the band above sent: kept
                    store(below + label * LANES, shift_in_previous(below[label * LANES], message[label]));
                }
                if (spills) {
                    int32_t* next_band = spatial(layer, band + 1, step - LANES + 1, ABOVE);
                    for (int label = 0; label < L; ++label) next_band[label * LANES] = message[label].get(LANES - 1);
                }
            } else {
                const bool spills = band > 0 && step + LANES - 1 <= final_step;
                const int32_t beyond = spills ? offsets(layer, band - 1, step + LANES - 1)[LANES - 1] : 0;
                const V receivers = shift_in_previous(beyond, load(offsets(layer, band, step - 1)));
                send(layer, band, step, ABOVE, receivers, down, origin);
                int32_t* above = spatial(layer, band, step - 1, BELOW);
                for (int label = 0; label < L; ++label) {  // lane 15 holds what the band below sent: kept
                    store(above + label * LANES, shift_in_next(message[label], above[label * LANES + LANES - 1]));
                }
                if (spills) {
                    int32_t* band_above = spatial(layer, band - 1, step + LANES - 1, BELOW);
                    for (int label = 0; label < L; ++label) band_above[label * LANES + LANES - 1] = message[label].get(0);
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

template <int N, int W>
SIFTFLOW_INLINE void run_block(const SweepTerms& terms, int iteration, int band, int first, int last) {
    const BandGrid& grid = *terms.grid;
    Step<N, W> step(terms, terms.count, grid.bands, grid.steps);
    step.block(iteration, band, first, last);
}

template <int N>
SIFTFLOW_INLINE void run_block(const SweepTerms& terms, int iteration, int band, int first, int last) {
    const BandGrid& grid = *terms.grid;
    Step<N, SIFTFLOW_WIDTH> step(terms, terms.count, grid.bands, grid.steps);
    step.block(iteration, band, first, last);
}

void block_5(const SweepTerms& t, int n, int b, int f, int l) { run_block<5>(t, n, b, f, l); }
void block_7(const SweepTerms& t, int n, int b, int f, int l) { run_block<7>(t, n, b, f, l); }
void block_9(const SweepTerms& t, int n, int b, int f, int l) { run_block<9>(t, n, b, f, l); }
void block_21(const SweepTerms& t, int n, int b, int f, int l) { run_block<21>(t, n, b, f, l); }
void block_any(const SweepTerms& t, int n, int b, int f, int l) { run_block<0>(t, n, b, f, l); }

}  // namespace

const BlockFunction blocks[BLOCK_COUNTS] = {block_5, block_7, block_9, block_21, block_any};

// the smoothness terms of one band's steps with integral s and d (exact), SIFTFLOW_WIDTH lanes per native vector
int64_t band_smoothness(const SweepTerms& terms, int band, int32_t s, int32_t d) {
    typedef Lanes<SIFTFLOW_WIDTH> V;
    const BandGrid& grid = *terms.grid;
    const size_t labels_layer = grid.size(1);
    // min(|diff| s, d) = min(min(|diff|, d / s + 1) s, d): no product can overflow
    const int32_t far = s > 0 ? d / s + 1 : 0;
    const V y = band * LANES + V::index();
    int64_t total = 0;
    for (int step = 1; step < grid.steps - 1; ++step) {
        const V x = (step - 1) - V::index();
        const V inside = (x >= 0) & (x < grid.width) & (y < grid.height);
        const V has_right = inside & (x < grid.width - 1), has_below = inside & (y < grid.height - 1);
        const bool spills = band + 1 < grid.bands && step >= LANES - 1;
        V sum = V::splat(0);
        for (int layer = 0; layer < 2; ++layer) {
            const int32_t* labels = terms.labels + layer * labels_layer;
            const int32_t* offsets = terms.offsets + layer * labels_layer;
            const V flow = V::load(labels + grid.at(band, step, 1)) + V::load(offsets + grid.at(band, step, 1));
            const V next = V::load(labels + grid.at(band, step + 1, 1)) + V::load(offsets + grid.at(band, step + 1, 1));
            const int32_t spilled = spills ? labels[grid.at(band + 1, step - LANES + 1, 1)] +
                                                 offsets[grid.at(band + 1, step - LANES + 1, 1)]
                                           : 0;
            const V below = shift_in_next(next, spilled);  // the next lane one step on, or the next band's lane 0
            sum += vmin(vmin(vabs(flow - next), V::splat(far)) * s, V::splat(d)) & has_right;
            sum += vmin(vmin(vabs(flow - below), V::splat(far)) * s, V::splat(d)) & has_below;
        }
        total += lane_sum(sum);
    }
    return total;
}

}  // namespace SIFTFLOW_ISA
}  // namespace siftflow
