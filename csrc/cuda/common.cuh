// Shared helpers for the CUDA kernels of fastadv._C_cuda.
//
// Storage types float, __half and __nv_bfloat16 are loaded to float, computed in float and
// rounded back after each operation the reference rounds (DNum<T>::round), like torch's own
// CUDA kernels that compute reduced-precision ops in float. The module is compiled with
// --fmad=false so multiplies and adds round separately, as the reference's separate ops do.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/step_formula.h"  // max_nan, min_nan, sign_of

namespace fastadv {

enum CudaDType : int { kCudaFloat32 = 0, kCudaFloat16 = 1, kCudaBFloat16 = 2 };

template <class T> struct DNum;
template <> struct DNum<float> {
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
  static __device__ __forceinline__ float round(float v) { return v; }
};
template <> struct DNum<__half> {
  static __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float round(float v) { return __half2float(__float2half_rn(v)); }
};
template <> struct DNum<__nv_bfloat16> {
  static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float round(float v) {
    return __bfloat162float(__float2bfloat16_rn(v));
  }
};


constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, capped so huge
// tensors reuse threads instead of launching millions of blocks.
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const int64_t cap = 65536;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

inline const char* launch_status() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

// Calls f.template operator()<T>() with the storage type of a dtype code.
template <class F>
const char* dispatch_dtype(int dtype, F&& f) {
  switch (dtype) {
    case kCudaFloat32: f(float{}); break;
    case kCudaFloat16: f(__half{}); break;
    case kCudaBFloat16: f(__nv_bfloat16{}); break;
    default: return "unsupported dtype code";
  }
  return launch_status();
}

}  // namespace fastadv
