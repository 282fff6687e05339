// MATLAB's image functions where the DocUNet metrics spend their time (siftflow_nn/matlab/): each
// gives the bytes (for ssim_mean, the values) of its torch twin, which stays the portable reference:
// the same products summed in the same order, and taps that are multiples of 2^-bits applied in
// integers, where every float64 sum is exact. Blocks of output rows run in parallel, each keeping its
// filtered input rows in a ring (one pass over memory instead of one per tap).
#include <cmath>

#include "resample.h"

namespace siftflow {
namespace {

constexpr int ROWS_PER_BLOCK = 64;

SIFTFLOW_INLINE int clamp_index(int index, int length) { return std::min(std::max(index, 0), length - 1); }

// The sum over rows first_row..last_row - 1 of MATLAB's SSIM map of two float64 (H, W) images: every
// local statistic filtered with the separable taps (replicated borders, along x then y, taps summed
// in order), then (2 mu_x mu_y + c1) (2 cov + c2) / ((mu_x^2 + mu_y^2 + c1) (var_x + var_y + c2)).
SIFTFLOW_CLONES double ssim_block(const double* image1, const double* image2, int height, int width,
                                  const double* taps, int count, double c1, double c2, int first, int last) {
    const int radius = count / 2, padded_width = width + 2 * radius;
    std::vector<double> padded(5 * static_cast<size_t>(padded_width));  // x, y, x^2, y^2, x y of a row
    std::vector<double> ring(static_cast<size_t>(count) * 5 * width);   // the last `count` rows along x
    std::vector<double> column(5 * static_cast<size_t>(width));
    double total = 0.0;
    for (int r = first - radius; r < last + radius; ++r) {
        const size_t source = static_cast<size_t>(clamp_index(r, height)) * width;
        for (int i = 0; i < padded_width; ++i) {
            const double a = image1[source + clamp_index(i - radius, width)];
            const double b = image2[source + clamp_index(i - radius, width)];
            padded[i] = a;
            padded[padded_width + i] = b;
            padded[2 * padded_width + i] = a * a;
            padded[3 * padded_width + i] = b * b;
            padded[4 * padded_width + i] = a * b;
        }
        double* row = ring.data() + static_cast<size_t>((r - first + radius) % count) * 5 * width;
        for (int q = 0; q < 5; ++q) {
            double* SIFTFLOW_RESTRICT target = row + static_cast<size_t>(q) * width;
            const double* SIFTFLOW_RESTRICT values = padded.data() + static_cast<size_t>(q) * padded_width;
            for (int i = 0; i < width; ++i) target[i] = taps[0] * values[i];
            for (int t = 1; t < count; ++t) {
                for (int i = 0; i < width; ++i) target[i] = target[i] + taps[t] * values[i + t];
            }
        }
        const int y = r - radius;  // the output row whose last input row this is
        if (y < first) continue;
        for (int q = 0; q < 5; ++q) {
            double* SIFTFLOW_RESTRICT target = column.data() + static_cast<size_t>(q) * width;
            const double* above = ring.data() + (static_cast<size_t>((y - first) % count) * 5 + q) * width;
            for (int i = 0; i < width; ++i) target[i] = taps[0] * above[i];
            for (int t = 1; t < count; ++t) {
                const double* filtered = ring.data() + (static_cast<size_t>((y - first + t) % count) * 5 + q) * width;
                for (int i = 0; i < width; ++i) target[i] = target[i] + taps[t] * filtered[i];
            }
        }
        for (int i = 0; i < width; ++i) {
            const double mean_x = column[i], mean_y = column[width + i];
            const double mean_xy = mean_x * mean_y, mean_xx = mean_x * mean_x, mean_yy = mean_y * mean_y;
            const double variance_x = column[2 * width + i] - mean_xx, variance_y = column[3 * width + i] - mean_yy;
            const double covariance = column[4 * width + i] - mean_xy;
            const double numerator = (2 * mean_xy + c1) * (2 * covariance + c2);
            total += numerator / ((mean_xx + mean_yy + c1) * (variance_x + variance_y + c2));
        }
    }
    return total;
}

// MATLAB's imfilter of a uint8 (H, W) image with separable float64 taps, rows first..last - 1.
SIFTFLOW_CLONES void filter_block(const uint8_t* image, int height, int width, const double* taps, int count,
                                  int first, int last, uint8_t* out) {
    const int radius = count / 2, padded_width = width + 2 * radius;
    std::vector<double> padded(padded_width), ring(static_cast<size_t>(count) * width), column(width);
    for (int r = first - radius; r < last + radius; ++r) {
        const uint8_t* source = image + static_cast<size_t>(clamp_index(r, height)) * width;
        for (int i = 0; i < padded_width; ++i) padded[i] = source[clamp_index(i - radius, width)];
        double* SIFTFLOW_RESTRICT row = ring.data() + static_cast<size_t>((r - first + radius) % count) * width;
        for (int i = 0; i < width; ++i) row[i] = taps[0] * padded[i];
        for (int t = 1; t < count; ++t) {
            for (int i = 0; i < width; ++i) row[i] = row[i] + taps[t] * padded[i + t];
        }
        const int y = r - radius;
        if (y < first) continue;
        const double* above = ring.data() + static_cast<size_t>((y - first) % count) * width;
        for (int i = 0; i < width; ++i) column[i] = taps[0] * above[i];
        for (int t = 1; t < count; ++t) {
            const double* filtered = ring.data() + static_cast<size_t>((y - first + t) % count) * width;
            for (int i = 0; i < width; ++i) column[i] = column[i] + taps[t] * filtered[i];
        }
        uint8_t* target = out + static_cast<size_t>(y) * width;
        for (int i = 0; i < width; ++i) {
            target[i] = static_cast<uint8_t>(std::min(std::max(std::floor(column[i] + 0.5), 0.0), 255.0));
        }
    }
}

SIFTFLOW_CLONES void rows_dyadic_block(const uint8_t* image, int width, const int64_t* indices, const int32_t* taps,
                                       int count, int bits, int row, uint8_t* out) {
    std::vector<int32_t> values(width);
    dyadic_row(image, width, indices + static_cast<size_t>(row) * count, taps + static_cast<size_t>(row) * count,
               count, bits, values.data());
    for (int i = 0; i < width; ++i) out[static_cast<size_t>(row) * width + i] = static_cast<uint8_t>(values[i]);
}

SIFTFLOW_CLONES void columns_dyadic_row(const uint8_t* source, int out_width, const int64_t* indices,
                                        const int32_t* taps, int count, int bits, uint8_t* out) {
    const int32_t half = 1 << (bits - 1);
    for (int i = 0; i < out_width; ++i) {
        int32_t total = 0;
        for (int t = 0; t < count; ++t) total += taps[i * count + t] * static_cast<int32_t>(source[indices[i * count + t]]);
        out[i] = static_cast<uint8_t>(std::min(std::max((total + half) >> bits, 0), 255));
    }
}

SIFTFLOW_CLONES void rows_float_row(const double* image, int width, const int64_t* indices, const double* weights,
                                    int count, double* SIFTFLOW_RESTRICT out) {
    const double* source = image + indices[0] * width;
    for (int i = 0; i < width; ++i) out[i] = source[i] * weights[0];
    for (int t = 1; t < count; ++t) {
        source = image + indices[t] * width;
        for (int i = 0; i < width; ++i) out[i] = out[i] + source[i] * weights[t];
    }
}

SIFTFLOW_CLONES void columns_float_row(const double* source, int out_width, const int64_t* indices,
                                       const double* weights, int count, double* out) {
    for (int i = 0; i < out_width; ++i) {
        double total = source[indices[i * count]] * weights[i * count];
        for (int t = 1; t < count; ++t) total = total + source[indices[i * count + t]] * weights[i * count + t];
        out[i] = total;
    }
}

// --- entry points: (H, W) planes, C-contiguous ----------------------------------------------------------

struct Plane {
    int height, width;
};

template <class T>
Plane plane_of(const py::array& array, const char* name) {
    array_data<T>(array, name, 2);
    return {static_cast<int>(array.shape(0)), static_cast<int>(array.shape(1))};
}

void check_table(const py::array& indices, const py::array& taps, int out_length, int64_t source_length) {
    check_shape(indices, "indices", {out_length, -1});
    check_shape(taps, "taps", {indices.shape(0), indices.shape(1)});
    const int64_t* values = array_data<int64_t>(indices, "indices", 2);
    for (py::ssize_t index = 0; index < indices.size(); ++index) {
        if (values[index] < 0 || values[index] >= source_length) {
            throw py::value_error("indices holds " + std::to_string(values[index]) + ", outside 0.." +
                                  std::to_string(source_length - 1));
        }
    }
}

double ssim_mean(const py::array& image1, const py::array& image2, const py::array& taps, double c1, double c2,
                 int threads) {
    const Plane size = plane_of<double>(image1, "image1");
    check_shape(image2, "image2", {size.height, size.width});
    const double* first = array_data<double>(image1, "image1", 2);
    const double* second = array_data<double>(image2, "image2", 2);
    const double* window = array_data<double>(taps, "taps", 1);
    const int count = static_cast<int>(taps.shape(0));
    py::gil_scoped_release release;
    const int64_t blocks = ceil_div(size.height, ROWS_PER_BLOCK);
    std::vector<double> sums(blocks, 0.0);
    parallel_for(blocks, threads, [&](int64_t block) {
        const int begin = static_cast<int>(block) * ROWS_PER_BLOCK;
        sums[block] = ssim_block(first, second, size.height, size.width, window, count, c1, c2, begin,
                                 std::min(size.height, begin + ROWS_PER_BLOCK));
    });
    double total = 0.0;  // in block order: the same bits on any number of threads
    for (double value : sums) total += value;
    return total / (static_cast<double>(size.height) * size.width);
}

void filter_uint8(const py::array& image, const py::array& taps, const py::array& out, int threads) {
    const Plane size = plane_of<uint8_t>(image, "image");
    check_shape(out, "out", {size.height, size.width});
    const uint8_t* source = array_data<uint8_t>(image, "image", 2);
    uint8_t* target = array_data<uint8_t>(out, "out", 2, true);
    const double* weights = array_data<double>(taps, "taps", 1);
    const int count = static_cast<int>(taps.shape(0));
    py::gil_scoped_release release;
    parallel_for(ceil_div(size.height, ROWS_PER_BLOCK), threads, [&](int64_t block) {
        const int begin = static_cast<int>(block) * ROWS_PER_BLOCK;
        filter_block(source, size.height, size.width, weights, count, begin,
                     std::min(size.height, begin + ROWS_PER_BLOCK), target);
    });
}

void rows_dyadic_uint8(const py::array& image, const py::array& indices, const py::array& taps, int bits,
                       const py::array& out, int threads) {
    const Plane size = plane_of<uint8_t>(image, "image");
    const Plane result = plane_of<uint8_t>(out, "out");
    check_shape(out, "out", {-1, size.width});
    check_table(indices, taps, result.height, size.height);
    const uint8_t* source = array_data<uint8_t>(image, "image", 2);
    uint8_t* target = array_data<uint8_t>(out, "out", 2, true);
    const int64_t* rows = array_data<int64_t>(indices, "indices", 2);
    const int32_t* weights = array_data<int32_t>(taps, "taps", 2);
    const int count = static_cast<int>(indices.shape(1));
    py::gil_scoped_release release;
    parallel_for(result.height, threads, [&](int64_t row) {
        rows_dyadic_block(source, size.width, rows, weights, count, bits, static_cast<int>(row), target);
    });
}

void columns_dyadic_uint8(const py::array& image, const py::array& indices, const py::array& taps, int bits,
                          const py::array& out, int threads) {
    const Plane size = plane_of<uint8_t>(image, "image");
    const Plane result = plane_of<uint8_t>(out, "out");
    check_shape(out, "out", {size.height, -1});
    check_table(indices, taps, result.width, size.width);
    const uint8_t* source = array_data<uint8_t>(image, "image", 2);
    uint8_t* target = array_data<uint8_t>(out, "out", 2, true);
    const int64_t* columns = array_data<int64_t>(indices, "indices", 2);
    const int32_t* weights = array_data<int32_t>(taps, "taps", 2);
    const int count = static_cast<int>(indices.shape(1));
    py::gil_scoped_release release;
    parallel_for(size.height, threads, [&](int64_t row) {
        columns_dyadic_row(source + row * size.width, result.width, columns, weights, count, bits,
                           target + row * result.width);
    });
}

void rows_float(const py::array& image, const py::array& indices, const py::array& weights, const py::array& out,
                int threads) {
    const Plane size = plane_of<double>(image, "image");
    const Plane result = plane_of<double>(out, "out");
    check_shape(out, "out", {-1, size.width});
    check_table(indices, weights, result.height, size.height);
    const double* source = array_data<double>(image, "image", 2);
    double* target = array_data<double>(out, "out", 2, true);
    const int64_t* rows = array_data<int64_t>(indices, "indices", 2);
    const double* taps = array_data<double>(weights, "weights", 2);
    const int count = static_cast<int>(indices.shape(1));
    py::gil_scoped_release release;
    parallel_for(result.height, threads, [&](int64_t row) {
        rows_float_row(source, size.width, rows + row * count, taps + row * count, count, target + row * size.width);
    });
}

void columns_float(const py::array& image, const py::array& indices, const py::array& weights, const py::array& out,
                   int threads) {
    const Plane size = plane_of<double>(image, "image");
    const Plane result = plane_of<double>(out, "out");
    check_shape(out, "out", {size.height, -1});
    check_table(indices, weights, result.width, size.width);
    const double* source = array_data<double>(image, "image", 2);
    double* target = array_data<double>(out, "out", 2, true);
    const int64_t* columns = array_data<int64_t>(indices, "indices", 2);
    const double* taps = array_data<double>(weights, "weights", 2);
    const int count = static_cast<int>(indices.shape(1));
    py::gil_scoped_release release;
    parallel_for(size.height, threads, [&](int64_t row) {
        columns_float_row(source + row * size.width, result.width, columns, taps, count, target + row * result.width);
    });
}

}  // namespace

void register_matlab(py::module_& m) {
    m.def("ssim_mean", &ssim_mean, py::arg("image1"), py::arg("image2"), py::arg("taps"), py::arg("c1"), py::arg("c2"),
          py::arg("threads"), "The mean of MATLAB's SSIM map of two float64 (H, W) images.");
    m.def("filter_uint8", &filter_uint8, py::arg("image"), py::arg("taps"), py::arg("out"), py::arg("threads"),
          "MATLAB's imfilter of a uint8 (H, W) image with separable float64 taps, replicated borders, into out.");
    m.def("rows_dyadic_uint8", &rows_dyadic_uint8, py::arg("image"), py::arg("indices"), py::arg("taps"),
          py::arg("bits"), py::arg("out"), py::arg("threads"),
          "out[i] = round(sum_t taps[i, t] image[indices[i, t]] / 2^bits), clamped to uint8 (whole rows).");
    m.def("columns_dyadic_uint8", &columns_dyadic_uint8, py::arg("image"), py::arg("indices"), py::arg("taps"),
          py::arg("bits"), py::arg("out"), py::arg("threads"), "rows_dyadic_uint8 along x.");
    m.def("rows_float", &rows_float, py::arg("image"), py::arg("indices"), py::arg("weights"), py::arg("out"),
          py::arg("threads"), "out[i] = sum_t weights[i, t] image[indices[i, t]] over float64 rows, taps in order.");
    m.def("columns_float", &columns_float, py::arg("image"), py::arg("indices"), py::arg("weights"), py::arg("out"),
          py::arg("threads"), "rows_float along x.");
}

}  // namespace siftflow
