// Resampling rows by tables of taps, shared by the MATLAB functions (matlab.cpp) and the 2010
// descriptor pyramid (pyramid.cpp).
#pragma once

#include <algorithm>

#include "common.h"

namespace siftflow {

// One output row from rows of a uint8 image (`row_length` values each), for weights that are
// multiples of 2^-bits (`taps`: the weights times 2^bits): clamp(round(sum_t taps[t] row[indices[t]]
// / 2^bits), 0, 255), exact in int32, so MATLAB's float64 sum rounded half up.
SIFTFLOW_INLINE void dyadic_row(const uint8_t* image, size_t row_length, const int64_t* indices, const int32_t* taps,
                                int count, int bits, int32_t* SIFTFLOW_RESTRICT out) {
    std::fill(out, out + row_length, 0);
    for (int tap = 0; tap < count; ++tap) {
        const int32_t weight = taps[tap];
        if (weight == 0) continue;
        const uint8_t* SIFTFLOW_RESTRICT source = image + indices[tap] * row_length;
        for (size_t i = 0; i < row_length; ++i) out[i] += weight * static_cast<int32_t>(source[i]);
    }
    const int32_t half = 1 << (bits - 1);
    for (size_t i = 0; i < row_length; ++i) out[i] = std::min(std::max((out[i] + half) >> bits, 0), 255);
}

}  // namespace siftflow
