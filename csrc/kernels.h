// The native sampler's inner kernels on raw row-major arrays: small matrix products, the
// gated unit and inverse-CDF sampling. At batch 1 they run once per layer per sub-pixel on a
// few hundred numbers, where a library call's dispatch would cost more than the arithmetic.
//
// Plain loops that the compiler vectorises, with GCC/Clang vector extensions where the
// register blocking matters. Each kernel is compiled twice: for the x86-64 / ARM baseline with
// 16-byte vectors, and on x86-64 also for AVX2 + FMA with 32-byte vectors; `best_kernels`
// picks a set at run time, so the library runs on any CPU and uses AVX2 where there is one.
//
// Rounding: every output element of `matmul_acc` is one chain of multiply-adds over k in
// order, whatever the blocking, so an image's values do not depend on the other images in
// its block, nor on how its columns are split between threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__GNUC__)
#define PIXELCNN_INLINE inline __attribute__((always_inline))
#else
#define PIXELCNN_INLINE inline
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PIXELCNN_AVX2 1
#endif

namespace pixelcnn_native {

// A vector of Bytes bytes of T.
template <typename T, int Bytes> struct Simd {
  typedef T V __attribute__((vector_size(Bytes)));
  static constexpr int width = Bytes / sizeof(T);
};

// out[m, :NV*width] += x[m, :K] @ w[:K, :NV*width] for MR rows, MR * NV accumulators held in
// registers across k (the loops are unrolled so that the arrays become registers).
template <typename T, int Bytes, int MR, int NV>
PIXELCNN_INLINE void tile(int64_t K, const T* x, int64_t ldx, const T* w, int64_t ldw, T* out,
                          int64_t ldo) {
  using V = typename Simd<T, Bytes>::V;
  constexpr int width = Simd<T, Bytes>::width;
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

// Column panels of NV vectors from column n on, rows MR at a time so that each loaded weight
// serves MR rows, k in short blocks whose slice of the panel stays in the L1 cache while the
// rows pass (weight rows a power-of-two-rich stride apart share few cache sets).
template <typename T, int Bytes, int MR, int NV>
PIXELCNN_INLINE void panels(int64_t M, int64_t& n, int64_t N, int64_t K, const T* x,
                            int64_t ldx, const T* w, int64_t ldw, T* out, int64_t ldo) {
  constexpr int64_t cols = NV * Simd<T, Bytes>::width, kblock = 32;
  for (; n + cols <= N; n += cols) {
    for (int64_t k = 0; k < K; k += kblock) {
      const int64_t kb = std::min(kblock, K - k);
      const T* wb = w + k * ldw + n;
      int64_t m = 0;
      for (; m + MR <= M; m += MR)
        tile<T, Bytes, MR, NV>(kb, x + m * ldx + k, ldx, wb, ldw, out + m * ldo + n, ldo);
      for (; m < M; ++m)
        tile<T, Bytes, 1, NV>(kb, x + m * ldx + k, ldx, wb, ldw, out + m * ldo + n, ldo);
    }
  }
}

// out[M, N] += x[M, K] @ w[K, N], row-major with leading dimensions ldx, ldw, ldo. At batch 1
// (M = 1) wider panels keep more independent accumulators in flight; the last columns (less
// than a vector) one at a time.
template <typename T, int Bytes>
PIXELCNN_INLINE void matmul_acc(int64_t M, int64_t N, int64_t K, const T* x, int64_t ldx,
                                const T* w, int64_t ldw, T* out, int64_t ldo) {
  int64_t n = 0;
  if (M == 1) panels<T, Bytes, 1, 8>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  panels<T, Bytes, 4, 2>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  panels<T, Bytes, 4, 1>(M, n, N, K, x, ldx, w, ldw, out, ldo);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = n; c < N; ++c) {
      T acc = out[m * ldo + c];
      for (int64_t k = 0; k < K; ++k) acc += x[m * ldx + k] * w[k * ldw + c];
      out[m * ldo + c] = acc;
    }
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
PIXELCNN_INLINE void gate(int64_t N, const T* f, const T* g, T* out) {
  for (int64_t n = 0; n < N; ++n) {
    const T t = T(2) / (T(1) + exp_(T(-2) * f[n])) - T(1);
    out[n] = t / (T(1) + exp_(-g[n]));
  }
}

// #{v : cdf(v) < u} (at most levels - 1) under softmax(logits * inv_temperature), the cdf a
// running sum of the probabilities, as pixelcnn.sampling.common.inverse_cdf. probs: scratch
// [levels].
template <typename T>
PIXELCNN_INLINE int64_t inverse_cdf(int64_t levels, const T* logits, T inv_temperature, T u,
                                    T* probs) {
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

// One compiled set of the kernels.
template <typename T>
struct Kernels {
  void (*matmul_acc)(int64_t M, int64_t N, int64_t K, const T* x, int64_t ldx, const T* w,
                     int64_t ldw, T* out, int64_t ldo);
  void (*gate)(int64_t N, const T* f, const T* g, T* out);
  int64_t (*inverse_cdf)(int64_t levels, const T* logits, T inv_temperature, T u, T* probs);
};

// kernels_ISA<T>: the kernels compiled with the function attribute TARGET and vectors of
// BYTES bytes.
#define PIXELCNN_KERNEL_SET(ISA, TARGET, BYTES)                                              \
  template <typename T>                                                                      \
  TARGET void matmul_acc_##ISA(int64_t M, int64_t N, int64_t K, const T* x, int64_t ldx,     \
                               const T* w, int64_t ldw, T* out, int64_t ldo) {               \
    matmul_acc<T, BYTES>(M, N, K, x, ldx, w, ldw, out, ldo);                                 \
  }                                                                                          \
  template <typename T>                                                                      \
  TARGET void gate_##ISA(int64_t N, const T* f, const T* g, T* out) { gate(N, f, g, out); }  \
  template <typename T>                                                                      \
  TARGET int64_t inverse_cdf_##ISA(int64_t levels, const T* logits, T inv_temperature, T u,  \
                                   T* probs) {                                               \
    return inverse_cdf(levels, logits, inv_temperature, u, probs);                           \
  }                                                                                          \
  template <typename T>                                                                      \
  constexpr Kernels<T> kernels_##ISA{matmul_acc_##ISA<T>, gate_##ISA<T>, inverse_cdf_##ISA<T>};

PIXELCNN_KERNEL_SET(baseline, , 16)
#ifdef PIXELCNN_AVX2
PIXELCNN_KERNEL_SET(avx2, __attribute__((target("avx2,fma"))), 32)
#endif

// The fastest set this CPU runs, or the baseline set if $PIXELCNN_NATIVE_KERNELS is
// "baseline" (to test it on any machine).
template <typename T>
Kernels<T> best_kernels() {
  const char* forced = std::getenv("PIXELCNN_NATIVE_KERNELS");
  if (forced && std::strcmp(forced, "baseline") == 0) return kernels_baseline<T>;
#ifdef PIXELCNN_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernels_avx2<T>;
#endif
  return kernels_baseline<T>;
}

}  // namespace pixelcnn_native
