// What every kernel file shares: array checks at the Python boundary, 64-byte aligned buffers,
// a parallel loop on an explicit number of threads, and the CPU dispatch of the hot kernels.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace py = pybind11;

namespace siftflow {

// The hot kernels are built for three x86-64 levels (AVX-512, AVX2 + FMA, the baseline) and the
// loader picks one per CPU (GCC's function multiversioning): a wheel runs everywhere, fast where it
// can. Elsewhere they are built once: clang, ARM (where NEON is the baseline), and GCC before 12,
// which knows no x86-64 levels to dispatch on (GCC 11, Ubuntu 22.04's: "no dispatcher found").
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && defined(__linux__)
#define SIFTFLOW_X86_LEVELS 1
#else
#define SIFTFLOW_X86_LEVELS 0
#endif
#if SIFTFLOW_X86_LEVELS
#define SIFTFLOW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIFTFLOW_CLONES
#endif

#if defined(__GNUC__)
#define SIFTFLOW_INLINE inline __attribute__((always_inline))
#define SIFTFLOW_RESTRICT __restrict__
#else
#define SIFTFLOW_INLINE inline
#define SIFTFLOW_RESTRICT
#endif

// --- arrays from Python: checked, never copied --------------------------------------------------

template <class T>
const char* dtype_name();
template <> inline const char* dtype_name<uint8_t>() { return "uint8"; }
template <> inline const char* dtype_name<int32_t>() { return "int32"; }
template <> inline const char* dtype_name<int64_t>() { return "int64"; }
template <> inline const char* dtype_name<float>() { return "float32"; }
template <> inline const char* dtype_name<double>() { return "float64"; }

inline std::string shape_text(const py::array& array) {
    std::string text = "(";
    for (py::ssize_t dim = 0; dim < array.ndim(); ++dim) {
        text += (dim ? ", " : "") + std::to_string(array.shape(dim));
    }
    return text + (array.ndim() == 1 ? ",)" : ")");
}

// A C-contiguous array of T with `ndim` dimensions, else a TypeError / ValueError naming it. The
// kernels read and write these in place: a silent converted copy would lose an output.
template <class T>
T* array_data(const py::array& array, const char* name, py::ssize_t ndim, bool writeable = false) {
    if (!py::isinstance<py::array_t<T>>(array) || array.dtype().kind() != py::dtype::of<T>().kind() ||
        array.itemsize() != static_cast<py::ssize_t>(sizeof(T))) {
        throw py::type_error(std::string(name) + " must be a " + dtype_name<T>() + " array, got " +
                             std::string(py::str(array.dtype())));
    }
    if (array.ndim() != ndim) {
        throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got shape " +
                              shape_text(array));
    }
    if (!(array.flags() & py::array::c_style)) {
        throw py::value_error(std::string(name) + " must be C-contiguous");
    }
    if (writeable && !array.writeable()) {
        throw py::value_error(std::string(name) + " must be writeable");
    }
    return static_cast<T*>(const_cast<void*>(array.data()));
}

inline void check_shape(const py::array& array, const char* name, std::initializer_list<py::ssize_t> shape) {
    py::ssize_t dim = 0;
    for (py::ssize_t expected : shape) {
        if (expected >= 0 && array.shape(dim) != expected) {
            throw py::value_error(std::string(name) + " has shape " + shape_text(array) + ": dimension " +
                                  std::to_string(dim) + " must be " + std::to_string(expected));
        }
        ++dim;
    }
}

template <class T>
py::array_t<T> new_array(std::initializer_list<py::ssize_t> shape) {
    return py::array_t<T>(std::vector<py::ssize_t>(shape));
}

// --- 64-byte aligned, zero-filled buffers (one vector of 16 int32 lanes per cache line) ---------

// Buffers of 16 MiB and more (a level's data term and messages: 20-80 MB each at 436 x 1024) are
// asked to live on 2 MiB pages where the kernel does that on request (Linux's transparent huge
// pages, "madvise" mode): zeroing them then takes tens of page faults, not tens of thousands (at
// 436 x 1024 the finest level's allocations and message copies fell from 0.08 to 0.03 s). Not
// smaller ones: rounding those up to whole 2 MiB pages added a third to a 218 x 512 match's peak.
constexpr size_t HUGE_PAGE = size_t(2) << 20, HUGE_BUFFER = size_t(16) << 20;

template <class T>
class Buffer {
  public:
    Buffer() = default;
    explicit Buffer(size_t count) : count_(count) {
        size_t bytes = ((count * sizeof(T) + 63) / 64) * 64;
        size_t alignment = 64;
#ifdef MADV_HUGEPAGE
        if (bytes >= HUGE_BUFFER) {
            alignment = HUGE_PAGE;
            bytes = ((bytes + HUGE_PAGE - 1) / HUGE_PAGE) * HUGE_PAGE;
        }
#endif
        data_ = static_cast<T*>(std::aligned_alloc(alignment, bytes ? bytes : 64));
        if (data_ == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
        if (alignment == HUGE_PAGE) madvise(data_, bytes, MADV_HUGEPAGE);  // a hint: no error matters
#endif
        std::memset(data_, 0, bytes);
    }
    Buffer(Buffer&& other) noexcept : data_(other.data_), count_(other.count_) {
        other.data_ = nullptr;
        other.count_ = 0;
    }
    Buffer& operator=(Buffer&& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(count_, other.count_);
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { std::free(data_); }
    T* data() { return data_; }
    const T* data() const { return data_; }
    size_t size() const { return count_; }
    T& operator[](size_t index) { return data_[index]; }
    const T& operator[](size_t index) const { return data_[index]; }

  private:
    T* data_ = nullptr;
    size_t count_ = 0;
};

// --- parallel loops --------------------------------------------------------------------------------

// body(i) for i in [0, count), on `threads` OpenMP threads (the caller passes torch's count, so two
// processes scoring side by side never oversubscribe the cores). Results never depend on `threads`:
// each i writes its own outputs, and reductions are summed in index order afterwards.
template <class Body>
void parallel_for(int64_t count, int threads, Body&& body) {
#ifdef _OPENMP
    if (threads > 1 && count > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int64_t index = 0; index < count; ++index) body(index);
        return;
    }
#endif
    for (int64_t index = 0; index < count; ++index) body(index);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace siftflow
