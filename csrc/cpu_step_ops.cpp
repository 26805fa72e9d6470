// Fused elementwise perturbation updates on CPU (C++/OpenMP).
//
// PGD step (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
// ICLR 2018), the sign/projection/clamp of FGSM-based fast AT (Wong et al., "Fast is better
// than free", ICLR 2020), and Fast-BAT's lower-level step with its box-constraint mask
// (Zhang et al., "Revisiting and Advancing Fast Adversarial Training Through the Lens of
// Bi-Level Optimization", ICML 2022). The per-element formulas (pgd_step, H_C) live in
// step_formula.h, shared with the CUDA kernels; masked_scale is out = g * mask * scale.
//
// Every intermediate the reference rounds to the tensor dtype is rounded here too (Num<T>::
// round), so results are bitwise equal to eager torch on CPU; no FMA contraction. For float16,
// eager torch (2.13, CPU) casts the Python scalar of an add/sub to half before computing in
// float but keeps the scalar of a mul in float: eps and tol are rounded to half first
// (with_scalars_in<T>), alpha and scale are not.
#include "cpu_common.h"
#include "cpu_ops.h"

namespace fastadv {
namespace {

constexpr int64_t kMinPerThread = 1 << 15;

struct StepArgs {
  const void* x_adv;
  const void* grad;
  const void* x;
  void* out;
  uint8_t* mask;
  float alpha, eps, tol;
  bool sign;
};

template <class T>
FASTADV_INLINE StepArgs with_scalars_in(const StepArgs& a) {
  StepArgs b = a;
  b.eps = Num<T>::round(a.eps);
  b.tol = Num<T>::round(a.tol);
  return b;
}

// x_adv and out may be the same buffer (pgd_step_): each element is read before it is
// written and no other element is touched, so the aliasing is harmless; the in-place variant
// still gets its own loop so that `__restrict` is never a lie.
template <class T, bool kSign, bool kInPlace>
FASTADV_INLINE void step_range(const StepArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.grad);
  const T* __restrict x = static_cast<const T*>(a.x);
  const float alpha = a.alpha, eps = a.eps;
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
FASTADV_INLINE void step_dispatch(const StepArgs& args, int64_t begin, int64_t end) {
  const StepArgs a = with_scalars_in<T>(args);
  const bool in_place = a.out == a.x_adv;
  if (a.sign)
    in_place ? step_range<T, true, true>(a, begin, end) : step_range<T, true, false>(a, begin, end);
  else
    in_place ? step_range<T, false, true>(a, begin, end) : step_range<T, false, false>(a, begin, end);
}

FASTADV_CLONES void step_f32(const StepArgs& a, int64_t b, int64_t e) { step_dispatch<float>(a, b, e); }
FASTADV_CLONES void step_f16(const StepArgs& a, int64_t b, int64_t e) { step_dispatch<half_t>(a, b, e); }

template <class T, bool kSign>
FASTADV_INLINE void step_mask_range(const StepArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.grad);
  const T* __restrict x = static_cast<const T*>(a.x);
  // Not __restrict: out may alias x_adv.
  const T* xa = static_cast<const T*>(a.x_adv);
  T* out = static_cast<T*>(a.out);
  uint8_t* __restrict mask = a.mask;
  const float alpha = a.alpha, eps = a.eps, tol = a.tol;
  for (int64_t i = begin; i < end; ++i) {
    const float x0 = Num<T>::load(x[i]);
    const float y = step_value<Num<T>, kSign>(Num<T>::load(xa[i]), Num<T>::load(g[i]), x0, alpha, eps);
    out[i] = Num<T>::store(y);
    mask[i] = static_cast<uint8_t>(inside_box<Num<T>>(y, x0, eps, tol));
  }
}

template <class T>
FASTADV_INLINE void step_mask_dispatch(const StepArgs& args, int64_t begin, int64_t end) {
  const StepArgs a = with_scalars_in<T>(args);
  a.sign ? step_mask_range<T, true>(a, begin, end) : step_mask_range<T, false>(a, begin, end);
}

FASTADV_CLONES void step_mask_f32(const StepArgs& a, int64_t b, int64_t e) { step_mask_dispatch<float>(a, b, e); }
FASTADV_CLONES void step_mask_f16(const StepArgs& a, int64_t b, int64_t e) { step_mask_dispatch<half_t>(a, b, e); }

template <class T>
FASTADV_INLINE void masked_scale_range(const StepArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.grad);
  const uint8_t* __restrict mask = a.mask;
  T* __restrict out = static_cast<T*>(a.out);
  const float scale = a.alpha;
  for (int64_t i = begin; i < end; ++i) {
    // g * mask first (so g = inf/NaN under a False mask gives NaN, and -g * 0 = -0, as torch).
    const float gm = Num<T>::load(g[i]) * static_cast<float>(mask[i]);
    out[i] = Num<T>::store(gm * scale);
  }
}

FASTADV_CLONES void masked_scale_f32(const StepArgs& a, int64_t b, int64_t e) { masked_scale_range<float>(a, b, e); }
FASTADV_CLONES void masked_scale_f16(const StepArgs& a, int64_t b, int64_t e) { masked_scale_range<half_t>(a, b, e); }

}  // namespace

void cpu_pgd_step(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                  uintptr_t out, double alpha, double eps, bool sign, int threads) {
  const StepArgs a{reinterpret_cast<const void*>(x_adv), reinterpret_cast<const void*>(grad),
                   reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out), nullptr,
                   static_cast<float>(alpha), static_cast<float>(eps), 0.0f, sign};
  auto kernel = dtype == kFloat16 ? step_f16 : step_f32;
  parallel_ranges(n, threads, kMinPerThread, [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

void cpu_pgd_step_with_mask(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                            uintptr_t out, uintptr_t mask_out, double alpha, double eps,
                            bool sign, double tol, int threads) {
  const StepArgs a{reinterpret_cast<const void*>(x_adv), reinterpret_cast<const void*>(grad),
                   reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out),
                   reinterpret_cast<uint8_t*>(mask_out), static_cast<float>(alpha),
                   static_cast<float>(eps), static_cast<float>(tol), sign};
  auto kernel = dtype == kFloat16 ? step_mask_f16 : step_mask_f32;
  parallel_ranges(n, threads, kMinPerThread, [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

void cpu_masked_scale(int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out,
                      double scale, int threads) {
  const StepArgs a{nullptr, reinterpret_cast<const void*>(g), nullptr, reinterpret_cast<void*>(out),
                   reinterpret_cast<uint8_t*>(mask), static_cast<float>(scale), 0.0f, 0.0f, false};
  auto kernel = dtype == kFloat16 ? masked_scale_f16 : masked_scale_f32;
  parallel_ranges(n, threads, kMinPerThread, [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

}  // namespace fastadv
