// The per-element formulas of the step ops, shared by the CPU and CUDA kernels.
//
// Reference (fastadv/ops/reference.py):
//   s     = sign(grad) if sign else grad                    (sign(0) = sign(NaN) = 0)
//   y     = x_adv + alpha * s                               (alpha * s rounded, then the sum)
//   y     = min(max(y, x - eps), x + eps);  x_new = min(max(y, 0), 1)
//   d     = x_new - x;  lo = max(-eps, -x);  hi = min(eps, 1 - x)
//   H_C   = (d > lo + tol) & (d < hi - tol)    (Fast-BAT's box-constraint mask, Zhang et al.,
//                                               ICML 2022)
// R is the storage type's rounding policy (Num<T> on CPU, DNum<T> on CUDA): R::round rounds a
// float to the storage dtype wherever the reference's separate torch ops round.
#pragma once

#include "common/host_device.h"

namespace fastadv {

// max/min written so a NaN in `v` propagates (torch.maximum/clamp propagate NaN).
FASTADV_HD float max_nan(float v, float bound) { return v < bound ? bound : v; }
FASTADV_HD float min_nan(float v, float bound) { return v > bound ? bound : v; }
// torch.sign: -1, 0 or 1, and 0 for NaN.
FASTADV_HD float sign_of(float v) {
  return static_cast<float>(v > 0.0f) - static_cast<float>(v < 0.0f);
}

template <class R, bool kSign>
FASTADV_HD float step_value(float xa, float g, float x0, float alpha, float eps) {
  const float s = kSign ? sign_of(g) : g;
  const float t = R::round(alpha * s);
  float y = R::round(xa + t);
  const float lo = R::round(x0 - eps), hi = R::round(x0 + eps);
  y = min_nan(max_nan(y, lo), hi);
  return min_nan(max_nan(y, 0.0f), 1.0f);
}

template <class R>
FASTADV_HD bool inside_box(float x_new, float x0, float eps, float tol) {
  const float d = R::round(x_new - x0);
  const float lo = R::round(max_nan(-x0, -eps));
  const float hi = R::round(min_nan(R::round(1.0f - x0), eps));
  return (d > R::round(lo + tol)) & (d < R::round(hi - tol));
}

}  // namespace fastadv
