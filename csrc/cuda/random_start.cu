// Random start with in-kernel RNG on CUDA (Wong et al., ICLR 2020: uniform in the eps-ball;
// TRADES / Backward Smoothing: small Gaussian). Reference (fastadv/ops/reference.py):
//
//   out = x + U(-eps, eps)  or  x + scale * N(0, 1);   out = min(max(out, 0), 1) if clamp
//
// Element i draws from counter_rng.h's hash of (seed, i), the same generator as the CPU
// kernel: reproducible for a seed, independent of the launch configuration.
#include "common/counter_rng.h"
#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace fastadv {
namespace {

template <class T, bool kNormal>
__global__ void start_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t n,
                             uint64_t key, float amplitude, bool clamp) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = draw64(key, static_cast<uint64_t>(i));
    const float noise = kNormal ? box_muller(r) : symmetric_uniform(r);
    float y = DNum<T>::load(x[i]) + amplitude * noise;
    if (clamp) y = min_nan(max_nan(y, 0.0f), 1.0f);
    out[i] = DNum<T>::store(y);
  }
}

}  // namespace

const char* cuda_random_start(int dtype, int64_t n, uintptr_t x, uintptr_t out, uint64_t seed,
                              int kind, double eps, double scale, bool clamp, uintptr_t stream) {
  if (n <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const bool normal = kind == 1;
  const float amplitude = static_cast<float>(normal ? scale : eps);
  const uint64_t key = stream_key(seed);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = normal ? start_kernel<T, true> : start_kernel<T, false>;
    kernel<<<grid_for(n), kThreads, 0, s>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out),
                                            n, key, amplitude, clamp);
  });
}

}  // namespace fastadv
