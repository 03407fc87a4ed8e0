// halo_exp_f64.h: e^x in float64, bit for bit the exp of JavaScript's Math.exp in V8 (src/base/ieee754.cc, FreeBSD
// msun's e_exp.c: reduction by k·ln2 in two parts, a degree-5 rational approximation, scaling by 2^k), so the SiLU of
// the GPU kernels rounds where the reference backend's does. Built for every target from this one source, with no
// library calls (the HIP build has no device libraries): only IEEE +, −, ·, / in float64, contraction off. Included
// by common.kern.h for the kernels and by native/twins.cpp; stands alone (before or without halo_gpu.h).
#ifndef HALO_EXP_F64_H
#define HALO_EXP_F64_H

#include <stdint.h>

#if defined(__HIP__) && defined(__AMDGCN__)
#define HALO_F64_FN static __attribute__((device)) inline __attribute__((always_inline))
#elif defined(__CUDACC__)
#define HALO_F64_FN static __device__ __forceinline__
#else
#include <cstring>
#define HALO_F64_FN static inline
#endif

/** The bits of a float64, and back. */
HALO_F64_FN uint64_t halo_f64_bits(double value) {
#if defined(__HIP__) && defined(__AMDGCN__)
  return __builtin_bit_cast(uint64_t, value);
#elif defined(__CUDACC__)
  return static_cast<uint64_t>(__double_as_longlong(value));
#else
  uint64_t bits;
  std::memcpy(&bits, &value, 8);
  return bits;
#endif
}

HALO_F64_FN double halo_bits_f64(uint64_t bits) {
#if defined(__HIP__) && defined(__AMDGCN__)
  return __builtin_bit_cast(double, bits);
#elif defined(__CUDACC__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double value;
  std::memcpy(&value, &bits, 8);
  return value;
#endif
}

/**
 * V8's `exp` (ieee754::exp), statement for statement; the volatile constants it uses only to raise the inexact flag
 * are folded (no target here has flags). Error < 1 ulp; exp(1) is returned as e exactly, as V8 does.
 */
HALO_F64_FN double halo_exp_f64(double x) {
  const double one = 1.0;
  const double o_threshold = 7.09782712893383973096e+02;  // 0x40862E42 FEFA39EF
  const double u_threshold = -7.45133219101941108420e+02; // 0xC0874910 D52D3051
  const double ln2_hi = 6.93147180369123816490e-01;       // 0x3FE62E42 FEE00000
  const double ln2_lo = 1.90821492927058770002e-10;       // 0x3DEA39EF 35793C76
  const double invln2 = 1.44269504088896338700e+00;       // 0x3FF71547 652B82FE
  const double P1 = 1.66666666666666019037e-01;           // 0x3FC55555 5555553E
  const double P2 = -2.77777777770155933842e-03;          // 0xBF66C16C 16BEBD93
  const double P3 = 6.61375632143793436117e-05;           // 0x3F11566A AF25DE2C
  const double P4 = -1.65339022054652515390e-06;          // 0xBEBBBD41 C5D26BF1
  const double P5 = 4.13813679705723846039e-08;           // 0x3E663769 72BEA4D0
  const double E = 2.718281828459045;                     // 0x4005BF0A 8B145769
  const double twom1000 = 9.33263618503218878990e-302;    // 2^−1000
  const double two1023 = 8.988465674311579539e307;        // 2^1023

  const uint64_t bits = halo_f64_bits(x);
  uint32_t hx = static_cast<uint32_t>(bits >> 32);
  const int32_t xsb = static_cast<int32_t>((hx >> 31) & 1u);  // sign bit of x
  hx &= 0x7fffffffu;                                          // high word of |x|

  if (hx >= 0x40862E42u) {  // |x| ≥ 709.78…: NaN, ±inf, overflow, underflow
    if (hx >= 0x7ff00000u) {
      if (((hx & 0xfffffu) | static_cast<uint32_t>(bits)) != 0) return x + x;  // NaN
      return xsb == 0 ? x : 0.0;                                               // exp(±inf) = inf, 0
    }
    if (x > o_threshold) return halo_bits_f64(0x7ff0000000000000ull);  // huge · huge: +inf
    if (x < u_threshold) return 0.0;                                   // twom1000 · twom1000 underflows to +0
  }

  double hi = 0.0, lo = 0.0;
  int32_t k = 0;
  if (hx > 0x3FD62E42u) {    // |x| > 0.5 ln2
    if (hx < 0x3FF0A2B2u) {  // and |x| < 1.5 ln2
      if (x == 1.0) return E;
      hi = xsb == 0 ? x - ln2_hi : x + ln2_hi;
      lo = xsb == 0 ? ln2_lo : -ln2_lo;
      k = 1 - xsb - xsb;
    } else {
      k = static_cast<int32_t>(invln2 * x + (xsb == 0 ? 0.5 : -0.5));
      const double t = static_cast<double>(k);
      hi = x - t * ln2_hi;  // t·ln2_hi is exact here
      lo = t * ln2_lo;
    }
    x = hi - lo;
  } else if (hx < 0x3E300000u) {  // |x| < 2^−28
    return one + x;
  }

  const double t = x * x;
  // 2^k (2^(k+1000) below −1021) built in the exponent field; the shift is done unsigned (wraps as V8's int32 does).
  const uint32_t twopk_high = 0x3FF00000u + (static_cast<uint32_t>(k >= -1021 ? k : k + 1000) << 20);
  const double twopk = halo_bits_f64(static_cast<uint64_t>(twopk_high) << 32);
  const double c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return one - ((x * c) / (c - 2.0) - x);
  const double y = one - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) {
    if (k == 1024) return y * 2.0 * two1023;
    return y * twopk;
  }
  return y * twopk * twom1000;
}

#endif
