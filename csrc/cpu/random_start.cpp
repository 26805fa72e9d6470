// Random start of a perturbation with in-kernel RNG, on CPU (C++/OpenMP).
//
// Uniform start in the eps-ball (Wong et al., "Fast is better than free", ICLR 2020) or a
// small Gaussian start (Backward Smoothing: Chen et al., "Efficient Robust Training via
// Backward Smoothing", AAAI 2022). Reference formula (fastadv/ops/reference.py):
//
//   out = x + U(-eps, eps)          (kind "uniform")
//   out = x + scale * N(0, 1)       (kind "normal")
//   out = min(max(out, 0), 1)       (if clamp)
//
// The noise of element i is a pure function of (seed, i) (counter_rng.h), so results are
// reproducible for a seed whatever the thread count. They are not the torch RNG stream. The
// uniform draws equal the CUDA kernel's; Gaussian ones agree with it to ~1e-6 (vectorised
// log/cos here, libm there).
#include "common/counter_rng.h"
#include "cpu/common.h"
#include "cpu/ops.h"
#include "cpu/vec_math.h"

namespace fastadv {
namespace {

constexpr int64_t kMinPerThread = 1 << 14;

struct StartArgs {
  const void* x;
  void* out;
  uint64_t key;
  float amplitude;  // eps for uniform, scale for normal
  bool clamp;
};

template <class T, bool kNormal>
FASTADV_INLINE void start_range(const StartArgs& a, int64_t begin, int64_t end) {
  const T* __restrict x = static_cast<const T*>(a.x);
  T* __restrict out = static_cast<T*>(a.out);
  const float amp = a.amplitude;
  const uint64_t key = a.key;
  const bool clamp = a.clamp;
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t r = draw64(key, static_cast<uint64_t>(i));
    const float noise = kNormal ? vec_box_muller(r) : symmetric_uniform(r);
    float y = Num<T>::load(x[i]) + amp * noise;
    if (clamp) y = min_nan(max_nan(y, 0.0f), 1.0f);
    out[i] = Num<T>::store(y);
  }
}

template <class T>
FASTADV_INLINE void start_dispatch(const StartArgs& a, int64_t b, int64_t e, bool normal) {
  normal ? start_range<T, true>(a, b, e) : start_range<T, false>(a, b, e);
}

FASTADV_CLONES void start_f32(const StartArgs& a, int64_t b, int64_t e, bool normal) {
  start_dispatch<float>(a, b, e, normal);
}
FASTADV_CLONES void start_f16(const StartArgs& a, int64_t b, int64_t e, bool normal) {
  start_dispatch<half_t>(a, b, e, normal);
}

}  // namespace

void cpu_random_start(int dtype, int64_t n, uintptr_t x, uintptr_t out, uint64_t seed, int kind,
                      double eps, double scale, bool clamp, int threads) {
  const bool normal = kind == 1;
  const StartArgs a{reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out),
                    stream_key(seed), static_cast<float>(normal ? scale : eps), clamp};
  auto kernel = dtype == kFloat16 ? start_f16 : start_f32;
  parallel_ranges(n, threads, kMinPerThread, [&](int64_t b, int64_t e) { kernel(a, b, e, normal); });
}

}  // namespace fastadv
