// Fast-BAT's lower-level step fused with its box-constraint mask H_C, on CUDA (Zhang et al.,
// ICML 2022). The per-element formulas (step_value, inside_box) live in
// common/step_formula.h, shared with the CPU kernels and with pgd_step.cu; H_C is evaluated on
// the value actually stored.
//
// One grid-stride loop; every reference rounding is reproduced (DNum<T>::round) and the build
// disables FMA contraction, so float32 results equal eager torch's.
#include "common/step_formula.h"
#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace fastadv {
namespace {

// x_adv and out may alias, so neither is __restrict.
template <class T, bool kSign>
__global__ void step_mask_kernel(const T* x_adv, const T* __restrict__ grad,
                                 const T* __restrict__ x, T* out, bool* __restrict__ mask,
                                 int64_t n, float alpha, float eps, float tol) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x0 = DNum<T>::load(x[i]);
    const float y = step_value<DNum<T>, kSign>(DNum<T>::load(x_adv[i]),
                                               DNum<T>::load(grad[i]), x0, alpha, eps);
    out[i] = DNum<T>::store(y);
    mask[i] = inside_box<DNum<T>>(y, x0, eps, tol);
  }
}

}  // namespace

const char* cuda_pgd_step_with_mask(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad,
                                    uintptr_t x, uintptr_t out, uintptr_t mask_out, double alpha,
                                    double eps, bool sign, double tol, uintptr_t stream) {
  if (n <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = sign ? step_mask_kernel<T, true> : step_mask_kernel<T, false>;
    kernel<<<grid_for(n), kThreads, 0, s>>>(
        reinterpret_cast<const T*>(x_adv), reinterpret_cast<const T*>(grad),
        reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), reinterpret_cast<bool*>(mask_out),
        n, static_cast<float>(alpha), static_cast<float>(eps), static_cast<float>(tol));
  });
}

}  // namespace fastadv
