// siftflow_nn._kernels: the compiled CPU kernels, built with the package (setup.py). Every kernel
// takes the number of threads it may use (the Python side passes torch.get_num_threads()) and
// releases the GIL while it runs.
#include "common.h"
#include "dispatch.h"

namespace siftflow {
void register_matcher(py::module_& m);
void register_pyramid(py::module_& m);
void register_matlab(py::module_& m);
void register_descriptor(py::module_& m);
}  // namespace siftflow

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "siftflow_nn's compiled CPU kernels: SIFT flow's belief propagation, its descriptor pyramids, "
              "MATLAB's image functions of the DocUNet metrics, and the uint8 descriptor writer.";
    siftflow::register_matcher(m);
    siftflow::register_pyramid(m);
    siftflow::register_matlab(m);
    siftflow::register_descriptor(m);
    m.def("isa", &siftflow::isa_name,
          "The instruction set the hand-vectorised kernels run with: avx512, avx2 or baseline (the CPU's best, "
          "or SIFTFLOW_NN_ISA's where that is one the CPU has).");
    m.def("use_isa", &siftflow::use_isa, py::arg("name"),
          "Run the hand-vectorised kernels with another instruction set the CPU has, from the next call on "
          "(for tests: every build gives the same bits); returns the one before. ValueError for a set the CPU "
          "lacks or an unknown name.");
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
}
