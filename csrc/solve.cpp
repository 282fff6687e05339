// One pyramid level of SIFT Flow: the original's ComputeDataTerm, ComputeRangeTerm and
// MessagePassing with its in-level hierarchy, and the Python entry points of the matcher.
#include <cmath>

#include "bp.h"

namespace siftflow {
namespace {

constexpr int HIERARCHY_ITERATIONS = 20;  // iterations of every coarser copy of the field, as the original
enum class Record { every = 0, last = 1, none = 2 };

Smoothness smoothness_of(double alpha, double d, int count) {
    Smoothness out;
    out.s = static_cast<int32_t>(std::floor(alpha));
    out.d = static_cast<int32_t>(std::floor(d));
    out.exact_s = alpha;
    out.exact_d = d;
    for (int label = 0; label < count; ++label) out.far.push_back(static_cast<int32_t>(label * alpha));
    return out;
}

// `hierarchy` coarser copies of the field run first, from the coarsest, 20 iterations each, each
// seeding the next finer one's messages; then `iterations` on the field itself. Returns the labels
// (2, H, W) after the last iteration, and the energies asked for.
struct Solution {
    std::vector<int32_t> labels;  // (2, H, W)
    std::vector<double> energies;
};

Solution solve_field(Field finest, double alpha, double d, int iterations, int hierarchy, Record record, int threads) {
    const int count = finest.count;
    const Smoothness smoothness = smoothness_of(alpha, d, count);
    std::vector<Field> fields;
    fields.push_back(std::move(finest));
    for (int depth = 1; depth <= hierarchy; ++depth) {
        fields.push_back(coarser(fields.back(), threads));
        fields.back().gamma = fields.front().gamma / std::pow(2.0, depth);
    }
    Buffer<int32_t> spatial, dual;
    const BandGrid* previous = nullptr;
    std::vector<double> energies;
    Buffer<int32_t> labels;
    for (int depth = hierarchy; depth >= 0; --depth) {
        Field& field = fields[depth];
        const BandGrid& grid = field.grid;
        if (previous == nullptr) {
            spatial = Buffer<int32_t>(2 * grid.size(4 * count));
            dual = Buffer<int32_t>(2 * grid.size(count));
        } else {  // the coarser copy's messages, each copied to its 2 x 2 block
            spatial = finer(spatial, *previous, grid, 4 * count, threads);
            dual = finer(dual, *previous, grid, count, threads);
        }
        const Buffer<int32_t> range = range_costs(field, threads);
        const Buffer<int32_t> offsets = to_bands(field.offsets.data(), 2, grid, 1);
        std::vector<int64_t> unary(grid.bands, 0);
        SweepTerms terms{&grid, count, spatial.data(), dual.data(), range.data(), offsets.data(), field.data.data(),
                         &smoothness, nullptr, false, sweep_sums_unary(count) ? unary.data() : nullptr};
        if (depth > 0) {  // the original also labels and scores the coarser copies; nothing depends on that
            for (int iteration = 0; iteration < HIERARCHY_ITERATIONS; ++iteration) sweep(terms, iteration, threads);
            previous = &field.grid;
            continue;
        }
        labels = Buffer<int32_t>(2 * grid.size(1));
        for (int iteration = 0; iteration < iterations; ++iteration) {
            const bool last = iteration == iterations - 1;
            // labels only where an energy is asked for: the sweeps' messages do not depend on them
            terms.labels = record == Record::every || last ? labels.data() : nullptr;
            terms.fresh = record != Record::every;  // then labels does not hold the previous iteration's labels
            std::fill(unary.begin(), unary.end(), 0);
            sweep(terms, iteration, threads);
            if (record == Record::every || (last && record == Record::last)) {
                energies.push_back(energy(terms, unary, threads));
            }
        }
    }
    const BandGrid& grid = fields[0].grid;
    Solution solution{std::vector<int32_t>(2 * static_cast<size_t>(grid.height) * grid.width), std::move(energies)};
    from_bands(labels.data(), 2, grid, 1, solution.labels.data());
    return solution;
}

// The labels as (2, H, W) int32 and the energies as float64, built with the GIL held.
py::tuple to_python(const Solution& solution, int height, int width) {
    auto labels = new_array<int32_t>({2, height, width});
    std::copy(solution.labels.begin(), solution.labels.end(), labels.mutable_data());
    py::array_t<double> energies(static_cast<py::ssize_t>(solution.energies.size()));
    std::copy(solution.energies.begin(), solution.energies.end(), energies.mutable_data());
    return py::make_tuple(labels, energies);
}

int checked_window(int window) {
    if (window < 1 || 2 * window + 1 > MAX_LABELS) {
        throw py::value_error("window must be from 1 to " + std::to_string((MAX_LABELS - 1) / 2) + ", got " +
                              std::to_string(window));
    }
    return window;
}

Record checked_record(const std::string& energies) {
    if (energies == "every") return Record::every;
    if (energies == "last") return Record::last;
    if (energies == "none") return Record::none;
    throw py::value_error("energies must be 'every', 'last' or 'none', got '" + energies + "'");
}

const int32_t* checked_offsets(const py::array& offsets, int height, int width) {
    const int32_t* data = array_data<int32_t>(offsets, "offsets", 3);
    check_shape(offsets, "offsets", {2, height, width});
    return data;
}

// A level from its two uint8 descriptor images.
py::tuple solve_level(const py::array& sift1, const py::array& sift2, const py::array& offsets, int window,
                      double alpha, double d, double gamma, int iterations, int hierarchy,
                      const std::string& energies, int threads) {
    const uint8_t* first = array_data<uint8_t>(sift1, "sift1", 3);
    const uint8_t* second = array_data<uint8_t>(sift2, "sift2", 3);
    check_shape(sift2, "sift2", {sift1.shape(0), sift1.shape(1), sift1.shape(2)});
    const int height = static_cast<int>(sift1.shape(0)), width = static_cast<int>(sift1.shape(1));
    const int channels = static_cast<int>(sift1.shape(2));
    Field field;
    field.grid = BandGrid(height, width);
    field.count = 2 * checked_window(window) + 1;
    field.gamma = gamma;
    const int32_t* centres = checked_offsets(offsets, height, width);
    field.offsets.assign(centres, centres + 2 * static_cast<size_t>(height) * width);
    const Record record = checked_record(energies);
    Solution solution;
    {
        py::gil_scoped_release release;
        field.data = data_term(first, second, height, width, channels, centres, window, threads);
        solution = solve_field(std::move(field), alpha, d, iterations, hierarchy, record, threads);
    }
    return to_python(solution, height, width);
}

// A level from a data term given as (H, W, L * L) int32 (for tests against the original's sweeps).
py::tuple solve_data(const py::array& data, const py::array& offsets, int window, double alpha, double d,
                     double gamma, int iterations, int hierarchy, const std::string& energies, int threads) {
    const int32_t* costs = array_data<int32_t>(data, "data", 3);
    const int count = 2 * checked_window(window) + 1;
    check_shape(data, "data", {-1, -1, count * count});
    const int height = static_cast<int>(data.shape(0)), width = static_cast<int>(data.shape(1));
    Field field;
    field.grid = BandGrid(height, width);
    field.count = count;
    field.gamma = gamma;
    const int32_t* centres = checked_offsets(offsets, height, width);
    field.offsets.assign(centres, centres + 2 * static_cast<size_t>(height) * width);
    field.data = to_bands(costs, 1, field.grid, count * count);
    const Record record = checked_record(energies);
    Solution solution;
    {
        py::gil_scoped_release release;
        solution = solve_field(std::move(field), alpha, d, iterations, hierarchy, record, threads);
    }
    return to_python(solution, height, width);
}

// The data term as (H, W, L * L) int32, default scores filled in (for tests).
py::array_t<int32_t> data_term_image(const py::array& sift1, const py::array& sift2, const py::array& offsets,
                                     int window, int threads) {
    const uint8_t* first = array_data<uint8_t>(sift1, "sift1", 3);
    const uint8_t* second = array_data<uint8_t>(sift2, "sift2", 3);
    check_shape(sift2, "sift2", {sift1.shape(0), sift1.shape(1), sift1.shape(2)});
    const int height = static_cast<int>(sift1.shape(0)), width = static_cast<int>(sift1.shape(1));
    const int cells = (2 * checked_window(window) + 1) * (2 * window + 1);
    const int32_t* centres = checked_offsets(offsets, height, width);
    const Buffer<int32_t> banded = data_term(first, second, height, width, static_cast<int>(sift1.shape(2)), centres,
                                             window, threads);
    auto out = new_array<int32_t>({height, width, cells});
    from_bands(banded.data(), 1, BandGrid(height, width), cells, out.mutable_data());
    return out;
}

// generateCoarserLevel on an (H, W, R) data term and (2, H, W) offsets (for tests).
py::tuple coarser_image(const py::array& data, const py::array& offsets) {
    const int32_t* costs = array_data<int32_t>(data, "data", 3);
    const int height = static_cast<int>(data.shape(0)), width = static_cast<int>(data.shape(1));
    const int rest = static_cast<int>(data.shape(2));
    Field field;
    field.grid = BandGrid(height, width);
    field.count = static_cast<int>(std::lround(std::sqrt(rest)));
    if (field.count * field.count != rest) throw py::value_error("data's last dimension must be a square, L * L");
    const int32_t* centres = checked_offsets(offsets, height, width);
    field.offsets.assign(centres, centres + 2 * static_cast<size_t>(height) * width);
    field.data = to_bands(costs, 1, field.grid, rest);
    const Field coarse = coarser(field, 1);
    auto out = new_array<int32_t>({coarse.grid.height, coarse.grid.width, rest});
    from_bands(coarse.data.data(), 1, coarse.grid, rest, out.mutable_data());
    auto coarse_offsets = new_array<int32_t>({2, coarse.grid.height, coarse.grid.width});
    std::copy(coarse.offsets.begin(), coarse.offsets.end(), coarse_offsets.mutable_data());
    return py::make_tuple(out, coarse_offsets);
}

}  // namespace

void register_matcher(py::module_& m) {
    m.def("solve_level", &solve_level, py::arg("sift1"), py::arg("sift2"), py::arg("offsets"), py::arg("window"),
          py::arg("alpha"), py::arg("d"), py::arg("gamma"), py::arg("iterations"), py::arg("hierarchy"),
          py::arg("energies"), py::arg("threads"),
          "One level of SIFT flow on (H, W, D) uint8 descriptors around (2, H, W) int32 window centres: "
          "(labels (2, H, W) int32, energies float64).");
    m.def("solve_data", &solve_data, py::arg("data"), py::arg("offsets"), py::arg("window"), py::arg("alpha"),
          py::arg("d"), py::arg("gamma"), py::arg("iterations"), py::arg("hierarchy"), py::arg("energies"),
          py::arg("threads"), "solve_level on a given (H, W, L * L) int32 data term.");
    m.def("data_term", &data_term_image, py::arg("sift1"), py::arg("sift2"), py::arg("offsets"), py::arg("window"),
          py::arg("threads"), "The original's data term, (H, W, L * L) int32 indexed [b * L + a].");
    m.def("coarser", &coarser_image, py::arg("data"), py::arg("offsets"),
          "generateCoarserLevel on an (H, W, L * L) int32 data term and (2, H, W) offsets.");
}

}  // namespace siftflow
