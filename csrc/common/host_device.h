// FASTADV_HD marks a function compiled for both the C++/OpenMP module (plain inline) and the
// CUDA module (__host__ __device__), so the two share one definition of each formula.
#pragma once

#if defined(__CUDACC__)
#define FASTADV_HD __host__ __device__ __forceinline__
#else
#define FASTADV_HD inline __attribute__((always_inline))
#endif
