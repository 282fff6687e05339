// One step of a band as one value: 16 int32 lanes, held as 16 / W native vectors of W lanes (GCC's
// vector extensions): W = 16 is one AVX-512 register, W = 8 two AVX2 ones, W = 4 four SSE2 or NEON
// ones. The width is the type's, not the compiler's guess: a 64-byte generic vector on AVX2 turns
// every comparison and lane shuffle into scalar code, so each instruction set gets the width it has
// (see dispatch.h), and the kernels are written once against Lanes<W>.
#pragma once

#include <cstring>
#include <utility>

#include "bands.h"

namespace siftflow {
namespace {

template <int W>
struct Lanes {
    static_assert(LANES % W == 0, "a whole number of native vectors per step");
    static constexpr int PARTS = LANES / W;
    typedef int32_t Native __attribute__((vector_size(W * sizeof(int32_t))));
    Native part[PARTS];

    static SIFTFLOW_INLINE Lanes splat(int32_t value) {
        Lanes out;
        for (int i = 0; i < PARTS; ++i) out.part[i] = Native{} + value;
        return out;
    }
    static SIFTFLOW_INLINE Lanes index() {  // 0, 1, ..., 15 (from memory: lane-by-lane inserts are slow)
        alignas(64) static const int32_t values[LANES] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
        return load(values);
    }
    static SIFTFLOW_INLINE Lanes load(const int32_t* address) {
        Lanes out;
        std::memcpy(out.part, __builtin_assume_aligned(address, 64), sizeof(out.part));
        return out;
    }
    SIFTFLOW_INLINE void store(int32_t* address) const {
        std::memcpy(__builtin_assume_aligned(address, 64), part, sizeof(part));
    }
    SIFTFLOW_INLINE int32_t get(int lane) const { return part[lane / W][lane % W]; }
    SIFTFLOW_INLINE void set(int lane, int32_t value) { part[lane / W][lane % W] = value; }

};

// (plain loops over the parts, no lambdas: everything must inline into each instruction set's kernel)
#define SIFTFLOW_LANES_OPERATOR(op)                                                                   \
    template <int W>                                                                                  \
    SIFTFLOW_INLINE Lanes<W> operator op(const Lanes<W>& a, const Lanes<W>& b) {                      \
        Lanes<W> out;                                                                                 \
        for (int i = 0; i < Lanes<W>::PARTS; ++i) out.part[i] = a.part[i] op b.part[i];               \
        return out;                                                                                   \
    }                                                                                                 \
    template <int W>                                                                                  \
    SIFTFLOW_INLINE Lanes<W> operator op(const Lanes<W>& a, int32_t b) {                              \
        return a op Lanes<W>::splat(b);                                                               \
    }                                                                                                 \
    template <int W>                                                                                  \
    SIFTFLOW_INLINE Lanes<W> operator op(int32_t a, const Lanes<W>& b) {                              \
        return Lanes<W>::splat(a) op b;                                                               \
    }

// arithmetic, bitwise, and comparisons giving masks (-1 where true, 0 where false)
SIFTFLOW_LANES_OPERATOR(+)
SIFTFLOW_LANES_OPERATOR(-)
SIFTFLOW_LANES_OPERATOR(*)
SIFTFLOW_LANES_OPERATOR(&)
SIFTFLOW_LANES_OPERATOR(|)
SIFTFLOW_LANES_OPERATOR(==)
SIFTFLOW_LANES_OPERATOR(<)
SIFTFLOW_LANES_OPERATOR(>)
SIFTFLOW_LANES_OPERATOR(>=)
#undef SIFTFLOW_LANES_OPERATOR

template <int W>
SIFTFLOW_INLINE Lanes<W>& operator+=(Lanes<W>& a, const Lanes<W>& b) {
    return a = a + b;
}
template <int W>
SIFTFLOW_INLINE Lanes<W>& operator+=(Lanes<W>& a, int32_t b) {
    return a = a + b;
}
template <int W>
SIFTFLOW_INLINE Lanes<W> operator-(const Lanes<W>& a) {
    return 0 - a;
}

// mask ? a : b, lane by lane
template <int W>
SIFTFLOW_INLINE Lanes<W> select(const Lanes<W>& mask, const Lanes<W>& a, const Lanes<W>& b) {
    Lanes<W> out;
    for (int i = 0; i < Lanes<W>::PARTS; ++i) out.part[i] = mask.part[i] ? a.part[i] : b.part[i];
    return out;
}
template <int W>
SIFTFLOW_INLINE Lanes<W> vmin(const Lanes<W>& a, const Lanes<W>& b) {
    Lanes<W> out;
    for (int i = 0; i < Lanes<W>::PARTS; ++i) out.part[i] = a.part[i] < b.part[i] ? a.part[i] : b.part[i];
    return out;
}
template <int W>
SIFTFLOW_INLINE Lanes<W> vmax(const Lanes<W>& a, const Lanes<W>& b) {
    Lanes<W> out;
    for (int i = 0; i < Lanes<W>::PARTS; ++i) out.part[i] = a.part[i] > b.part[i] ? a.part[i] : b.part[i];
    return out;
}
template <int W>
SIFTFLOW_INLINE Lanes<W> vabs(const Lanes<W>& a) {
    return vmax(a, -a);
}

// lanes first .. first + W - 1 of a and b side by side (2W lanes): a constant two-vector shuffle.
// GCC (10 and later) takes the indices as a mask vector (__builtin_shuffle); clang has only
// __builtin_shufflevector, whose indices must be constants in the call (GCC has it from 12 on).
#if defined(__clang__)
template <int First, class Native, int... I>
SIFTFLOW_INLINE Native lanes_from(const Native& a, const Native& b, std::integer_sequence<int, I...>) {
    return __builtin_shufflevector(a, b, (First + I)...);
}
template <int First, int W, class Native>
SIFTFLOW_INLINE Native lanes_from(const Native& a, const Native& b) {
    return lanes_from<First>(a, b, std::make_integer_sequence<int, W>{});
}
#else
template <int First, int W, class Native>
SIFTFLOW_INLINE Native lanes_from(const Native& a, const Native& b) {
    static_assert(First == 1 || First == W - 1, "the masks the shifts use");
    Native mask;
    if constexpr (W == 16) {
        mask = First == 1 ? Native{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
                          : Native{15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
    } else if constexpr (W == 8) {
        mask = First == 1 ? Native{1, 2, 3, 4, 5, 6, 7, 8} : Native{7, 8, 9, 10, 11, 12, 13, 14};
    } else {
        mask = First == 1 ? Native{1, 2, 3, 4} : Native{3, 4, 5, 6};
    }
    return __builtin_shuffle(a, b, mask);
}
#endif

// lanes 0..14 = a's lanes 1..15, lane 15 = last: what the next lane holds (the last from elsewhere)
template <int W>
SIFTFLOW_INLINE Lanes<W> shift_in_next(const Lanes<W>& a, int32_t last) {
    typedef typename Lanes<W>::Native Native;
    Lanes<W> out;
    for (int i = 0; i < Lanes<W>::PARTS; ++i) {
        const Native next = i + 1 < Lanes<W>::PARTS ? a.part[i + 1] : Native{} + last;
        out.part[i] = lanes_from<1, W>(a.part[i], next);
    }
    return out;
}

// lane 0 = first, lanes 1..15 = a's lanes 0..14: what the previous lane holds
template <int W>
SIFTFLOW_INLINE Lanes<W> shift_in_previous(int32_t first, const Lanes<W>& a) {
    typedef typename Lanes<W>::Native Native;
    Lanes<W> out;
    for (int i = 0; i < Lanes<W>::PARTS; ++i) {
        const Native previous = i > 0 ? a.part[i - 1] : Native{} + first;
        out.part[i] = lanes_from<W - 1, W>(previous, a.part[i]);
    }
    return out;
}

// the least, the greatest, the sum of the 16 lanes
template <int W>
SIFTFLOW_INLINE int32_t least_lane(const Lanes<W>& a) {
    typename Lanes<W>::Native m = a.part[0];
    for (int i = 1; i < Lanes<W>::PARTS; ++i) m = m < a.part[i] ? m : a.part[i];
    int32_t out = m[0];
    for (int k = 1; k < W; ++k) out = m[k] < out ? m[k] : out;
    return out;
}
template <int W>
SIFTFLOW_INLINE int32_t greatest_lane(const Lanes<W>& a) {
    return -least_lane(-a);
}
template <int W>
SIFTFLOW_INLINE int32_t lane_sum(const Lanes<W>& a) {
    typename Lanes<W>::Native m = a.part[0];
    for (int i = 1; i < Lanes<W>::PARTS; ++i) m += a.part[i];
    int32_t out = 0;
    for (int k = 0; k < W; ++k) out += m[k];
    return out;
}

}  // namespace
}  // namespace siftflow
