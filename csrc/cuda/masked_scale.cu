// Masked scaling out = g * mask * scale on CUDA: Fast-BAT's implicit-gradient vector
// v = H_C ⊙ g / lambda (Zhang et al., ICML 2022). One grid-stride loop, computed in float and
// rounded where the reference rounds.
#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace fastadv {
namespace {

template <class T>
__global__ void masked_scale_kernel(const T* __restrict__ g, const bool* __restrict__ mask,
                                    T* __restrict__ out, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // g * mask first, as the reference (inf/NaN under a False mask stay NaN, -g * 0 = -0).
    const float gm = DNum<T>::round(DNum<T>::load(g[i]) * static_cast<float>(mask[i]));
    out[i] = DNum<T>::store(gm * scale);
  }
}

}  // namespace

const char* cuda_masked_scale(int dtype, int64_t n, uintptr_t g, uintptr_t mask, uintptr_t out,
                              double scale, uintptr_t stream) {
  if (n <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    masked_scale_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
        reinterpret_cast<const T*>(g), reinterpret_cast<const bool*>(mask), reinterpret_cast<T*>(out),
        n, static_cast<float>(scale));
  });
}

}  // namespace fastadv
