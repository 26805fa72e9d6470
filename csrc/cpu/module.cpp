// pybind11 bindings of the C++/OpenMP kernels: the module fastadv._C.
//
// Functions take data_ptr() integers, element counts and scalars (no torch headers, see
// DESIGN.md "Build"); fastadv/ops/_compiled.py checks tensors and allocates outputs.
// The GIL is released while a kernel runs so other Python threads (data loading) can proceed.
#include <pybind11/pybind11.h>

#include "cpu/common.h"
#include "cpu/ops.h"

namespace py = pybind11;
using namespace fastadv;

namespace {

py::dict build_info() {
  py::dict info;
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["max_threads"] = max_threads();
  info["float16"] = "bit conversion (csrc/cpu/common.h)";
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11 && \
    defined(__linux__)
  info["target_clones"] = "arch=x86-64-v4,arch=x86-64-v3,default";
#else
  info["target_clones"] = "";
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastadv C++/OpenMP kernels on raw pointers (see fastadv/ops/_compiled.py)";
  m.attr("FLOAT32") = static_cast<int>(kFloat32);
  m.attr("FLOAT16") = static_cast<int>(kFloat16);
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("pgd_step", &cpu_pgd_step, nogil, py::arg("dtype"), py::arg("n"), py::arg("x_adv"),
        py::arg("grad"), py::arg("x"), py::arg("out"), py::arg("alpha"), py::arg("eps"),
        py::arg("sign"), py::arg("threads"));
  m.def("pgd_step_with_mask", &cpu_pgd_step_with_mask, nogil, py::arg("dtype"), py::arg("n"),
        py::arg("x_adv"), py::arg("grad"), py::arg("x"), py::arg("out"), py::arg("mask_out"),
        py::arg("alpha"), py::arg("eps"), py::arg("sign"), py::arg("tol"), py::arg("threads"));
  m.def("masked_scale", &cpu_masked_scale, nogil, py::arg("dtype"), py::arg("n"), py::arg("g"),
        py::arg("mask"), py::arg("out"), py::arg("scale"), py::arg("threads"));
  m.def("random_start", &cpu_random_start, nogil, py::arg("dtype"), py::arg("n"), py::arg("x"),
        py::arg("out"), py::arg("seed"), py::arg("kind"), py::arg("eps"), py::arg("scale"),
        py::arg("clamp"), py::arg("threads"));
  m.def("kl_div_logits", &cpu_kl_div_logits, nogil, py::arg("dtype"), py::arg("rows"),
        py::arg("cols"), py::arg("logits_q"), py::arg("logits_p"), py::arg("out"),
        py::arg("threads"));
  m.def("kl_div_logits_backward", &cpu_kl_div_logits_backward, nogil, py::arg("dtype"),
        py::arg("rows"), py::arg("cols"), py::arg("logits_q"), py::arg("logits_p"),
        py::arg("grad_rows"), py::arg("grad_q"), py::arg("grad_p"), py::arg("threads"));
  m.def("build_info", &build_info, "How this module was compiled (OpenMP, half type, clones).");
}
