// The PGD step on CUDA: pgd_step, and pgd_step_ when out is x_adv.
//
// Projected gradient descent (Madry et al., ICLR 2018), FGSM-based fast AT's
// sign/projection/clamp (Wong et al., ICLR 2020). The per-element formula (step_value) lives
// in common/step_formula.h, shared with the CPU kernels and with pgd_step_with_mask.cu.
//
// One grid-stride loop; every reference rounding is reproduced (DNum<T>::round) and the build
// disables FMA contraction, so float32 results equal eager torch's.
#include "common/step_formula.h"
#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace fastadv {
namespace {

// x_adv and out may alias (the in-place step), so neither is __restrict.
template <class T, bool kSign>
__global__ void step_kernel(const T* x_adv, const T* __restrict__ grad, const T* __restrict__ x,
                            T* out, int64_t n, float alpha, float eps) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = DNum<T>::store(step_value<DNum<T>, kSign>(
        DNum<T>::load(x_adv[i]), DNum<T>::load(grad[i]), DNum<T>::load(x[i]), alpha, eps));
  }
}

}  // namespace

const char* cuda_pgd_step(int dtype, int64_t n, uintptr_t x_adv, uintptr_t grad, uintptr_t x,
                          uintptr_t out, double alpha, double eps, bool sign, uintptr_t stream) {
  if (n <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = sign ? step_kernel<T, true> : step_kernel<T, false>;
    kernel<<<grid_for(n), kThreads, 0, s>>>(
        reinterpret_cast<const T*>(x_adv), reinterpret_cast<const T*>(grad),
        reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), n, static_cast<float>(alpha),
        static_cast<float>(eps));
  });
}

}  // namespace fastadv
