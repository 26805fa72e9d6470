// Counter-based random numbers for the random-start kernels (CPU and CUDA share this file).
//
// Each element draws from a hash of (seed, element index) instead of a sequential stream, so
// the result depends only on the seed, never on the number of threads, the block size or the
// order in which elements are visited, and the CPU and CUDA kernels produce the same uniform
// draws for the same seed. The hash is the SplitMix64 finaliser (Steele, Lea and Flood,
// "Fast splittable pseudorandom number generators", OOPSLA 2014) applied to
// key(seed) + (index + 1) * golden_gamma, which is SplitMix64's own output sequence for the
// stream keyed by the (pre-mixed) seed.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace fastadv {

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

FASTADV_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Mixing the seed first keeps streams of nearby seeds (s, s + 1, ...) unrelated.
FASTADV_HD uint64_t stream_key(uint64_t seed) { return mix64(seed ^ 0x6a09e667f3bcc909ull); }

FASTADV_HD uint64_t draw64(uint64_t key, uint64_t index) {
  return mix64(key + (index + 1) * kGoldenGamma);
}

// U(-1, 1) from the top 24 bits k of one draw: (2k + 1 - 2^24) / 2^24. The numerator is an odd
// integer below 2^24 in magnitude, so the value is exact in float, never +-1, and the set of
// values is symmetric about 0 (mean exactly 0).
FASTADV_HD float symmetric_uniform(uint64_t r) {
  const int32_t k = static_cast<int32_t>(r >> 40);
  return static_cast<float>(2 * k + 1 - (1 << 24)) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller (one of the pair) from one 64-bit draw: u1 = (k1 + 1) / 2^24
// in (0, 1] from the top 24 bits (so log(u1) is finite), u2 = k2 / 2^24 from the low 24 bits.
FASTADV_HD float box_muller(uint64_t r) {
  const float u1 = static_cast<float>((r >> 40) + 1) * (1.0f / 16777216.0f);
  const float u2 = static_cast<float>(r & 0xffffffu) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

}  // namespace fastadv
