// The PGD step on CPU (C++/OpenMP): pgd_step, and pgd_step_ when out is x_adv.
//
// Projected gradient descent of Madry et al., "Towards Deep Learning Models Resistant to
// Adversarial Attacks" (ICLR 2018), the sign/projection/clamp of FGSM-based fast AT (Wong et
// al., "Fast is better than free", ICLR 2020). The per-element formula (step_value) lives in
// common/step_formula.h, shared with the CUDA kernels and with pgd_step_with_mask.cpp.
//
// Every intermediate the reference rounds to the tensor dtype is rounded here too (Num<T>::
// round), so results are bitwise equal to eager torch on CPU; no FMA contraction. eps is an
// added scalar and alpha a multiplied one (added_scalar in cpu/common.h).
#include "cpu/common.h"
#include "cpu/ops.h"

namespace fastadv {
namespace {

struct StepArgs {
  const void* x_adv;
  const void* grad;
  const void* x;
  void* out;
  float alpha, eps;
  bool sign;
};

// x_adv and out may be the same buffer (pgd_step_): each element is read before it is
// written and no other element is touched, so the aliasing is harmless; the in-place variant
// still gets its own loop so that `__restrict` is never a lie.
template <class T, bool kSign, bool kInPlace>
FASTADV_INLINE void step_range(const StepArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.grad);
  const T* __restrict x = static_cast<const T*>(a.x);
  const float alpha = a.alpha, eps = added_scalar<T>(a.eps);
  if (kInPlace) {
    T* __restrict io = static_cast<T*>(a.out);
    for (int64_t i = begin; i < end; ++i)
      io[i] = Num<T>::store(step_value<Num<T>, kSign>(Num<T>::load(io[i]), Num<T>::load(g[i]),
                                                 Num<T>::load(x[i]), alpha, eps));
  } else {
    const T* __restrict xa = static_cast<const T*>(a.x_adv);
    T* __restrict out = static_cast<T*>(a.out);
    for (int64_t i = begin; i < end; ++i)
      out[i] = Num<T>::store(step_value<Num<T>, kSign>(Num<T>::load(xa[i]), Num<T>::load(g[i]),
                                                  Num<T>::load(x[i]), alpha, eps));
  }
}

// Sign/non-sign and in-place/out-of-place are template arguments so no branch is left in the
// inner loop.
template <class T>
FASTADV_INLINE void step_dispatch(const StepArgs& a, int64_t begin, int64_t end) {
  const bool in_place = a.out == a.x_adv;
  if (a.sign)
    in_place ? step_range<T, true, true>(a, begin, end) : step_range<T, true, false>(a, begin, end);
  else
    in_place ? step_range<T, false, true>(a, begin, end) : step_range<T, false, false>(a, begin, end);
}

FASTADV_CLONES void step_f32(const StepArgs& a, int64_t b, int64_t e) { step_dispatch<float>(a, b, e); }
FASTADV_CLONES void step_f16(const StepArgs& a, int64_t b, int64_t e) { step_dispatch<half_t>(a, b, e); }

}  // namespace

void cpu_pgd_step(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                  uintptr_t out, double alpha, double eps, bool sign, int threads) {
  const StepArgs a{reinterpret_cast<const void*>(x_adv), reinterpret_cast<const void*>(grad),
                   reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out),
                   static_cast<float>(alpha), static_cast<float>(eps), sign};
  auto kernel = dtype == kFloat16 ? step_f16 : step_f32;
  parallel_ranges(n, threads, kElementwiseMinPerThread,
                  [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

}  // namespace fastadv
