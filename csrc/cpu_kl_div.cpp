// Row-wise KL divergence between softmax distributions and its gradient, on CPU (C++/OpenMP).
//
// The perturbation loss of TRADES (Zhang et al., "Theoretically Principled Trade-off between
// Robustness and Accuracy", ICML 2019) and Backward Smoothing (Chen et al., AAAI 2022).
// Reference formulas (fastadv/ops/reference.py), per row b of [B, C] logits p (target) and q:
//
//   P = softmax(p), log P = p - lse(p), log Q = q - lse(q)
//   kl_b   = sum_c P_c (log P_c - log Q_c)
//   grad_q = g_b (Q - P)
//   grad_p = g_b P ((log P - log Q) - kl_b)
//
// Computed from max-shifted logits: with e_c = exp(p_c - max p), f_c = exp(q_c - max q),
// S_p = sum e, S_q = sum f and d_c = (p_c - max p) - (q_c - max q),
//   log P_c - log Q_c = d_c - (log S_p - log S_q),  kl_b = sum_c e_c d_c / S_p - (log S_p - log S_q),
// which is invariant to a constant shift of either row and needs one exp per logit (a
// vectorised exp, cpu_vec_math.h). Accumulation is in float whatever the storage dtype.
#include "cpu_common.h"
#include "cpu_ops.h"
#include "cpu_vec_math.h"

namespace fastadv {
namespace {

constexpr int64_t kMinElementsPerThread = 1 << 13;

struct KlArgs {
  const void* q;
  const void* p;
  const float* grad_rows;  // always float32: the upstream gradient is not rounded to T
  void* out_a;  // forward: kl per row; backward: grad_q
  void* out_b;  // backward: grad_p
  int64_t cols;
};

// Per-row statistics from max-shifted logits (see above); no stores, so the loops vectorise.
struct RowStats {
  float max_p, max_q, cross, log_ratio, inv_sp, inv_sq;
};

template <class T>
FASTADV_INLINE RowStats row_stats(const T* __restrict q, const T* __restrict p, int64_t cols) {
  float mp = -INFINITY, mq = -INFINITY;
#pragma omp simd reduction(max : mp, mq)
  for (int64_t c = 0; c < cols; ++c) {
    const float pv = Num<T>::load(p[c]), qv = Num<T>::load(q[c]);
    mp = pv > mp ? pv : mp;
    mq = qv > mq ? qv : mq;
  }
  float sp = 0.0f, sq = 0.0f, cross = 0.0f;
  // The simd reductions let gcc keep partial sums per vector lane (reassociation).
#pragma omp simd reduction(+ : sp, sq, cross)
  for (int64_t c = 0; c < cols; ++c) {
    const float ps = Num<T>::load(p[c]) - mp, qs = Num<T>::load(q[c]) - mq;
    const float ec = vec_exp(ps), fc = vec_exp(qs);
    sp += ec;
    sq += fc;
    cross += ec == 0.0f ? 0.0f : ec * (ps - qs);  // 0 log 0 = 0, as torch's kl_div/xlogy
  }
  const float inv_sp = 1.0f / sp;
  return {mp, mq, cross * inv_sp, std::log(sp) - std::log(sq), inv_sp, 1.0f / sq};
}

template <class T>
FASTADV_INLINE void kl_rows(const KlArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t cols = a.cols;
  const T* q = static_cast<const T*>(a.q);
  const T* p = static_cast<const T*>(a.p);
  T* out = static_cast<T*>(a.out_a);
  for (int64_t b = row_begin; b < row_end; ++b) {
    if (cols == 0) {  // an empty sum
      out[b] = Num<T>::store(0.0f);
      continue;
    }
    const RowStats s = row_stats<T>(q + b * cols, p + b * cols, cols);
    out[b] = Num<T>::store(s.cross - s.log_ratio);
  }
}

// Recomputes the exponentials in the output pass instead of keeping them in scratch memory:
// exp is cheap once vectorised, and store-free statistics loops vectorise reliably.
template <class T>
FASTADV_INLINE void kl_rows_backward(const KlArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t cols = a.cols;
  const T* q_all = static_cast<const T*>(a.q);
  const T* p_all = static_cast<const T*>(a.p);
  const float* g = a.grad_rows;
  T* gq_all = static_cast<T*>(a.out_a);
  T* gp_all = static_cast<T*>(a.out_b);
  for (int64_t b = row_begin; b < row_end; ++b) {
    const T* __restrict q = q_all + b * cols;
    const T* __restrict p = p_all + b * cols;
    const RowStats s = row_stats<T>(q, p, cols);
    const float kl = s.cross - s.log_ratio, gb = g[b];
    const float mp = s.max_p, mq = s.max_q, inv_sp = s.inv_sp, inv_sq = s.inv_sq;
    const float log_ratio = s.log_ratio;
    T* __restrict gq = gq_all + b * cols;
    T* __restrict gp = gp_all + b * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float ps = Num<T>::load(p[c]) - mp, qs = Num<T>::load(q[c]) - mq;
      const float pc = vec_exp(ps) * inv_sp, qc = vec_exp(qs) * inv_sq;
      gq[c] = Num<T>::store(gb * (qc - pc));
      const float gpc = gb * pc * (((ps - qs) - log_ratio) - kl);
      gp[c] = Num<T>::store(pc == 0.0f ? 0.0f : gpc);
    }
  }
}

FASTADV_CLONES void kl_f32(const KlArgs& a, int64_t b, int64_t e) { kl_rows<float>(a, b, e); }
FASTADV_CLONES void kl_f16(const KlArgs& a, int64_t b, int64_t e) { kl_rows<half_t>(a, b, e); }
FASTADV_CLONES void kl_bwd_f32(const KlArgs& a, int64_t b, int64_t e) { kl_rows_backward<float>(a, b, e); }
FASTADV_CLONES void kl_bwd_f16(const KlArgs& a, int64_t b, int64_t e) { kl_rows_backward<half_t>(a, b, e); }

// Rows are the unit of parallel work; threads get contiguous blocks of rows.
template <class Kernel>
void over_rows(int64_t rows, int64_t cols, int threads, const KlArgs& a, Kernel kernel) {
  if (rows <= 0) return;
  const int64_t min_rows = cols > 0 ? (kMinElementsPerThread + cols - 1) / cols : rows;
  int nt = threads < 1 ? 1 : threads;
  const int64_t want = rows / (min_rows > 0 ? min_rows : 1);
  if (want < nt) nt = want < 1 ? 1 : static_cast<int>(want);
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const int64_t k = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t begin = rows * t / k, end = rows * (t + 1) / k;
      if (begin < end) kernel(a, begin, end);
    }
    return;
  }
#endif
  kernel(a, 0, rows);
}

}  // namespace

void cpu_kl_div_rows(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                     uintptr_t logits_p, uintptr_t out, int threads) {
  const KlArgs a{reinterpret_cast<const void*>(logits_q), reinterpret_cast<const void*>(logits_p),
                 nullptr, reinterpret_cast<void*>(out), nullptr, cols};
  over_rows(rows, cols, threads, a, dtype == kFloat16 ? kl_f16 : kl_f32);
}

void cpu_kl_div_rows_backward(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                              uintptr_t logits_p, uintptr_t grad_rows, uintptr_t grad_q,
                              uintptr_t grad_p, int threads) {
  const KlArgs a{reinterpret_cast<const void*>(logits_q), reinterpret_cast<const void*>(logits_p),
                 reinterpret_cast<const float*>(grad_rows), reinterpret_cast<void*>(grad_q),
                 reinterpret_cast<void*>(grad_p), cols};
  over_rows(rows, cols, threads, a, dtype == kFloat16 ? kl_bwd_f16 : kl_bwd_f32);
}

}  // namespace fastadv
