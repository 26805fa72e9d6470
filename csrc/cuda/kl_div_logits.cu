// Row-wise KL divergence between softmax distributions and its gradient on CUDA: the
// perturbation loss of TRADES (Zhang et al., ICML 2019) and Backward Smoothing (Chen et al.,
// AAAI 2022). Reference (fastadv/ops/reference.py), per row b, P = softmax(p), Q = softmax(q):
//
//   kl_b   = sum_c P_c (log P_c - log Q_c)
//   grad_q = g_b (Q - P);   grad_p = g_b P ((log P - log Q) - kl_b)
//
// One warp per row; with e = exp(p - max p), f = exp(q - max q), d = (p - max p) - (q - max q):
// kl_b = sum e d / sum e - (log sum e - log sum f) (shift invariant), accumulated in float.
// The backward recomputes the exponentials in its output pass instead of storing them.
#include <math_constants.h>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace fastadv {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = kThreads / kWarp;

__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct RowStats {
  float max_p, max_q, kl, log_ratio, inv_sp, inv_sq;
};

template <class T>
__device__ __forceinline__ RowStats row_stats(const T* __restrict__ q, const T* __restrict__ p,
                                              int64_t cols, int lane) {
  float mp = -CUDART_INF_F, mq = -CUDART_INF_F;
  for (int64_t c = lane; c < cols; c += kWarp) {
    mp = fmaxf(mp, DNum<T>::load(p[c]));
    mq = fmaxf(mq, DNum<T>::load(q[c]));
  }
  mp = warp_max(mp);
  mq = warp_max(mq);
  float sp = 0.0f, sq = 0.0f, cross = 0.0f;
  for (int64_t c = lane; c < cols; c += kWarp) {
    const float ps = DNum<T>::load(p[c]) - mp, qs = DNum<T>::load(q[c]) - mq;
    const float e = expf(ps);
    sp += e;
    sq += expf(qs);
    cross += e == 0.0f ? 0.0f : e * (ps - qs);  // 0 log 0 = 0
  }
  sp = warp_sum(sp);
  sq = warp_sum(sq);
  cross = warp_sum(cross);
  const float log_ratio = logf(sp) - logf(sq);
  return {mp, mq, cross / sp - log_ratio, log_ratio, 1.0f / sp, 1.0f / sq};
}

template <class T>
__global__ void kl_kernel(const T* __restrict__ q, const T* __restrict__ p, T* __restrict__ out,
                          int64_t rows, int64_t cols) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;  // whole warps leave together, so the shuffles stay full-warp
  const RowStats s = row_stats<T>(q + row * cols, p + row * cols, cols, lane);
  if (lane == 0) out[row] = DNum<T>::store(cols == 0 ? 0.0f : s.kl);
}

template <class T>
__global__ void kl_backward_kernel(const T* __restrict__ q_all, const T* __restrict__ p_all,
                                   const float* __restrict__ grad_rows, T* __restrict__ gq_all,
                                   T* __restrict__ gp_all, int64_t rows, int64_t cols) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= rows) return;
  const T* q = q_all + row * cols;
  const T* p = p_all + row * cols;
  const RowStats s = row_stats<T>(q, p, cols, lane);
  const float gb = grad_rows[row];
  T* gq = gq_all + row * cols;
  T* gp = gp_all + row * cols;
  for (int64_t c = lane; c < cols; c += kWarp) {
    const float ps = DNum<T>::load(p[c]) - s.max_p, qs = DNum<T>::load(q[c]) - s.max_q;
    const float pc = expf(ps) * s.inv_sp, qc = expf(qs) * s.inv_sq;
    gq[c] = DNum<T>::store(gb * (qc - pc));
    gp[c] = DNum<T>::store(pc == 0.0f ? 0.0f : gb * pc * (((ps - qs) - s.log_ratio) - s.kl));
  }
}

unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace

const char* cuda_kl_div_logits(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                               uintptr_t logits_p, uintptr_t out, uintptr_t stream) {
  if (rows <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    kl_kernel<T><<<row_blocks(rows), kThreads, 0, s>>>(
        reinterpret_cast<const T*>(logits_q), reinterpret_cast<const T*>(logits_p),
        reinterpret_cast<T*>(out), rows, cols);
  });
}

const char* cuda_kl_div_logits_backward(int dtype, int64_t rows, int64_t cols,
                                        uintptr_t logits_q, uintptr_t logits_p,
                                        uintptr_t grad_rows, uintptr_t grad_q, uintptr_t grad_p,
                                        uintptr_t stream) {
  if (rows <= 0 || cols <= 0) return nullptr;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    kl_backward_kernel<T><<<row_blocks(rows), kThreads, 0, s>>>(
        reinterpret_cast<const T*>(logits_q), reinterpret_cast<const T*>(logits_p),
        reinterpret_cast<const float*>(grad_rows), reinterpret_cast<T*>(grad_q),
        reinterpret_cast<T*>(grad_p), rows, cols);
  });
}

}  // namespace fastadv
