// One step of a band as one value: 16 int32 lanes (GCC's vector extensions: one AVX-512 register,
// two AVX2 ones or four SSE2 ones, whichever build of the kernel runs).
#pragma once

#include <cstring>

#include "bands.h"

namespace siftflow {
namespace {

typedef int32_t V __attribute__((vector_size(LANES * sizeof(int32_t))));  // one step: a value per lane

const V LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

SIFTFLOW_INLINE V load(const int32_t* address) {
    V value;
    std::memcpy(&value, __builtin_assume_aligned(address, 64), sizeof(V));
    return value;
}
SIFTFLOW_INLINE void store(int32_t* address, V value) {
    std::memcpy(__builtin_assume_aligned(address, 64), &value, sizeof(V));
}
SIFTFLOW_INLINE V splat(int32_t value) { return V{} + value; }
SIFTFLOW_INLINE V vmin(V a, V b) { return a < b ? a : b; }
SIFTFLOW_INLINE V vmax(V a, V b) { return a > b ? a : b; }
SIFTFLOW_INLINE V vabs(V a) { return a < 0 ? -a : a; }

// lane 0 of a after a tree of pairwise combinations: the least (greatest) of the 16 lanes
template <class Combine>
SIFTFLOW_INLINE int32_t reduce(V a, Combine combine) {
    a = combine(a, __builtin_shuffle(a, V{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7}));
    a = combine(a, __builtin_shuffle(a, V{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11}));
    a = combine(a, __builtin_shuffle(a, V{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13}));
    a = combine(a, __builtin_shuffle(a, V{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14}));
    return a[0];
}
SIFTFLOW_INLINE int32_t least_lane(V a) { return reduce(a, vmin); }
SIFTFLOW_INLINE int32_t greatest_lane(V a) { return reduce(a, vmax); }
SIFTFLOW_INLINE int32_t lane_sum(V a) { return reduce(a, [](V x, V y) { return x + y; }); }

}  // namespace
}  // namespace siftflow
