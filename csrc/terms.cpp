// The terms of the SIFT Flow energy in bands (see bp.h): the original's ComputeDataTerm and
// ComputeRangeTerm, the coarser and finer copies of a field (generateCoarserLevel,
// propagateFinerLevel) and GetEnergy.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "bp.h"

namespace siftflow {
namespace {

constexpr int HISTOGRAM_BINS = 20000;
constexpr int DATA_TILE_STEPS = 32;  // steps of a band whose costs the data term writes together
constexpr int32_t NO_MATCH = -1;     // a label whose match falls outside image 2, before the default is known
constexpr int32_t FIRST_HISTOGRAM_MINIMUM = 32767;  // the original starts its running minimum there

// sum |a[c] - b[c]| over the descriptor: GCC turns the loop into (v)psadbw, 16-64 bytes at a time.
SIFTFLOW_INLINE int32_t sum_of_differences(const uint8_t* SIFTFLOW_RESTRICT a, const uint8_t* SIFTFLOW_RESTRICT b,
                                           int length) {
    int32_t total = 0;
    for (int c = 0; c < length; ++c) total += std::abs(static_cast<int32_t>(a[c]) - static_cast<int32_t>(b[c]));
    return total;
}

// One band's costs, and the least and greatest in-image cost it saw. Those two are kept in locals
// and stored once: `low` and `high` are the callers' per-band slots, neighbours in one cache line,
// and updated through the references (which may alias `out`) they made two threads 2x slower than one.
SIFTFLOW_CLONES void data_band(const uint8_t* sift1, const uint8_t* sift2, int channels, const int32_t* offsets,
                               int window, const BandGrid& grid, int band, int32_t* out, int32_t& band_low,
                               int32_t& band_high) {
    int32_t low = band_low, high = band_high;
    const int count = 2 * window + 1, cells = count * count;
    const int height = grid.height, width = grid.width, last_step = width + LANES - 1;
    const size_t plane = static_cast<size_t>(height) * width;
    // A tile of steps, one lane after the other: the tile's costs stay in L2 while each lane writes
    // its part of every cache line, and neighbouring pixels' windows overlap, so image 2's rows stay
    // in cache too.
    for (int first_step = 1; first_step <= last_step; first_step += DATA_TILE_STEPS) {
        for (int lane = 0; lane < std::min(LANES, height - band * LANES); ++lane) {
            const int y = band * LANES + lane;
            for (int step = first_step; step < std::min(first_step + DATA_TILE_STEPS, last_step + 1); ++step) {
                const int x = step - 1 - lane;
                if (x < 0 || x >= width) continue;
                const size_t pixel = static_cast<size_t>(y) * width + x;
                const uint8_t* own = sift1 + pixel * channels;
                int32_t* costs = out + grid.at(band, step, cells) + lane;
                for (int b = 0; b < count; ++b) {
                    const int target_y = y + offsets[plane + pixel] + b - window;
                    for (int a = 0; a < count; ++a) {
                        const int target_x = x + offsets[pixel] + a - window;
                        int32_t& cost = costs[(b * count + a) * LANES];
                        if (target_x < 0 || target_x >= width || target_y < 0 || target_y >= height) {
                            cost = NO_MATCH;
                            continue;
                        }
                        cost = sum_of_differences(own, sift2 + (static_cast<size_t>(target_y) * width + target_x) * channels,
                                                  channels);
                        low = std::min(low, cost);
                        high = std::max(high, cost);
                    }
                }
            }
        }
    }
    band_low = low;
    band_high = high;
}

// The original's default score for a match outside image 2: the median of the in-image costs from a
// 20000-bin histogram over [0, high] with the interval (high - low) / 20000, truncated (0 if none).
int32_t default_score(const Buffer<int32_t>& costs, const BandGrid& grid, int cells, int32_t low, int32_t high) {
    std::vector<int64_t> counts(static_cast<size_t>(std::max(high, 0)) + 1, 0);  // counts[v]: costs equal to v
    int64_t total = 0;
    for (int band = 0; band < grid.bands; ++band) {
        for (int step = 0; step < grid.steps; ++step) {
            for (int lane = 0; lane < LANES; ++lane) {
                int x, y;
                if (!grid.inside(band, step, lane, x, y)) continue;
                const int32_t* pixel = costs.data() + grid.at(band, step, cells) + lane;
                for (int index = 0; index < cells; ++index) {
                    const int32_t value = pixel[index * LANES];
                    if (value != NO_MATCH) {
                        ++counts[value];
                        ++total;
                    }
                }
            }
        }
    }
    if (total == 0) return 0;
    const double interval = static_cast<double>(high - low) / HISTOGRAM_BINS;
    std::vector<double> histogram(HISTOGRAM_BINS, 0.0);
    for (int32_t value = 0; value <= high; ++value) {
        if (counts[value] == 0) continue;  // cost / interval, capped (an interval of 0 puts all in the last bin)
        const double position = interval > 0 ? value / interval : std::numeric_limits<double>::infinity();
        histogram[static_cast<int>(std::min(position, static_cast<double>(HISTOGRAM_BINS - 1)))] += counts[value];
    }
    double probability = 0.0;
    for (int index = 0; index < HISTOGRAM_BINS; ++index) {
        probability += histogram[index] / static_cast<double>(total);
        if (probability >= 0.5) return static_cast<int32_t>(std::max(index, 1) * interval + low);
    }
    return 0;
}

}  // namespace

Buffer<int32_t> data_term(const uint8_t* sift1, const uint8_t* sift2, int height, int width, int channels,
                          const int32_t* offsets, int window, int threads) {
    const int count = 2 * window + 1, cells = count * count;
    const BandGrid grid(height, width);
    Buffer<int32_t> costs(grid.size(cells));
    std::vector<int32_t> band_low(grid.bands, FIRST_HISTOGRAM_MINIMUM), band_high(grid.bands, 0);
    parallel_for(grid.bands, threads, [&](int64_t band) {
        data_band(sift1, sift2, channels, offsets, window, grid, static_cast<int>(band), costs.data(), band_low[band],
                  band_high[band]);
    });
    const int32_t low = *std::min_element(band_low.begin(), band_low.end());
    const int32_t high = *std::max_element(band_high.begin(), band_high.end());
    const int32_t fallback = default_score(costs, grid, cells, low, high);
    int32_t* values = costs.data();
    parallel_for(grid.bands, threads, [&](int64_t band) {
        const size_t first = grid.at(static_cast<int>(band), 0, cells), length = grid.at(1, 0, cells);
        for (size_t index = first; index < first + length; ++index) {  // a select, not a branch: vectorised
            values[index] = values[index] == NO_MATCH ? fallback : values[index];
        }
    });
    return costs;
}

// trunc(gamma * |offset + label - window|): the original's small-displacement term, (2, bands, steps, L, LANES).
Buffer<int32_t> range_costs(const Field& field, int threads) {
    const BandGrid& grid = field.grid;
    const int count = field.count, window = count / 2;
    const size_t layer_size = grid.size(count), plane = static_cast<size_t>(grid.height) * grid.width;
    Buffer<int32_t> out(2 * layer_size);
    parallel_for(grid.bands, threads, [&](int64_t band) {
        for (int layer = 0; layer < 2; ++layer) {
            for (int step = 1; step < grid.steps - 1; ++step) {
                for (int lane = 0; lane < LANES; ++lane) {
                    int x, y;
                    if (!grid.inside(static_cast<int>(band), step, lane, x, y)) continue;
                    const int32_t offset = field.offsets[layer * plane + static_cast<size_t>(y) * grid.width + x];
                    int32_t* target = out.data() + layer * layer_size + grid.at(static_cast<int>(band), step, count) + lane;
                    for (int label = 0; label < count; ++label) {
                        const double distance = std::abs(static_cast<double>(offset + label - window));
                        target[label * LANES] = static_cast<int32_t>(field.gamma * distance);
                    }
                }
            }
        }
    });
    return out;
}

// The original's generateCoarserLevel: 2 x 2 blocks, data summed, offsets averaged by C integer
// division (toward zero); an odd last row or column makes smaller blocks. gamma is the caller's.
Field coarser(const Field& field, int threads) {
    const BandGrid& fine = field.grid;
    const int height = fine.height, width = fine.width, cells = field.count * field.count;
    Field out;
    out.grid = BandGrid((height + 1) / 2, (width + 1) / 2);
    out.count = field.count;
    out.data = Buffer<int32_t>(out.grid.size(cells));
    const BandGrid& grid = out.grid;
    parallel_for(grid.bands, threads, [&](int64_t band) {
        for (int step = 1; step < grid.steps - 1; ++step) {
            for (int lane = 0; lane < LANES; ++lane) {
                int x, y;
                if (!grid.inside(static_cast<int>(band), step, lane, x, y)) continue;
                int32_t* target = out.data.data() + grid.at(static_cast<int>(band), step, cells) + lane;
                for (int fine_y = 2 * y; fine_y < std::min(2 * y + 2, height); ++fine_y) {
                    const int fine_band = fine_y / LANES, fine_lane = fine_y % LANES;
                    for (int fine_x = 2 * x; fine_x < std::min(2 * x + 2, width); ++fine_x) {
                        const int32_t* source = field.data.data() + fine.at(fine_band, fine_x + fine_lane + 1, cells) + fine_lane;
                        for (int index = 0; index < cells; ++index) target[index * LANES] += source[index * LANES];
                    }
                }
            }
        }
    });
    const size_t plane = static_cast<size_t>(height) * width, coarse_plane = static_cast<size_t>(grid.height) * grid.width;
    out.offsets.assign(2 * coarse_plane, 0);
    for (int layer = 0; layer < 2; ++layer) {
        for (int y = 0; y < grid.height; ++y) {
            for (int x = 0; x < grid.width; ++x) {
                int32_t total = 0, count = 0;
                for (int fine_y = 2 * y; fine_y < std::min(2 * y + 2, height); ++fine_y) {
                    for (int fine_x = 2 * x; fine_x < std::min(2 * x + 2, width); ++fine_x) {
                        total += field.offsets[layer * plane + static_cast<size_t>(fine_y) * width + fine_x];
                        ++count;
                    }
                }
                out.offsets[layer * coarse_plane + static_cast<size_t>(y) * grid.width + x] = total / count;
            }
        }
    }
    return out;
}

// The original's propagateFinerLevel: every pixel of the finer field starts from the messages of its
// 2 x 2 block in the coarser one; `rest` values per pixel and layer (2 layers).
Buffer<int32_t> finer(const Buffer<int32_t>& coarse, const BandGrid& coarse_grid, const BandGrid& grid, size_t rest,
                      int threads) {
    Buffer<int32_t> out(2 * grid.size(rest));
    parallel_for(grid.bands, threads, [&](int64_t band) {
        for (int layer = 0; layer < 2; ++layer) {
            for (int step = 0; step < grid.steps; ++step) {
                for (int lane = 0; lane < LANES; ++lane) {
                    int x, y;
                    if (!grid.inside(static_cast<int>(band), step, lane, x, y)) continue;  // the padding stays 0
                    const int coarse_band = (y / 2) / LANES, coarse_lane = (y / 2) % LANES;
                    const int32_t* source = coarse.data() + layer * coarse_grid.size(rest) +
                                            coarse_grid.at(coarse_band, x / 2 + coarse_lane + 1, rest) + coarse_lane;
                    int32_t* target = out.data() + layer * grid.size(rest) + grid.at(static_cast<int>(band), step, rest) + lane;
                    for (size_t index = 0; index < rest; ++index) target[index * LANES] = source[index * LANES];
                }
            }
        }
    });
    return out;
}

// The SIFT Flow energy of a labelling, as the original's GetEnergy: its data and range terms (integers)
// summed by the sweep that made the labels, its smoothness terms here. Per band, then summed in band
// order: the same total on any number of threads. With integral s and d (the original's defaults)
// every term is an integer, summed exactly a step (16 pixels) at a time; otherwise the smoothness
// terms are summed in float64 as the original does, pixel by pixel.
namespace {

// the data and range terms of a step's labels, read lane by lane (where the sweep did not sum them)
SIFTFLOW_INLINE int64_t unary_of_step(const SweepTerms& terms, int band, int step) {
    const BandGrid& grid = *terms.grid;
    const int count = terms.count;
    const int32_t* a = terms.labels + grid.at(band, step, 1);
    const int32_t* b = a + grid.size(1);
    const int32_t* range_a = terms.range + grid.at(band, step, count);
    const int32_t* range_b = range_a + grid.size(count);
    const int32_t* data = terms.data + grid.at(band, step, count * count);
    int64_t total = 0;
    for (int lane = 0; lane < LANES; ++lane) {
        int x, y;
        if (!grid.inside(band, step, lane, x, y)) continue;
        total += range_a[a[lane] * LANES + lane] + range_b[b[lane] * LANES + lane] +
                 data[(b[lane] * count + a[lane]) * LANES + lane];
    }
    return total;
}

int64_t band_smoothness_integral(const SweepTerms& terms, int band, int32_t s, int32_t d) {
    int64_t total = sweep_kernels().band_smoothness(terms, band, s, d);
    if (terms.unary == nullptr) {
        for (int step = 1; step < terms.grid->steps - 1; ++step) total += unary_of_step(terms, band, step);
    }
    return total;
}

// the smoothness terms of one band with fractional s or d, in float64, pixel by pixel as the original
double band_smoothness(const SweepTerms& terms, int band) {
    const BandGrid& grid = *terms.grid;
    const double s = terms.smoothness->exact_s, d = terms.smoothness->exact_d;
    const size_t labels_layer = grid.size(1);
    double total = 0.0;
    for (int step = 1; step < grid.steps - 1; ++step) {
        for (int lane = 0; lane < LANES; ++lane) {
            int x, y;
            if (!grid.inside(band, step, lane, x, y)) continue;
            // the lower neighbour: the next lane one step on, or the next band's lane 0
            const bool spills = lane == LANES - 1;
            const int below_band = band + spills, below_step = spills ? step - LANES + 1 : step + 1;
            const int below_lane = spills ? 0 : lane + 1;
            for (int layer = 0; layer < 2; ++layer) {
                const int32_t* labels = terms.labels + layer * labels_layer;
                const int32_t* offsets = terms.offsets + layer * labels_layer;
                const int32_t flow = labels[grid.at(band, step, 1) + lane] + offsets[grid.at(band, step, 1) + lane];
                if (x < grid.width - 1) {
                    const size_t right = grid.at(band, step + 1, 1) + lane;
                    total += std::min(std::abs(flow - (labels[right] + offsets[right])) * s, d);
                }
                if (y < grid.height - 1) {
                    const size_t below = grid.at(below_band, below_step, 1) + below_lane;
                    total += std::min(std::abs(flow - (labels[below] + offsets[below])) * s, d);
                }
            }
        }
        if (terms.unary == nullptr) total += static_cast<double>(unary_of_step(terms, band, step));
    }
    return total;
}

}  // namespace

double energy(const SweepTerms& terms, const std::vector<int64_t>& unary, int threads) {
    const double s = terms.smoothness->exact_s, d = terms.smoothness->exact_d;
    const bool integral = s == std::floor(s) && d == std::floor(d) && s < (1 << 30) && d < (1 << 30);
    std::vector<double> per_band(terms.grid->bands, 0.0);
    parallel_for(terms.grid->bands, threads, [&](int64_t index) {
        const int band = static_cast<int>(index);
        per_band[band] = integral ? static_cast<double>(band_smoothness_integral(terms, band, static_cast<int32_t>(s),
                                                                                 static_cast<int32_t>(d)) + unary[band])
                                  : band_smoothness(terms, band) + static_cast<double>(unary[band]);
    });
    double total = 0.0;
    for (double value : per_band) total += value;
    return total;
}

}  // namespace siftflow
