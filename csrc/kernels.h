// The native sampler's inner kernels on raw row-major arrays: small matrix products, the
// gated unit and inverse-CDF sampling. At batch 1 they run once per layer per sub-pixel on a
// few hundred numbers, where a library call's dispatch would cost more than the arithmetic.
//
// Plain loops (GCC/Clang vector extensions where the blocking matters) that the compiler
// vectorises. On x86-64 Linux with GCC each kernel is also compiled for x86-64-v3 (AVX2, FMA)
// and picked at load time (function multiversioning), so the library runs on any x86-64 CPU
// and uses AVX2 where there is one.
//
// Rounding: every output element of `matmul_acc` is one chain of multiply-adds over k in
// order, whatever the blocking, so an image's values do not depend on the other images in
// its block, nor on how its columns are split between threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PIXELCNN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PIXELCNN_MULTIVERSION
#endif
#if defined(__GNUC__)
#define PIXELCNN_INLINE inline __attribute__((always_inline))
#else
#define PIXELCNN_INLINE inline
#endif

namespace pixelcnn_native {

// 32 bytes of T (an AVX register; two SSE registers in the baseline build): GCC/Clang vector
// extensions, so that the register blocking below is what the compiler emits.
template <typename T> struct Simd {
  typedef T V __attribute__((vector_size(32)));
  static constexpr int width = 32 / sizeof(T);
};

// out[m, :NV*width] += x[m, :K] @ w[:K, :NV*width] for MR rows, MR * NV accumulators held in
// registers across k (the loops are unrolled so that the arrays become registers).
template <typename T, int MR, int NV>
PIXELCNN_INLINE void tile(int64_t K, const T* x, int64_t ldx, const T* w, int64_t ldw, T* out,
                          int64_t ldo) {
  using V = typename Simd<T>::V;
  constexpr int width = Simd<T>::width;
  V acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) std::memcpy(&acc[r][v], out + r * ldo + v * width, sizeof(V));
  for (int64_t k = 0; k < K; ++k) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      V wk;
      std::memcpy(&wk, w + k * ldw + v * width, sizeof(V));
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) acc[r][v] += x[r * ldx + k] * wk;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) std::memcpy(out + r * ldo + v * width, &acc[r][v], sizeof(V));
}

// The same for the last columns (fewer than a vector), one row at a time.
template <typename T>
PIXELCNN_INLINE void tile_edge(int64_t K, int64_t nr, const T* x, const T* w, int64_t ldw,
                               T* out) {
  for (int64_t n = 0; n < nr; ++n) {
    T acc = out[n];
    for (int64_t k = 0; k < K; ++k) acc += x[k] * w[k * ldw + n];
    out[n] = acc;
  }
}

// out[M, N] += x[M, K] @ w[K, N], row-major with leading dimensions ldx, ldw, ldo. Column
// panels of NV vectors, rows MR at a time so that each loaded weight serves MR rows; at batch
// 1 (M = 1) wider panels keep more independent accumulators in flight.
template <typename T, int MR, int NV>
PIXELCNN_INLINE void panels(int64_t M, int64_t& n, int64_t N, int64_t K, const T* x,
                            int64_t ldx, const T* w, int64_t ldw, T* out, int64_t ldo) {
  constexpr int64_t cols = NV * Simd<T>::width;
  for (; n + cols <= N; n += cols) {
    int64_t m = 0;
    for (; m + MR <= M; m += MR)
      tile<T, MR, NV>(K, x + m * ldx, ldx, w + n, ldw, out + m * ldo + n, ldo);
    for (; m < M; ++m) tile<T, 1, NV>(K, x + m * ldx, ldx, w + n, ldw, out + m * ldo + n, ldo);
  }
}

template <typename T>
PIXELCNN_MULTIVERSION void matmul_acc(int64_t M, int64_t N, int64_t K, const T* x, int64_t ldx,
                                      const T* w, int64_t ldw, T* out, int64_t ldo) {
  int64_t n = 0;
  if (M == 1) panels<T, 1, 8>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  panels<T, 4, 2>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  panels<T, 4, 1>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  for (int64_t m = 0; m < M; ++m)
    tile_edge(K, N - n, x + m * ldx, w + n, ldw, out + m * ldo + n);
}

constexpr double kInvFactorial[] = {1., 1., 1. / 2, 1. / 6, 1. / 24, 1. / 120, 1. / 720,
                                     1. / 5040, 1. / 40320, 1. / 362880, 1. / 3628800,
                                     1. / 39916800, 1. / 479001600, 1. / 6227020800.};

template <typename T> struct Bits;
template <> struct Bits<float> { using U = uint32_t; static constexpr int mantissa = 23, bias = 127; };
template <> struct Bits<double> { using U = uint64_t; static constexpr int mantissa = 52, bias = 1023; };

// exp(x) to about an ulp, in operations that vectorise (std::exp does not): x = n ln2 + r,
// |r| <= ln2 / 2, exp(r) by its Taylor polynomial, 2^n written into the exponent bits.
template <typename T>
PIXELCNN_INLINE T exp_(T x) {
  using U = typename Bits<T>::U;
  constexpr bool dbl = std::is_same_v<T, double>;
  constexpr int degree = dbl ? 13 : 7;  // truncation error < 2^-53 (double), < 2^-24 (float)
  const T lo = dbl ? -708 : -87, hi = dbl ? 709 : 88;  // 2^n stays a normal number
  const T shifter = T(1.5) * T(U(1) << Bits<T>::mantissa);  // x + shifter rounds x to an integer
  const T ln2_hi = dbl ? T(6.93147180369123816490e-01) : T(0.693359375);
  const T ln2_lo = dbl ? T(1.90821492927058770002e-10) : T(-2.12194440e-4);
  x = x < lo ? lo : (x > hi ? hi : x);
  const T y = x * T(1.44269504088896340736) + shifter;
  const T n = y - shifter;
  const T r = (x - n * ln2_hi) - n * ln2_lo;
  T poly = T(kInvFactorial[degree]);
#pragma GCC unroll 16
  for (int d = degree - 1; d >= 0; --d) poly = poly * r + T(kInvFactorial[d]);
  U ybits, sbits;
  std::memcpy(&ybits, &y, sizeof(T));
  std::memcpy(&sbits, &shifter, sizeof(T));
  const U scale_bits = (ybits - sbits + U(Bits<T>::bias)) << Bits<T>::mantissa;  // 2^n
  T scale;
  std::memcpy(&scale, &scale_bits, sizeof(T));
  return poly * scale;
}

// The gated unit: out[n] = tanh(f[n]) * sigmoid(g[n]), n < N, to about an ulp of 1 (tanh as
// 2 sigmoid(2f) - 1: absolute, not relative, precision near 0, like the products it feeds).
template <typename T>
PIXELCNN_MULTIVERSION void gate(int64_t N, const T* f, const T* g, T* out) {
  for (int64_t n = 0; n < N; ++n) {
    const T t = T(2) / (T(1) + exp_(T(-2) * f[n])) - T(1);
    out[n] = t / (T(1) + exp_(-g[n]));
  }
}

// #{v : cdf(v) < u} (at most levels - 1) under softmax(logits * inv_temperature), the cdf a
// running sum of the probabilities, as pixelcnn.sampling.common.inverse_cdf. probs: scratch
// [levels].
template <typename T>
PIXELCNN_MULTIVERSION int64_t inverse_cdf(int64_t levels, const T* logits, T inv_temperature,
                                          T u, T* probs) {
  T top = -std::numeric_limits<T>::infinity();
  for (int64_t v = 0; v < levels; ++v) top = std::max(top, logits[v] * inv_temperature);
  T sum = 0;
  for (int64_t v = 0; v < levels; ++v) {
    probs[v] = exp_(logits[v] * inv_temperature - top);
    sum += probs[v];
  }
  const T scale = T(1) / sum;
  T cdf = 0;
  int64_t v = 0;
  for (; v < levels - 1; ++v) {
    cdf += probs[v] * scale;
    if (!(cdf < u)) break;
  }
  return v;
}

}  // namespace pixelcnn_native
