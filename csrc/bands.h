// The matcher's memory layout ("bands"): LANES scan lines side by side, skewed.
//
// Ce Liu's BPFlow::BP_S visits the pixels in raster order (reverse raster going backwards), and a
// pixel's messages need only those its left and upper neighbours (right and lower) sent in the same
// sweep. So pixel (x, y) does not depend on (x - 1, y + 1): in a band of LANES rows the pixels of one
// anti-diagonal are independent, and the sweeps (sweeps.cpp) visit them together, one SIMD lane per
// row.
//
// Pixel (x, y) lives in band y / LANES, at step x + y % LANES + 1, in lane y % LANES. A field of
// H x W pixels with R values each becomes (bands, W + LANES + 1, R, LANES), lanes innermost, so that
// one step's values of a label are one contiguous vector of 16 int32 (one cache line). A pixel's
// right neighbour is the same lane at the next step, its lower neighbour the next lane at the next
// step (lane 0 of the next band, LANES - 1 steps back, for the last lane). Steps 0 and W + LANES and
// the lanes outside the image are padding, zeros unless said otherwise.
#pragma once

#include "common.h"

namespace siftflow {

constexpr int LANES = 16;

struct BandGrid {
    int height = 0, width = 0, bands = 0, steps = 0;  // steps: W + LANES + 1, padding included

    BandGrid() = default;
    BandGrid(int h, int w) : height(h), width(w), bands(static_cast<int>(ceil_div(h, LANES))), steps(w + LANES + 1) {}

    // where (band, step, lane) is in the image: x, y, and whether it is inside
    SIFTFLOW_INLINE bool inside(int band, int step, int lane, int& x, int& y) const {
        x = step - 1 - lane;
        y = band * LANES + lane;
        return x >= 0 && x < width && y < height;
    }
    // the offset of (band, step) in an array with `rest` values per pixel, times LANES
    SIFTFLOW_INLINE size_t at(int band, int step, size_t rest) const {
        return (static_cast<size_t>(band) * steps + step) * rest * LANES;
    }
    size_t size(size_t rest) const { return static_cast<size_t>(bands) * steps * rest * LANES; }
};

// (layers, H, W, rest) -> (layers, bands, steps, rest, LANES), zeros in the padding
template <class T>
Buffer<T> to_bands(const T* field, int layers, const BandGrid& grid, int rest) {
    Buffer<T> out(layers * grid.size(rest));
    for (int layer = 0; layer < layers; ++layer) {
        T* target = out.data() + layer * grid.size(rest);
        const T* source = field + static_cast<size_t>(layer) * grid.height * grid.width * rest;
        for (int y = 0; y < grid.height; ++y) {
            const int band = y / LANES, lane = y % LANES;
            for (int x = 0; x < grid.width; ++x) {
                T* pixel = target + grid.at(band, x + lane + 1, rest) + lane;
                for (int r = 0; r < rest; ++r) pixel[r * LANES] = source[(static_cast<size_t>(y) * grid.width + x) * rest + r];
            }
        }
    }
    return out;
}

// the inverse of to_bands, into (layers, H, W, rest)
template <class T>
void from_bands(const T* banded, int layers, const BandGrid& grid, int rest, T* out) {
    for (int layer = 0; layer < layers; ++layer) {
        const T* source = banded + layer * grid.size(rest);
        T* target = out + static_cast<size_t>(layer) * grid.height * grid.width * rest;
        for (int y = 0; y < grid.height; ++y) {
            const int band = y / LANES, lane = y % LANES;
            for (int x = 0; x < grid.width; ++x) {
                const T* pixel = source + grid.at(band, x + lane + 1, rest) + lane;
                for (int r = 0; r < rest; ++r) target[(static_cast<size_t>(y) * grid.width + x) * rest + r] = pixel[r * LANES];
            }
        }
    }
}

}  // namespace siftflow
