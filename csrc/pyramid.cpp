// The descriptor pyramids of SIFTflowc2f.m, on (H, W, C) uint8 descriptors, channels last: the same
// filters, tables and summation orders as flow/pyramid.py's torch version (which the tests hold
// these to bit for bit); the tables come from there.
//
// - 2009: in float64, per level one composed filter-and-resize table along x, then along y, each
//   level read back with the mex's (unsigned char)(v * 255) wrap-around; channels a chunk at a time
//   through all levels, row by row (ChunkPyramid), so that the float64 values stay in cache.
// - 2010: MATLAB's uint8 imfilter (5 taps, x then y, rounded), then imresize(0.5) exactly in integers
//   (its taps are multiples of 1/256), along y then x, rounded after each pass; all channels at once,
//   the filter on tiles of columns, the resize on blocks of rows.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "resample.h"

namespace siftflow {
namespace {

// 2009: channels taken through all levels together; 64 bytes, a cache line of each pixel per pass
// over the input (32 read each line twice; 5-10% slower on a Sintel frame)
constexpr int CHANNEL_CHUNK = 64;
constexpr int FILTER_ROWS = 16;    // 2010: output rows of the resize per unit of parallel work
constexpr int TILE_VALUES = 4096;  // 2010: values (pixels x channels) across a tile of the filter

struct Table {  // (out_length, taps) indices and weights
    const int64_t* indices;
    const double* weights;
    const int32_t* taps;  // the weights times 2^bits, for the dyadic passes
    int length, count;
};

Table table_of(const py::array& indices, const py::array& weights, const char* name, bool dyadic) {
    Table table{};
    table.indices = array_data<int64_t>(indices, name, 2);
    if (dyadic) {
        table.taps = array_data<int32_t>(weights, name, 2);
    } else {
        table.weights = array_data<double>(weights, name, 2);
    }
    check_shape(weights, name, {indices.shape(0), indices.shape(1)});
    table.length = static_cast<int>(indices.shape(0));
    table.count = static_cast<int>(indices.shape(1));
    return table;
}

void check_indices(const Table& table, int64_t source_length, const char* name) {
    for (int64_t index = 0; index < static_cast<int64_t>(table.length) * table.count; ++index) {
        if (table.indices[index] < 0 || table.indices[index] >= source_length) {
            throw py::value_error(std::string(name) + " holds an index outside 0.." + std::to_string(source_length - 1));
        }
    }
}

// --- 2009 --------------------------------------------------------------------------------------------

// uint8 / 255 (MATLAB's im2double) of `count` channels of a row of `stride`-channel pixels, without
// a division (a vector division costs 5-10 times a multiplication, and was a fifth of the pyramid):
// q = v * (1/255) is off by an ulp for 24 of the 256 bytes; one Newton step with the exact residual,
// fma(fma(-q, 255, v), 1/255, q), is the correctly rounded quotient for every byte (checked for all
// 256 in exact arithmetic, and the pyramid tests hold the levels to torch's division bit for bit).
template <int COUNT>
SIFTFLOW_INLINE void to_float_row_as(const uint8_t* source, int width, int runtime_count, int stride, double* out) {
    const int count = COUNT > 0 ? COUNT : runtime_count;
    constexpr double reciprocal = 1.0 / 255.0;
    for (int x = 0; x < width; ++x) {
        const uint8_t* SIFTFLOW_RESTRICT pixel = source + static_cast<size_t>(x) * stride;
        double* SIFTFLOW_RESTRICT target = out + static_cast<size_t>(x) * count;
        for (int c = 0; c < count; ++c) {
            const double value = static_cast<double>(pixel[c]);
            const double estimate = value * reciprocal;
            target[c] = std::fma(std::fma(-estimate, 255.0, value), reciprocal, estimate);
        }
    }
}

SIFTFLOW_CLONES void to_float_row(const uint8_t* source, int width, int count, int stride, double* out) {
    if (count == CHANNEL_CHUNK) {
        to_float_row_as<CHANNEL_CHUNK>(source, width, count, stride, out);
    } else {
        to_float_row_as<0>(source, width, count, stride, out);
    }
}

// Eight float64 values (GCC's vector extensions: one AVX-512 register, two AVX2 or four SSE2 ones),
// so that the sums below stay in registers, tap after tap, instead of whatever loop order the
// auto-vectoriser picks (it gathered across taps here).
typedef double D __attribute__((vector_size(8 * sizeof(double))));
constexpr int DOUBLES = 8;

typedef int32_t Ints __attribute__((vector_size(DOUBLES * sizeof(int32_t))));
typedef uint8_t Bytes __attribute__((vector_size(DOUBLES)));
typedef int32_t Sums __attribute__((vector_size(16 * sizeof(int32_t))));  // the 2010 resize's integer sums
typedef uint8_t SixteenBytes __attribute__((vector_size(16)));

SIFTFLOW_INLINE D load_doubles(const double* address) {
    D value;
    std::memcpy(&value, address, sizeof(D));
    return value;
}
SIFTFLOW_INLINE void store_doubles(double* address, D value) { std::memcpy(address, &value, sizeof(D)); }

// out[x', c] = sum_t w[x', t] * in[idx[x', t], c], the taps in order from 0.0, for a chunk of
// CHANNEL_CHUNK channels (other chunk sizes: plain loops)
SIFTFLOW_CLONES void reduce_row(const double* input, const Table& x, int count, double* out) {
    constexpr int VECTORS = CHANNEL_CHUNK / DOUBLES;
    for (int column = 0; column < x.length; ++column) {
        double* target = out + static_cast<size_t>(column) * count;
        if (count == CHANNEL_CHUNK) {
            D acc[VECTORS] = {};
            for (int tap = 0; tap < x.count; ++tap) {
                const double weight = x.weights[column * x.count + tap];
                if (weight == 0.0) continue;
                const double* values = input + x.indices[column * x.count + tap] * count;
                for (int v = 0; v < VECTORS; ++v) acc[v] += weight * load_doubles(values + v * DOUBLES);
            }
            for (int v = 0; v < VECTORS; ++v) store_doubles(target + v * DOUBLES, acc[v]);
            continue;
        }
        std::fill(target, target + count, 0.0);
        for (int tap = 0; tap < x.count; ++tap) {
            const double weight = x.weights[column * x.count + tap];
            if (weight == 0.0) continue;
            const double* values = input + x.indices[column * x.count + tap] * count;
            for (int c = 0; c < count; ++c) target[c] += weight * values[c];
        }
    }
}

// out = sum_t weights[t] * rows[t], the taps in order from 0.0, 32 values at a time (each block
// summed in registers, written once)
SIFTFLOW_CLONES void weighted_rows(const std::vector<const double*>& rows, const std::vector<double>& weights,
                                   size_t length, double* SIFTFLOW_RESTRICT out) {
    constexpr size_t VECTORS = 4, BLOCK = VECTORS * DOUBLES;
    const size_t taps = rows.size();
    const double* const* sources = rows.data();
    size_t start = 0;
    for (; start + BLOCK <= length; start += BLOCK) {
        D acc[VECTORS] = {};
        for (size_t tap = 0; tap < taps; ++tap) {
            const double weight = weights[tap];
            const double* row = sources[tap] + start;
            for (size_t v = 0; v < VECTORS; ++v) acc[v] += weight * load_doubles(row + v * DOUBLES);
        }
        for (size_t v = 0; v < VECTORS; ++v) store_doubles(out + start + v * DOUBLES, acc[v]);
    }
    for (size_t i = start; i < length; ++i) {
        double acc = 0.0;
        for (size_t tap = 0; tap < taps; ++tap) acc += weights[tap] * sources[tap][i];
        out[i] = acc;
    }
}

// The mex's (unsigned char)(v * 255) on x86: truncated to an int, then its low byte (an undershoot
// below 0 wraps to 255, 254, ...; 256 to 0).
SIFTFLOW_CLONES void wrap_row(const double* values, int width, int count, int stride, uint8_t* out) {
    for (int x = 0; x < width; ++x) {
        for (int c = 0; c < count; ++c) {
            out[static_cast<size_t>(x) * stride + c] =
                static_cast<uint8_t>(static_cast<int32_t>(values[x * count + c] * 255) & 0xFF);
        }
    }
}

// The levels of one chunk of channels, streamed: level k's row r is the y table's taps over level k's
// "x rows" (rows of level k - 1 reduced along x), and each x row is computed once, when first asked
// for, into a ring of the last RING rows (one output row's taps span at most 13 rows). So every
// level's float64 values are computed exactly once and stay in cache; nothing image-sized is held.
// Zero weights (the padding of the tables) are skipped: adding 0 * v to a sum changes none of its bits.
class ChunkPyramid {
  public:
    ChunkPyramid(const uint8_t* sift, int width, int channels, int first, int count, const std::vector<Table>& x_tables,
                 const std::vector<Table>& y_tables, const std::vector<uint8_t*>& levels)
        : sift_(sift), width_(width), channels_(channels), first_(first), count_(count), outputs_(levels) {
        int in_width = width;
        for (size_t level = 0; level < levels.size(); ++level) {
            Stage stage{&x_tables[level], &y_tables[level], in_width, {}, std::vector<int>(RING, -1), {}, {}, {}};
            stage.ring.resize(static_cast<size_t>(RING) * x_tables[level].length * count);
            stage.input.resize(static_cast<size_t>(in_width) * count);
            stages_.push_back(std::move(stage));
            in_width = x_tables[level].length;
        }
    }

    // every row of the coarsest level, which pulls every row of the others
    void run() {
        const int coarsest = static_cast<int>(stages_.size());
        std::vector<double> row(static_cast<size_t>(stages_.back().x->length) * count_);
        for (int r = 0; r < stages_.back().y->length; ++r) level_row(coarsest, r, row.data());
    }

  private:
    static constexpr int RING = 16;

    struct Stage {  // making level k (1: the first coarser one) from level k - 1
        const Table* x;
        const Table* y;
        int in_width;
        std::vector<double> ring;   // RING x rows, (x->length, count) each
        std::vector<int> tags;      // the row of level k - 1 each slot holds
        std::vector<double> input;  // a row of level k - 1
        std::vector<const double*> rows;  // the x rows and weights of the row being made
        std::vector<double> weights;
    };

    // level k's row r (k >= 1) into out, in float64, and its bytes into the output level
    void level_row(int k, int r, double* out) {
        Stage& stage = stages_[k - 1];
        const Table& y = *stage.y;
        stage.rows.clear();  // per stage: x_row may come back here for the level below
        stage.weights.clear();
        for (int tap = 0; tap < y.count; ++tap) {
            const double weight = y.weights[r * y.count + tap];
            if (weight == 0.0) continue;
            stage.rows.push_back(x_row(k, static_cast<int>(y.indices[r * y.count + tap])));
            stage.weights.push_back(weight);
        }
        weighted_rows(stage.rows, stage.weights, static_cast<size_t>(stage.x->length) * count_, out);
        uint8_t* target = outputs_[k - 1] + static_cast<size_t>(r) * stage.x->length * channels_ + first_;
        wrap_row(out, stage.x->length, count_, channels_, target);
    }

    // level k - 1's row r reduced along x (k >= 1)
    const double* x_row(int k, int r) {
        Stage& stage = stages_[k - 1];
        double* slot = stage.ring.data() + static_cast<size_t>(r % RING) * stage.x->length * count_;
        if (stage.tags[r % RING] == r) return slot;
        if (k == 1) {
            to_float_row(sift_ + static_cast<size_t>(r) * width_ * channels_ + first_, width_, count_, channels_,
                         stage.input.data());
        } else {
            level_row(k - 1, r, stage.input.data());
        }
        reduce_row(stage.input.data(), *stage.x, count_, slot);
        stage.tags[r % RING] = r;
        return slot;
    }

    const uint8_t* sift_;
    int width_, channels_, first_, count_;
    std::vector<uint8_t*> outputs_;
    std::vector<Stage> stages_;
};

void pyramid_2009(const uint8_t* sift, int width, int channels, const std::vector<Table>& x_tables,
                  const std::vector<Table>& y_tables, const std::vector<uint8_t*>& levels, int threads) {
    if (levels.empty()) return;
    parallel_for(ceil_div(channels, CHANNEL_CHUNK), threads, [&](int64_t chunk) {
        const int first = static_cast<int>(chunk) * CHANNEL_CHUNK;
        ChunkPyramid(sift, width, channels, first, std::min(CHANNEL_CHUNK, channels - first), x_tables, y_tables, levels)
            .run();
    });
}

// --- 2010 --------------------------------------------------------------------------------------------

SIFTFLOW_INLINE uint8_t rounded_uint8(double value) {
    return static_cast<uint8_t>(std::min(std::max(std::floor(value + 0.5), 0.0), 255.0));
}

// out = uint8(filter_y(filter_x(image))) for the columns first_column..last_column - 1, every row:
// MATLAB's imfilter of a uint8 image with the separable 5-tap kernel (replicated borders, taps
// summed in order), rounded. The tile's last 5 rows filtered along x are kept in a ring, so the 5
// taps of a row are one expression (one pass over memory, not one per tap); a tile of columns, not
// whole rows, so that ring (5 x TILE_VALUES doubles) stays in L2 (whole rows of a DocUNet page's
// descriptors were 1.7 MB: the filter waited on L3).
SIFTFLOW_CLONES void filter_5_columns(const uint8_t* image, int height, int width, int channels, const double* taps,
                                      int first_column, int last_column, uint8_t* out) {
    const double w0 = taps[0], w1 = taps[1], w2 = taps[2], w3 = taps[3], w4 = taps[4];
    const size_t row_length = static_cast<size_t>(width) * channels;
    const size_t tile_length = static_cast<size_t>(last_column - first_column) * channels;
    std::vector<double> ring(5 * tile_length), padded((tile_length + 4 * static_cast<size_t>(channels)));
    for (int r = -2; r < height + 2; ++r) {
        const uint8_t* source = image + static_cast<size_t>(std::min(std::max(r, 0), height - 1)) * row_length;
        for (int x = first_column - 2; x < last_column + 2; ++x) {
            const uint8_t* pixel = source + static_cast<size_t>(std::min(std::max(x, 0), width - 1)) * channels;
            double* target = padded.data() + static_cast<size_t>(x - first_column + 2) * channels;
            for (int c = 0; c < channels; ++c) target[c] = pixel[c];
        }
        double* SIFTFLOW_RESTRICT row = ring.data() + ((r + 2) % 5) * tile_length;
        const double *p0 = padded.data(), *p1 = p0 + channels, *p2 = p1 + channels, *p3 = p2 + channels,
                     *p4 = p3 + channels;
        for (size_t i = 0; i < tile_length; ++i) row[i] = w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i] + w4 * p4[i];
        const int y = r - 2;  // the output row whose last input row this is
        if (y < 0) continue;
        const double* r0 = ring.data() + (y % 5) * tile_length;
        const double* r1 = ring.data() + ((y + 1) % 5) * tile_length;
        const double* r2 = ring.data() + ((y + 2) % 5) * tile_length;
        const double* r3 = ring.data() + ((y + 3) % 5) * tile_length;
        const double* r4 = ring.data() + ((y + 4) % 5) * tile_length;
        uint8_t* SIFTFLOW_RESTRICT target = out + static_cast<size_t>(y) * row_length + static_cast<size_t>(first_column) * channels;
        size_t i = 0;
        // 8 at a time: the taps are positive and the inputs bytes, so the sum is >= 0 and
        // floor(v + 0.5) is its truncation (a vector conversion; floor itself is a scalar call)
        for (; i + DOUBLES <= tile_length; i += DOUBLES) {
            const D value = w0 * load_doubles(r0 + i) + w1 * load_doubles(r1 + i) + w2 * load_doubles(r2 + i) +
                            w3 * load_doubles(r3 + i) + w4 * load_doubles(r4 + i);
            const Ints rounded = __builtin_convertvector(value + 0.5, Ints);
            const Bytes bytes = __builtin_convertvector(rounded < 255 ? rounded : 255, Bytes);
            std::memcpy(target + i, &bytes, sizeof(Bytes));
        }
        for (; i < tile_length; ++i) {
            target[i] = rounded_uint8(w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i] + w4 * r4[i]);
        }
    }
}

// MATLAB's imresize of a uint8 (H, W, C) image by dyadic tables: along y (one table row per output
// row), rounded to uint8, then along x, rounded again; rows first_row..last_row - 1 of the output.
SIFTFLOW_CLONES void resize_dyadic_rows(const uint8_t* image, int width, int channels, const Table& y, const Table& x,
                                        int bits, int first_row, int last_row, uint8_t* out) {
    const size_t row_length = static_cast<size_t>(width) * channels;
    std::vector<int32_t> along_y(row_length);
    const int32_t half = 1 << (bits - 1);
    for (int row = first_row; row < last_row; ++row) {
        dyadic_row(image, row_length, y.indices + row * y.count, y.taps + row * y.count, y.count, bits,
                   along_y.data());
        uint8_t* target = out + static_cast<size_t>(row) * x.length * channels;
        for (int column = 0; column < x.length; ++column) {
            const int64_t* indices = x.indices + column * x.count;
            const int32_t* weights = x.taps + column * x.count;
            uint8_t* pixel = target + static_cast<size_t>(column) * channels;
            int c = 0;
            for (; c + 16 <= channels; c += 16) {  // 16 channels summed over the taps in a register
                Sums sum = {};
                for (int tap = 0; tap < x.count; ++tap) {
                    if (weights[tap] == 0) continue;
                    Sums values;
                    std::memcpy(&values, along_y.data() + indices[tap] * channels + c, sizeof(values));
                    sum += weights[tap] * values;
                }
                sum = (sum + half) >> bits;
                sum = sum < 0 ? 0 : sum;
                sum = sum > 255 ? 255 : sum;
                const SixteenBytes bytes = __builtin_convertvector(sum, SixteenBytes);
                std::memcpy(pixel + c, &bytes, sizeof(bytes));
            }
            for (; c < channels; ++c) {
                int32_t sum = 0;
                for (int tap = 0; tap < x.count; ++tap) {
                    sum += weights[tap] * along_y[static_cast<size_t>(indices[tap]) * channels + c];
                }
                pixel[c] = static_cast<uint8_t>(std::min(std::max((sum + half) >> bits, 0), 255));
            }
        }
    }
}

void pyramid_2010(const uint8_t* sift, int height, int width, int channels, const double* gaussian,
                  const std::vector<Table>& y_tables, const std::vector<Table>& x_tables,
                  const std::vector<uint8_t*>& levels, int threads) {
    std::vector<uint8_t> filtered;
    const uint8_t* source = sift;
    int h = height, w = width;
    for (size_t level = 0; level < levels.size(); ++level) {
        filtered.resize(static_cast<size_t>(h) * w * channels);
        const int tile = std::max(1, TILE_VALUES / channels);
        parallel_for(ceil_div(w, tile), threads, [&](int64_t block) {
            const int first = static_cast<int>(block) * tile;
            filter_5_columns(source, h, w, channels, gaussian, first, std::min(w, first + tile), filtered.data());
        });
        const Table& y = y_tables[level];
        const Table& x = x_tables[level];
        parallel_for(ceil_div(y.length, FILTER_ROWS), threads, [&](int64_t block) {
            const int first = static_cast<int>(block) * FILTER_ROWS;
            resize_dyadic_rows(filtered.data(), w, channels, y, x, 8, first, std::min(y.length, first + FILTER_ROWS),
                               levels[level]);
        });
        source = levels[level];
        h = y.length;
        w = x.length;
    }
}

// --- entry points ------------------------------------------------------------------------------------

std::vector<uint8_t*> level_outputs(const py::list& outputs, int channels) {
    std::vector<uint8_t*> levels;
    for (size_t index = 0; index < outputs.size(); ++index) {
        py::array level = outputs[index].cast<py::array>();
        levels.push_back(array_data<uint8_t>(level, "outputs[k]", 3, true));
        check_shape(level, "outputs[k]", {-1, -1, channels});
    }
    return levels;
}

void check_chain(const std::vector<Table>& along_y, const std::vector<Table>& along_x, const py::list& outputs,
                 int height, int width) {
    int h = height, w = width;
    for (size_t level = 0; level < outputs.size(); ++level) {
        check_indices(along_y[level], h, "y_tables[k]");
        check_indices(along_x[level], w, "x_tables[k]");
        py::array out = outputs[level].cast<py::array>();
        check_shape(out, "outputs[k]", {along_y[level].length, along_x[level].length});
        h = along_y[level].length;
        w = along_x[level].length;
    }
}

void descriptor_pyramid_2009(const py::array& sift, const py::list& x_tables, const py::list& y_tables,
                             const py::list& outputs, int threads) {
    const uint8_t* data = array_data<uint8_t>(sift, "sift", 3);
    const int height = static_cast<int>(sift.shape(0)), width = static_cast<int>(sift.shape(1));
    const int channels = static_cast<int>(sift.shape(2));
    std::vector<Table> along_x, along_y;
    for (size_t level = 0; level < outputs.size(); ++level) {
        py::tuple x = x_tables[level].cast<py::tuple>(), y = y_tables[level].cast<py::tuple>();
        along_x.push_back(table_of(x[0].cast<py::array>(), x[1].cast<py::array>(), "x_tables[k]", false));
        along_y.push_back(table_of(y[0].cast<py::array>(), y[1].cast<py::array>(), "y_tables[k]", false));
    }
    check_chain(along_y, along_x, outputs, height, width);
    const std::vector<uint8_t*> levels = level_outputs(outputs, channels);
    py::gil_scoped_release release;
    pyramid_2009(data, width, channels, along_x, along_y, levels, threads);
}

void descriptor_pyramid_2010(const py::array& sift, const py::array& gaussian, const py::list& y_tables,
                             const py::list& x_tables, const py::list& outputs, int threads) {
    const uint8_t* data = array_data<uint8_t>(sift, "sift", 3);
    const double* taps = array_data<double>(gaussian, "gaussian", 1);
    check_shape(gaussian, "gaussian", {5});
    const int height = static_cast<int>(sift.shape(0)), width = static_cast<int>(sift.shape(1));
    const int channels = static_cast<int>(sift.shape(2));
    std::vector<Table> along_y, along_x;
    for (size_t level = 0; level < outputs.size(); ++level) {
        py::tuple y = y_tables[level].cast<py::tuple>(), x = x_tables[level].cast<py::tuple>();
        along_y.push_back(table_of(y[0].cast<py::array>(), y[1].cast<py::array>(), "y_tables[k]", true));
        along_x.push_back(table_of(x[0].cast<py::array>(), x[1].cast<py::array>(), "x_tables[k]", true));
    }
    check_chain(along_y, along_x, outputs, height, width);
    const std::vector<uint8_t*> levels = level_outputs(outputs, channels);
    py::gil_scoped_release release;
    pyramid_2010(data, height, width, channels, taps, along_y, along_x, levels, threads);
}

}  // namespace

void register_pyramid(py::module_& m) {
    m.def("descriptor_pyramid_2009", &descriptor_pyramid_2009, py::arg("sift"), py::arg("x_tables"),
          py::arg("y_tables"), py::arg("outputs"), py::arg("threads"),
          "The 2009 driver's levels of an (H, W, C) uint8 image into outputs[k] (h_k, w_k, C) uint8, from "
          "per-level (indices, weights) tables of the composed filter and resize along x and y.");
    m.def("descriptor_pyramid_2010", &descriptor_pyramid_2010, py::arg("sift"), py::arg("gaussian"),
          py::arg("y_tables"), py::arg("x_tables"), py::arg("outputs"), py::arg("threads"),
          "The 2010 driver's levels: the 5-tap filter rounded to uint8, then imresize(0.5) by per-level dyadic "
          "(indices, taps * 256) tables along y and x.");
}

}  // namespace siftflow
