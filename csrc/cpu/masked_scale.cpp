// Masked scaling out = g * mask * scale on CPU (C++/OpenMP): Fast-BAT's implicit-gradient
// vector v = H_C ⊙ g / lambda (Zhang et al., ICML 2022).
//
// The product is taken in the reference's order, (g * mask) * scale, so g = inf/NaN under a
// False mask gives NaN and -g * 0 gives -0, as in torch; scale is a multiplied scalar, kept in
// float (cpu/common.h, added_scalar), so results are bitwise equal to eager torch on CPU.
#include "cpu/common.h"
#include "cpu/ops.h"

namespace fastadv {
namespace {

struct ScaleArgs {
  const void* g;
  const uint8_t* mask;
  void* out;
  float scale;
};

template <class T>
FASTADV_INLINE void masked_scale_range(const ScaleArgs& a, int64_t begin, int64_t end) {
  const T* __restrict g = static_cast<const T*>(a.g);
  const uint8_t* __restrict mask = a.mask;
  T* __restrict out = static_cast<T*>(a.out);
  const float scale = a.scale;
  for (int64_t i = begin; i < end; ++i) {
    const float gm = Num<T>::load(g[i]) * static_cast<float>(mask[i]);
    out[i] = Num<T>::store(gm * scale);
  }
}

FASTADV_CLONES void masked_scale_f32(const ScaleArgs& a, int64_t b, int64_t e) { masked_scale_range<float>(a, b, e); }
FASTADV_CLONES void masked_scale_f16(const ScaleArgs& a, int64_t b, int64_t e) { masked_scale_range<half_t>(a, b, e); }

}  // namespace

void cpu_masked_scale(int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out,
                      double scale, int threads) {
  const ScaleArgs a{reinterpret_cast<const void*>(g), reinterpret_cast<const uint8_t*>(mask),
                    reinterpret_cast<void*>(out), static_cast<float>(scale)};
  auto kernel = dtype == kFloat16 ? masked_scale_f16 : masked_scale_f32;
  parallel_ranges(n, threads, kElementwiseMinPerThread,
                  [&](int64_t b, int64_t e) { kernel(a, b, e); });
}

}  // namespace fastadv
