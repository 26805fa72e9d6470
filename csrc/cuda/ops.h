// Host entry points of the CUDA kernels (fastadv._C_cuda), free of CUDA types so the pybind11
// binding compiles with the ordinary C++ compiler. Pointers are device data_ptr() values of
// dense tensors sharing one layout, `stream` a cudaStream_t as an integer (torch's current
// stream), dtype 0 = float32, 1 = float16, 2 = bfloat16. Each returns nullptr on success or
// the CUDA error string of the launch. Each op is defined in csrc/cuda/<op>.cu and bound in
// csrc/cuda/module.cpp.
#pragma once

#include <cstdint>

namespace fastadv {

const char* cuda_pgd_step(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                          uintptr_t out, double alpha, double eps, bool sign, uintptr_t stream);

const char* cuda_pgd_step_with_mask(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad,
                                    uintptr_t x, uintptr_t out, uintptr_t mask_out, double alpha,
                                    double eps, bool sign, double tol, uintptr_t stream);

const char* cuda_masked_scale(int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out,
                              double scale, uintptr_t stream);

// kind: 0 = uniform in [-eps, eps], 1 = scale * N(0, 1). Same counter RNG as the CPU kernel.
const char* cuda_random_start(int dtype, int64_t n, uintptr_t x, uintptr_t out, uint64_t seed,
                              int kind, double eps, double scale, bool clamp, uintptr_t stream);

const char* cuda_kl_div_logits(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                               uintptr_t logits_p, uintptr_t out, uintptr_t stream);

// grad_rows is float32 whatever dtype the logits have.
const char* cuda_kl_div_logits_backward(int dtype, int64_t rows, int64_t cols,
                                        uintptr_t logits_q, uintptr_t logits_p,
                                        uintptr_t grad_rows, uintptr_t grad_q, uintptr_t grad_p,
                                        uintptr_t stream);

// "" when a CUDA device is usable by this module's runtime, else the reason (for example a
// driver older than the CUDA runtime it was built with).
const char* cuda_probe();

}  // namespace fastadv
