// pybind11 bindings of the CUDA kernels: the module fastadv._C_cuda.
//
// Compiled by the host C++ compiler (no CUDA headers needed); the kernels come from the
// csrc/cuda/*.cu objects that nvcc built. Arguments are device data_ptr() integers, counts,
// scalars and torch's current stream handle; fastadv/ops/_compiled.py checks tensors and
// allocates outputs. A failed launch raises RuntimeError with the CUDA error string.
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "cuda/ops.h"

namespace py = pybind11;
using namespace fastadv;

namespace {

void check(const char* error, const char* op) {
  if (error != nullptr) throw std::runtime_error(std::string("fastadv CUDA ") + op + ": " + error);
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "fastadv CUDA kernels on raw device pointers (see fastadv/ops/_compiled.py)";
  m.attr("FLOAT32") = 0;
  m.attr("FLOAT16") = 1;
  m.attr("BFLOAT16") = 2;
  const auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("pgd_step",
        [](int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x, uintptr_t out,
           double alpha, double eps, bool sign, uintptr_t stream) {
          check(cuda_pgd_step(dtype, n, x_adv, grad, x, out, alpha, eps, sign, stream), "pgd_step");
        },
        nogil, py::arg("dtype"), py::arg("n"), py::arg("x_adv"), py::arg("grad"), py::arg("x"),
        py::arg("out"), py::arg("alpha"), py::arg("eps"), py::arg("sign"), py::arg("stream"));
  m.def("pgd_step_with_mask",
        [](int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x, uintptr_t out,
           uintptr_t mask_out, double alpha, double eps, bool sign, double tol, uintptr_t stream) {
          check(cuda_pgd_step_with_mask(dtype, n, x_adv, grad, x, out, mask_out, alpha, eps, sign,
                                        tol, stream),
                "pgd_step_with_mask");
        },
        nogil, py::arg("dtype"), py::arg("n"), py::arg("x_adv"), py::arg("grad"), py::arg("x"),
        py::arg("out"), py::arg("mask_out"), py::arg("alpha"), py::arg("eps"), py::arg("sign"),
        py::arg("tol"), py::arg("stream"));
  m.def("masked_scale",
        [](int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out, double scale,
           uintptr_t stream) {
          check(cuda_masked_scale(dtype, n, g, mask, out, scale, stream), "masked_scale");
        },
        nogil, py::arg("dtype"), py::arg("n"), py::arg("g"), py::arg("mask"), py::arg("out"),
        py::arg("scale"), py::arg("stream"));
  m.def("random_start",
        [](int dtype, int64_t n, uintptr_t x, uintptr_t out, uint64_t seed, int kind, double eps,
           double scale, bool clamp, uintptr_t stream) {
          check(cuda_random_start(dtype, n, x, out, seed, kind, eps, scale, clamp, stream),
                "random_start");
        },
        nogil, py::arg("dtype"), py::arg("n"), py::arg("x"), py::arg("out"), py::arg("seed"),
        py::arg("kind"), py::arg("eps"), py::arg("scale"), py::arg("clamp"), py::arg("stream"));
  m.def("kl_div_logits",
        [](int dtype, int64_t rows, int64_t cols, uintptr_t q, uintptr_t p, uintptr_t out,
           uintptr_t stream) {
          check(cuda_kl_div_logits(dtype, rows, cols, q, p, out, stream), "kl_div_logits");
        },
        nogil, py::arg("dtype"), py::arg("rows"), py::arg("cols"), py::arg("logits_q"),
        py::arg("logits_p"), py::arg("out"), py::arg("stream"));
  m.def("kl_div_logits_backward",
        [](int dtype, int64_t rows, int64_t cols, uintptr_t q, uintptr_t p, uintptr_t grad_rows,
           uintptr_t grad_q, uintptr_t grad_p, uintptr_t stream) {
          check(cuda_kl_div_logits_backward(dtype, rows, cols, q, p, grad_rows, grad_q, grad_p,
                                            stream),
                "kl_div_logits_backward");
        },
        nogil, py::arg("dtype"), py::arg("rows"), py::arg("cols"), py::arg("logits_q"),
        py::arg("logits_p"), py::arg("grad_rows"), py::arg("grad_q"), py::arg("grad_p"),
        py::arg("stream"));
  m.def("probe", [] { return std::string(cuda_probe()); },
        "'' when this module's CUDA runtime sees a usable GPU, else the reason.");
}
