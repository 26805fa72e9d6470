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
// vectorised exp, cpu/vec_math.h). Accumulation is in float whatever the storage dtype.
// Rows of up to kShortCols classes take a row-blocked path vectorised across rows (short_rows).
#include "cpu/common.h"
#include "cpu/ops.h"
#include "cpu/vec_math.h"

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

// Short rows (few classes, e.g. CIFAR-10's C = 10): per-row loops of length C leave the
// vector units idle and pay the reduction and loop overhead once per row. Instead a block of
// kLanes rows is transposed into [c][lane] scratch arrays and every step is vectorised ACROSS
// the rows, looping over c outside: per-row maxima, sums and cross terms are kLanes-wide
// arrays. Each lane sums its row in order c = 0, 1, ...; lanes never mix and padding lanes
// (past the end of the range) hold zeros, so a row's result does not depend on where its block
// starts, i.e. on the thread count. 32 lanes (two AVX-512 vectors, four AVX2 ones) beat 16 and
// 8 (more independent work per c); up to C = 64 this beats the per-row path for float32 and
// float16 (measured at 512 rows), and the scratch stays below 100 KiB of stack.
constexpr int kLanes = 32;
constexpr int64_t kShortCols = 64;

// log(x) for the softmax sums: x is in [1, C] (the max term is exp(0) = 1) or NaN, which
// vec_log alone would not propagate.
FASTADV_INLINE float sum_log(float x) { return x != x ? x : vec_log(x); }

// The scratch arrays hold storage elements as plain scalars (the bits of a half): gcc does not
// vectorise lane loops over arrays of the half_t struct ("complicated access pattern").
template <class T> struct Raw {
  using type = float;
  static FASTADV_INLINE float get(float v) { return v; }
  static FASTADV_INLINE float put(float v) { return v; }
};
template <> struct Raw<half_t> {
  using type = uint16_t;
  static FASTADV_INLINE half_t get(uint16_t v) { return {v}; }
  static FASTADV_INLINE uint16_t put(half_t v) { return v.bits; }
};

template <class T, bool kBackward>
FASTADV_INLINE void short_rows(const KlArgs& a, int64_t row_begin, int64_t row_end) {
  using R = typename Raw<T>::type;
  const int64_t cols = a.cols;
  const R* __restrict q_all = static_cast<const R*>(a.q);
  const R* __restrict p_all = static_cast<const R*>(a.p);
  constexpr int64_t kBwdCols = kBackward ? kShortCols : 1;
  // P, Q: the logits as stored; E, F: exp of the shifted logits, D: the shifted difference,
  // GQ, GP: the gradients as stored (backward only).
  alignas(64) R P[kShortCols][kLanes], Q[kShortCols][kLanes];
  alignas(64) float E[kBwdCols][kLanes], F[kBwdCols][kLanes], D[kBwdCols][kLanes];
  alignas(64) float GQ[kBwdCols][kLanes], GP[kBwdCols][kLanes];
  alignas(64) R GQR[kBwdCols * kLanes], GPR[kBwdCols * kLanes];
  alignas(64) float mp[kLanes], mq[kLanes], sp[kLanes], sq[kLanes], cross[kLanes];
  alignas(64) float kl[kLanes], log_ratio[kLanes], inv_sp[kLanes], inv_sq[kLanes], gb[kLanes];
  for (int64_t b0 = row_begin; b0 < row_end; b0 += kLanes) {
    const int n = static_cast<int>(row_end - b0 < kLanes ? row_end - b0 : kLanes);
    for (int l = 0; l < n; ++l) {
      const R* __restrict p = p_all + (b0 + l) * cols;
      const R* __restrict q = q_all + (b0 + l) * cols;
      for (int64_t c = 0; c < cols; ++c) {
        P[c][l] = p[c];
        Q[c][l] = q[c];
      }
    }
    for (int l = n; l < kLanes; ++l) {
      for (int64_t c = 0; c < cols; ++c) P[c][l] = Q[c][l] = 0;
    }
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      mp[l] = -INFINITY;
      mq[l] = -INFINITY;
      sp[l] = sq[l] = cross[l] = 0.0f;
    }
    for (int64_t c = 0; c < cols; ++c) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const float pv = Num<T>::load(Raw<T>::get(P[c][l]));
        const float qv = Num<T>::load(Raw<T>::get(Q[c][l]));
        mp[l] = pv > mp[l] ? pv : mp[l];
        mq[l] = qv > mq[l] ? qv : mq[l];
      }
    }
    for (int64_t c = 0; c < cols; ++c) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const float ps = Num<T>::load(Raw<T>::get(P[c][l])) - mp[l];
        const float qs = Num<T>::load(Raw<T>::get(Q[c][l])) - mq[l];
        const float ec = vec_exp(ps), fc = vec_exp(qs), d = ps - qs;
        sp[l] += ec;
        sq[l] += fc;
        cross[l] += ec == 0.0f ? 0.0f : ec * d;  // 0 log 0 = 0, as torch's kl_div/xlogy
        if (kBackward) {  // kept for the output pass
          E[c][l] = ec;
          F[c][l] = fc;
          D[c][l] = d;
        }
      }
    }
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float isp = 1.0f / sp[l];
      const float lr = sum_log(sp[l]) - sum_log(sq[l]);
      inv_sp[l] = isp;
      inv_sq[l] = 1.0f / sq[l];
      log_ratio[l] = lr;
      kl[l] = cross[l] * isp - lr;
    }
    if (!kBackward) {
      T* __restrict out = static_cast<T*>(a.out_a);
      for (int l = 0; l < n; ++l) out[b0 + l] = Num<T>::store(kl[l]);
      continue;
    }
    for (int l = 0; l < kLanes; ++l) gb[l] = l < n ? a.grad_rows[b0 + l] : 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) {
        const float pc = E[c][l] * inv_sp[l], qc = F[c][l] * inv_sq[l];
        GQ[c][l] = gb[l] * (qc - pc);
        const float gpc = gb[l] * pc * ((D[c][l] - log_ratio[l]) - kl[l]);
        GP[c][l] = pc == 0.0f ? 0.0f : gpc;
      }
    }
    // Rounded to the storage type in a flat loop of its own: inside the lane loop above gcc
    // fails to vectorise float_to_half (an unsupported narrowing pattern with 16 lanes).
    const float* __restrict gqf = &GQ[0][0];
    const float* __restrict gpf = &GP[0][0];
    const int64_t m = cols * kLanes;
    for (int64_t i = 0; i < m; ++i) {
      GQR[i] = Raw<T>::put(Num<T>::store(gqf[i]));
      GPR[i] = Raw<T>::put(Num<T>::store(gpf[i]));
    }
    for (int l = 0; l < n; ++l) {
      R* __restrict gq = static_cast<R*>(a.out_a) + (b0 + l) * cols;
      R* __restrict gp = static_cast<R*>(a.out_b) + (b0 + l) * cols;
      for (int64_t c = 0; c < cols; ++c) {
        gq[c] = GQR[c * kLanes + l];
        gp[c] = GPR[c * kLanes + l];
      }
    }
  }
}

// Short rows take the blocked path, long (and empty) rows the per-row one.
template <class T>
FASTADV_INLINE void kl_any(const KlArgs& a, int64_t b, int64_t e) {
  if (a.cols >= 1 && a.cols <= kShortCols) {
    short_rows<T, false>(a, b, e);
  } else {
    kl_rows<T>(a, b, e);
  }
}
template <class T>
FASTADV_INLINE void kl_any_backward(const KlArgs& a, int64_t b, int64_t e) {
  if (a.cols >= 1 && a.cols <= kShortCols) {
    short_rows<T, true>(a, b, e);
  } else {
    kl_rows_backward<T>(a, b, e);
  }
}

FASTADV_CLONES void kl_f32(const KlArgs& a, int64_t b, int64_t e) { kl_any<float>(a, b, e); }
FASTADV_CLONES void kl_f16(const KlArgs& a, int64_t b, int64_t e) { kl_any<half_t>(a, b, e); }
FASTADV_CLONES void kl_bwd_f32(const KlArgs& a, int64_t b, int64_t e) { kl_any_backward<float>(a, b, e); }
FASTADV_CLONES void kl_bwd_f16(const KlArgs& a, int64_t b, int64_t e) { kl_any_backward<half_t>(a, b, e); }

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

void cpu_kl_div_logits(int dtype, int64_t rows, int64_t cols, uintptr_t logits_q,
                       uintptr_t logits_p, uintptr_t out, int threads) {
  const KlArgs a{reinterpret_cast<const void*>(logits_q), reinterpret_cast<const void*>(logits_p),
                 nullptr, reinterpret_cast<void*>(out), nullptr, cols};
  over_rows(rows, cols, threads, a, dtype == kFloat16 ? kl_f16 : kl_f32);
}

void cpu_kl_div_logits_backward(int dtype, int64_t rows, int64_t cols,
                                uintptr_t logits_q, uintptr_t logits_p, uintptr_t grad_rows,
                                uintptr_t grad_q, uintptr_t grad_p, int threads) {
  const KlArgs a{reinterpret_cast<const void*>(logits_q), reinterpret_cast<const void*>(logits_p),
                 reinterpret_cast<const float*>(grad_rows), reinterpret_cast<void*>(grad_q),
                 reinterpret_cast<void*>(grad_p), cols};
  over_rows(rows, cols, threads, a, dtype == kFloat16 ? kl_bwd_f16 : kl_bwd_f32);
}

}  // namespace fastadv
