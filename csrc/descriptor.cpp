// The descriptor written straight into its stored form, uint8, channels last: to_uint8 of each
// cell * inv_norm computed where it is written (siftflow_nn/descriptor/stored.py), so no float
// descriptor exists, whole or in strips. The product in the maps' dtype, times 255, clamped to
// [0, 255] (NaN to 0), truncated: sampling.write_descriptors followed by to_uint8.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common.h"

namespace siftflow {
namespace {

struct CellSource {
    int64_t map, top, left;
};

template <class T>
struct CellMap {
    const T* data;
    int64_t bins, height, width;
};

// Row y of every cell, a vector of pixels at a time: each cell's bin is read as a run of values
// (where pixel by pixel the 128 bins are 128 streams a plane apart), scaled and clamped without
// branches (NaN fails both comparisons: 0), and the bytes of those pixels written while their cache
// lines are held. The same products in the same order as the scalar definition: the same bytes.
template <class T>
struct RowVectors;  // one AVX2 register of T, and as many int32
template <>
struct RowVectors<float> {
    typedef float Values __attribute__((vector_size(32)));
    typedef int32_t Ints __attribute__((vector_size(32)));
};
template <>
struct RowVectors<double> {
    typedef double Values __attribute__((vector_size(32)));
    typedef int32_t Ints __attribute__((vector_size(16)));
};

template <class T>
SIFTFLOW_INLINE void write_row(const std::vector<CellMap<T>>& maps, const std::vector<CellSource>& sources,
                               const T* norms, int width, int y, uint8_t* row, int64_t stride) {
    typedef typename RowVectors<T>::Values Values;
    typedef typename RowVectors<T>::Ints Ints;
    constexpr int N = sizeof(Values) / sizeof(T);
    const T full = static_cast<T>(255);
    const Values zero{}, top = zero + full;
    int first = 0;
    for (; first + N <= width; first += N) {
        Values scale;
        std::memcpy(&scale, norms + first, sizeof(Values));
        int64_t channel = 0;
        for (const CellSource& source : sources) {
            const CellMap<T>& cells = maps[source.map];
            const int64_t plane = cells.height * cells.width, bins = cells.bins;
            const T* start = cells.data + (source.top + y) * cells.width + source.left + first;
            uint8_t* target = row + first * stride + channel;
            for (int64_t b = 0; b < bins; ++b) {
                Values value;
                std::memcpy(&value, start + b * plane, sizeof(Values));
                Values stored = value * scale * full;
                stored = stored > 0 ? stored : zero;
                stored = stored < full ? stored : top;
                const Ints bytes = __builtin_convertvector(stored, Ints);
                for (int x = 0; x < N; ++x) target[x * stride + b] = static_cast<uint8_t>(bytes[x]);
            }
            channel += bins;
        }
    }
    for (; first < width; ++first) {  // the last pixels, one at a time
        int64_t channel = 0;
        for (const CellSource& source : sources) {
            const CellMap<T>& cells = maps[source.map];
            const T* value = cells.data + (source.top + y) * cells.width + source.left + first;
            for (int64_t b = 0; b < cells.bins; ++b) {
                const T stored = value[b * cells.height * cells.width] * norms[first] * full;
                row[first * stride + channel + b] =
                    static_cast<uint8_t>(static_cast<int32_t>(stored > 0 ? (stored < full ? stored : full) : 0));
            }
            channel += cells.bins;
        }
    }
}

SIFTFLOW_CLONES void write_row_float(const std::vector<CellMap<float>>& maps, const std::vector<CellSource>& sources,
                                     const float* norms, int width, int y, uint8_t* row, int64_t stride) {
    write_row(maps, sources, norms, width, y, row, stride);
}

SIFTFLOW_CLONES void write_row_double(const std::vector<CellMap<double>>& maps, const std::vector<CellSource>& sources,
                                      const double* norms, int width, int y, uint8_t* row, int64_t stride) {
    write_row(maps, sources, norms, width, y, row, stride);
}

template <class T>
void write_cells_as(const py::list& maps, const py::array& sources, const py::array& inv_norm, const py::array& out,
                    int64_t channel, int threads) {
    std::vector<CellMap<T>> cell_maps;
    for (size_t index = 0; index < maps.size(); ++index) {
        py::array map = maps[index].cast<py::array>();
        cell_maps.push_back({array_data<T>(map, "maps[k]", 3), map.shape(0), map.shape(1), map.shape(2)});
    }
    const int64_t* table = array_data<int64_t>(sources, "sources", 2);
    check_shape(sources, "sources", {-1, 3});
    const T* norms = array_data<T>(inv_norm, "inv_norm", 2);
    uint8_t* target = array_data<uint8_t>(out, "out", 3, true);
    const int height = static_cast<int>(inv_norm.shape(0)), width = static_cast<int>(inv_norm.shape(1));
    check_shape(out, "out", {height, width});
    std::vector<CellSource> cells;
    int64_t depth = 0;
    for (py::ssize_t cell = 0; cell < sources.shape(0); ++cell) {
        const CellSource source{table[3 * cell], table[3 * cell + 1], table[3 * cell + 2]};
        if (source.map < 0 || source.map >= static_cast<int64_t>(cell_maps.size())) {
            throw py::value_error("sources names a map that is not given");
        }
        const CellMap<T>& map = cell_maps[source.map];
        if (source.top < 0 || source.left < 0 || source.top + height > map.height || source.left + width > map.width) {
            throw py::value_error("sources places a cell outside its map");
        }
        cells.push_back(source);
        depth += map.bins;
    }
    const int64_t stride = out.shape(2);
    if (channel < 0 || channel + depth > stride) throw py::value_error("out has too few channels for the cells");
    py::gil_scoped_release release;
    parallel_for(height, threads, [&](int64_t y) {
        uint8_t* row = target + y * width * stride + channel;
        if constexpr (std::is_same_v<T, float>) {
            write_row_float(cell_maps, cells, norms + y * width, width, static_cast<int>(y), row, stride);
        } else {
            write_row_double(cell_maps, cells, norms + y * width, width, static_cast<int>(y), row, stride);
        }
    });
}

void write_cells(const py::list& maps, const py::array& sources, const py::array& inv_norm, const py::array& out,
                 int64_t channel, int threads) {
    if (py::isinstance<py::array_t<float>>(inv_norm) && inv_norm.dtype().kind() == 'f' && inv_norm.itemsize() == 4) {
        write_cells_as<float>(maps, sources, inv_norm, out, channel, threads);
    } else {
        write_cells_as<double>(maps, sources, inv_norm, out, channel, threads);
    }
}

// --- descriptors as the matcher stores them: (C, H, W), any layout and float dtype -> (H, W, C) uint8 ---

// The mex's reading of a descriptor value: truncated to an integer, clamped to 0..255 (NaN: 0).
template <class T>
SIFTFLOW_INLINE uint8_t stored_value(T value) {
    if constexpr (std::is_same_v<T, uint8_t>) {
        return value;
    } else {
        return value > 0 ? (value < 255 ? static_cast<uint8_t>(static_cast<int32_t>(value)) : 255) : 0;
    }
}

struct StoredRow {
    int64_t nan = 0;     // NaN values (stored as 0)
    double largest = 0;  // the largest value (of the others)
};

constexpr int64_t TILE = 32;  // pixels of a row converted, then transposed, together

// The stored bytes of TILE values read along x (stride 1), 16 at a time as vectors (GCC's vector
// extensions); counts NaN and keeps the largest value, per lane.
template <class T>
struct Runs {
    typedef T Values __attribute__((vector_size(16 * sizeof(T))));
    typedef int32_t Ints __attribute__((vector_size(16 * sizeof(int32_t))));
    typedef uint8_t Bytes __attribute__((vector_size(16)));
    Ints nan{};
    Values largest{};

    SIFTFLOW_INLINE void store(const T* values, uint8_t* out) {
        for (int64_t x = 0; x < TILE; x += 16) {
            Values v;
            std::memcpy(&v, values + x, sizeof(Values));
            largest = v > largest ? v : largest;
            if constexpr (std::is_same_v<T, uint8_t>) {
                std::memcpy(out + x, &v, 16);
            } else {
                nan -= __builtin_convertvector(v != v, Ints);  // -1 where NaN
                const Values zero{}, full = zero + static_cast<T>(255);
                const Values clamped = v > zero ? (v < full ? v : full) : zero;  // NaN: 0
                const Bytes bytes = __builtin_convertvector(__builtin_convertvector(clamped, Ints), Bytes);
                std::memcpy(out + x, &bytes, 16);
            }
        }
    }
    int64_t nan_count() const {
        int64_t total = 0;
        for (int k = 0; k < 16; ++k) total += nan[k];
        return total;
    }
    T largest_value() const {
        T best = 0;
        for (int k = 0; k < 16; ++k) best = largest[k] > best ? largest[k] : best;
        return best;
    }
};

typedef uint8_t Bytes16 __attribute__((vector_size(16)));

// 16 rows of 16 bytes (in, in_stride apart) into 16 columns (out, out_stride apart): four rounds of
// interleaving row i with row i + 8, 64 byte shuffles where byte by byte is 256 loads and stores.
// (clang has no __builtin_shuffle, GCC before 12 no __builtin_shufflevector: see lanes.h)
SIFTFLOW_INLINE void transpose_16(const uint8_t* in, int64_t in_stride, uint8_t* out, int64_t out_stride) {
#if !defined(__clang__)
    const Bytes16 low{0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
    const Bytes16 high{8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
#endif
    Bytes16 rows[16], next[16];
    for (int i = 0; i < 16; ++i) std::memcpy(&rows[i], in + i * in_stride, 16);
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 8; ++i) {
#if defined(__clang__)
            next[2 * i] = __builtin_shufflevector(rows[i], rows[i + 8], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            next[2 * i + 1] =
                __builtin_shufflevector(rows[i], rows[i + 8], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
#else
            next[2 * i] = __builtin_shuffle(rows[i], rows[i + 8], low);
            next[2 * i + 1] = __builtin_shuffle(rows[i], rows[i + 8], high);
#endif
        }
        std::memcpy(rows, next, sizeof(rows));
    }
    for (int j = 0; j < 16; ++j) std::memcpy(out + j * out_stride, &rows[j], 16);
}

// Row y of the output. Where x is contiguous in the input (NCHW memory), 16 channels at a time: a
// tile of 16 channels by TILE pixels is converted channel by channel (contiguous reads, vector code),
// then transposed in cache into the pixels' bytes, along the row (which stays in L2 for the next 16
// channels). Reading 16 channel planes at once, not all 128, keeps within what the hardware
// prefetchers follow: a Sintel pair's float descriptors in 0.56 to 0.63x the time. Channels last, each
// pixel's values are converted as one run; any other layout is read value by value.
template <class T>
SIFTFLOW_INLINE StoredRow stored_row(const T* source, int64_t channels, int64_t width, int64_t stride_c,
                                     int64_t stride_x, uint8_t* out) {
    Runs<T> runs;
    int64_t first = 0;
    if (stride_x == 1) {
        uint8_t tile[16 * TILE];
        const int64_t full = width - width % TILE;
        int64_t c0 = 0;
        for (; c0 + 16 <= channels; c0 += 16) {
            for (int64_t x0 = 0; x0 < full; x0 += TILE) {
                for (int64_t c = 0; c < 16; ++c) runs.store(source + (c0 + c) * stride_c + x0, &tile[c * TILE]);
                for (int64_t x = 0; x < TILE; x += 16) {
                    transpose_16(&tile[x], TILE, out + (x0 + x) * channels + c0, channels);
                }
            }
        }
        for (; c0 < channels; ++c0) {  // channels beyond a multiple of 16
            for (int64_t x0 = 0; x0 < full; x0 += TILE) {
                runs.store(source + c0 * stride_c + x0, tile);
                for (int64_t x = 0; x < TILE; ++x) out[(x0 + x) * channels + c0] = tile[x];
            }
        }
        first = full;
    }
    if (stride_c == 1 && channels % TILE == 0) {  // channels last: each pixel's values are one run
        for (int64_t x = first; x < width; ++x) {
            for (int64_t c = 0; c < channels; c += TILE) runs.store(source + x * stride_x + c, out + x * channels + c);
        }
        first = width;
    }
    int64_t nan = runs.nan_count();
    T largest = runs.largest_value();
    for (int64_t x = first; x < width; ++x) {
        for (int64_t c = 0; c < channels; ++c) {
            const T value = source[c * stride_c + x * stride_x];
            if constexpr (!std::is_same_v<T, uint8_t>) nan += value != value;
            largest = value > largest ? value : largest;
            out[x * channels + c] = stored_value(value);
        }
    }
    return {nan, static_cast<double>(largest)};
}

SIFTFLOW_CLONES StoredRow stored_row_float(const float* s, int64_t c, int64_t w, int64_t sc, int64_t sx, uint8_t* o) {
    return stored_row(s, c, w, sc, sx, o);
}
SIFTFLOW_CLONES StoredRow stored_row_double(const double* s, int64_t c, int64_t w, int64_t sc, int64_t sx, uint8_t* o) {
    return stored_row(s, c, w, sc, sx, o);
}
SIFTFLOW_CLONES StoredRow stored_row_uint8(const uint8_t* s, int64_t c, int64_t w, int64_t sc, int64_t sx, uint8_t* o) {
    return stored_row(s, c, w, sc, sx, o);
}

template <class T, class Row>
py::tuple stored_as(const py::array& source, uint8_t* target, Row row, int threads) {
    const int64_t channels = source.shape(0), height = source.shape(1), width = source.shape(2);
    const int64_t item = static_cast<int64_t>(sizeof(T));
    const int64_t stride_c = source.strides(0) / item, stride_y = source.strides(1) / item, stride_x = source.strides(2) / item;
    const T* values = static_cast<const T*>(source.data());
    std::vector<StoredRow> rows(height);
    {
        py::gil_scoped_release release;
        parallel_for(height, threads, [&](int64_t y) {
            rows[y] = row(values + y * stride_y, channels, width, stride_c, stride_x, target + y * width * channels);
        });
    }
    StoredRow total;
    for (const StoredRow& one : rows) {
        total.nan += one.nan;
        total.largest = std::max(total.largest, one.largest);
    }
    return py::make_tuple(total.nan, total.largest);
}

// descriptors (C, H, W) of float32, float64 or uint8, any strides (NCHW, channels last, a view) into
// out (H, W, C) uint8 as the mex reads them; returns how many values were NaN (stored as 0) and the
// largest of the others.
py::tuple stored_hwc(const py::array& source, const py::array& out, int threads) {
    if (source.ndim() != 3) throw py::value_error("source must be (C, H, W), got shape " + shape_text(source));
    for (py::ssize_t dim = 0; dim < 3; ++dim) {
        if (source.strides(dim) % source.itemsize() != 0) throw py::value_error("source's strides must be whole items");
    }
    uint8_t* target = array_data<uint8_t>(out, "out", 3, true);
    check_shape(out, "out", {source.shape(1), source.shape(2), source.shape(0)});
    const char kind = source.dtype().kind();
    if (kind == 'f' && source.itemsize() == 4) return stored_as<float>(source, target, stored_row_float, threads);
    if (kind == 'f' && source.itemsize() == 8) return stored_as<double>(source, target, stored_row_double, threads);
    if (kind == 'u' && source.itemsize() == 1) return stored_as<uint8_t>(source, target, stored_row_uint8, threads);
    throw py::type_error("source must be float32, float64 or uint8, got " + std::string(py::str(source.dtype())));
}

}  // namespace

void register_descriptor(py::module_& m) {
    m.def("stored_hwc", &stored_hwc, py::arg("source"), py::arg("out"), py::arg("threads"),
          "Descriptors (C, H, W) of float32, float64 or uint8, any strides, into out (H, W, C) uint8 as the mex "
          "reads them (truncated, clamped to 0..255, NaN as 0); returns (the number of NaN values, the largest value).");
    m.def("write_cells", &write_cells, py::arg("maps"), py::arg("sources"), py::arg("inv_norm"), py::arg("out"),
          py::arg("channel"), py::arg("threads"),
          "out[y, x, channel + cell * bins + b] = uint8(clamp(maps[m][b, y + top, x + left] * inv_norm[y, x] * 255)), "
          "(m, top, left) = sources[cell]; maps (bins, H, W) and inv_norm (h, w) of one float dtype, out (h, w, D) "
          "uint8.");
}

}  // namespace siftflow
