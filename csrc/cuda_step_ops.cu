// Fused elementwise perturbation updates on CUDA.
//
// PGD step (Madry et al., ICLR 2018), FGSM-based fast AT's sign/projection/clamp (Wong et
// al., ICLR 2020), Fast-BAT's lower-level step and box-constraint mask (Zhang et al., ICML
// 2022). The per-element formulas live in step_formula.h, shared with the CPU kernels;
// masked_scale is out = g * mask * scale.
//
// One grid-stride loop per op; every reference rounding is reproduced (DNum<T>::round) and
// the build disables FMA contraction, so float32 results equal eager torch's.
#include "cuda_common.cuh"
#include "cuda_ops.h"
#include "step_formula.h"

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
