// Entry points of the C++/OpenMP kernels (fastadv._C). Pointers are raw data_ptr() values of
// dense tensors that share one memory layout; `n` is the element count, `dtype` a DType code,
// `threads` the OpenMP team size to use at most (torch.get_num_threads() from Python).
// Each op is defined in csrc/cpu/<op>.cpp and bound in csrc/cpu/module.cpp.
#pragma once

#include <cstdint>

namespace fastadv {

void cpu_pgd_step(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                  uintptr_t out, double alpha, double eps, bool sign, int threads);

void cpu_pgd_step_with_mask(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                            uintptr_t out, uintptr_t mask_out, double alpha, double eps,
                            bool sign, double tol, int threads);

void cpu_masked_scale(int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out,
                      double scale, int threads);

// kind: 0 = uniform in [-eps, eps], 1 = scale * N(0, 1).
void cpu_random_start(int dtype, int64_t n, uintptr_t x, uintptr_t out, uint64_t seed, int kind,
                      double eps, double scale, bool clamp, int threads);

void cpu_kl_div_logits(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                       uintptr_t logits_p, uintptr_t out, int threads);

// grad_rows is float32 whatever dtype the logits have.
void cpu_kl_div_logits_backward(int dtype, int64_t rows, int64_t cols,
                                uintptr_t logits_q, uintptr_t logits_p, uintptr_t grad_rows,
                                uintptr_t grad_q, uintptr_t grad_p, int threads);

}  // namespace fastadv
