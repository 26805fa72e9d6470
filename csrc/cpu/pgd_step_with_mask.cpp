// Fast-BAT's lower-level step fused with its box-constraint mask H_C, on CPU (C++/OpenMP).
//
// Zhang et al., "Revisiting and Advancing Fast Adversarial Training Through the Lens of
// Bi-Level Optimization" (ICML 2022). The per-element formulas (step_value, inside_box) live
// in common/step_formula.h, shared with the CUDA kernels and with pgd_step.cpp: the new x_adv
// is the PGD step, and H_C is evaluated on the value actually stored.
//
// Rounding as in pgd_step.cpp: bitwise equal to eager torch on CPU; eps and tol are added
// scalars, alpha a multiplied one (added_scalar in cpu/common.h).
#include "cpu/common.h"
#include "cpu/ops.h"

namespace fastadv {
namespace {

struct MaskStepArgs {
  const void* x_adv;
  const void* grad;
  const void* x;
  void* out;
  uint8_t* mask;
  float alpha, eps, tol;
  bool sign;
};

template <class T, bool kSign>
FASTADV_INLINE void step_mask_range(const MaskStepArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.grad);
  const T* __restrict x = static_cast<const T*>(a.x);
  // Not __restrict: out may alias x_adv.
  const T* xa = static_cast<const T*>(a.x_adv);
  T* out = static_cast<T*>(a.out);
  uint8_t* __restrict mask = a.mask;
  const float alpha = a.alpha, eps = added_scalar<T>(a.eps), tol = added_scalar<T>(a.tol);
  for (int64_t i = begin; i < end; ++i) {
    const float x0 = Num<T>::load(x[i]);
    const float y = step_value<Num<T>, kSign>(Num<T>::load(xa[i]), Num<T>::load(g[i]), x0, alpha, eps);
    out[i] = Num<T>::store(y);
    mask[i] = static_cast<uint8_t>(inside_box<Num<T>>(y, x0, eps, tol));
  }
}

template <class T>
FASTADV_INLINE void step_mask_dispatch(const MaskStepArgs& a, int64_t begin, int64_t end) {
  a.sign ? step_mask_range<T, true>(a, begin, end) : step_mask_range<T, false>(a, begin, end);
}

FASTADV_CLONES void step_mask_f32(const MaskStepArgs& a, int64_t b, int64_t e) { step_mask_dispatch<float>(a, b, e); }
FASTADV_CLONES void step_mask_f16(const MaskStepArgs& a, int64_t b, int64_t e) { step_mask_dispatch<half_t>(a, b, e); }

}  // namespace

void cpu_pgd_step_with_mask(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                            uintptr_t out, uintptr_t mask_out, double alpha, double eps,
                            bool sign, double tol, int threads) {
  const MaskStepArgs a{reinterpret_cast<const void*>(x_adv), reinterpret_cast<const void*>(grad),
                       reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out),
                       reinterpret_cast<uint8_t*>(mask_out), static_cast<float>(alpha),
                       static_cast<float>(eps), static_cast<float>(tol), sign};
  auto kernel = dtype == kFloat16 ? step_mask_f16 : step_mask_f32;
  parallel_ranges(n, threads, kElementwiseMinPerThread,
                  [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

}  // namespace fastadv
