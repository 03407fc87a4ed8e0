// halo_ff.h: the FMA and float-float ("double-single") arithmetic the kernels use where the reference computes in
// float64 over long loops (attention): a value is hi + lo in two floats, ~48 significant bits, in f32 instructions only.
// Built for every target from this one source (HIP without device libraries, CUDA, plain C++ for the emulator and the
// twins, which include it to repeat the kernels' operations exactly). Contraction is off everywhere: only the explicit
// FMAs here fuse.
#ifndef HALO_FF_H
#define HALO_FF_H

#include "halo_exp_f64.h"  // HALO_F64_FN

#if !(defined(__HIP__) && defined(__AMDGCN__)) && !defined(__CUDACC__)
#include <cmath>
#endif

/** a·b + c rounded once (the hardware FMA). */
HALO_F64_FN float halo_fmaf(float a, float b, float c) {
#if defined(__HIP__) && defined(__AMDGCN__)
  return __builtin_fmaf(a, b, c);
#elif defined(__CUDACC__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

HALO_F64_FN double halo_fma_f64(double a, double b, double c) {
#if defined(__HIP__) && defined(__AMDGCN__)
  return __builtin_fma(a, b, c);
#elif defined(__CUDACC__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

/**
 * Float-float ("double-single") accumulation for the long loops where float64 would cost too much (attention): a value
 * is hi + lo with |lo| ≤ ulp(hi)/2, about 48 significant bits, in f32 instructions only (an FMA gives a product's
 * rounding error, two_sum an addition's). An accumulation of n products keeps an absolute error of about
 * n · 2^−48 · Σ|products|: against the reference's float64 loops, f32 results round alike but about once in 2^16.
 */
struct halo_ff {
  float hi, lo;
};

/** a + b as an exact float pair (Knuth's TwoSum: six additions, no condition on the magnitudes). */
HALO_F64_FN halo_ff halo_two_sum(float a, float b) {
  const float s = a + b;
  const float bb = s - a;
  halo_ff r;
  r.hi = s;
  r.lo = (a - (s - bb)) + (b - bb);
  return r;
}

/** acc + (a_hi + a_lo)·b: the product of a_hi·b exact by an FMA, a_lo·b folded into its error, then renormalised. */
HALO_F64_FN halo_ff halo_ff_mac(halo_ff acc, float a_hi, float a_lo, float b) {
  const float p = a_hi * b;
  const float p_err = halo_fmaf(a_lo, b, halo_fmaf(a_hi, b, -p));
  const halo_ff s = halo_two_sum(acc.hi, p);
  const float lo = s.lo + (acc.lo + p_err);
  halo_ff r;
  r.hi = s.hi + lo;  // FastTwoSum (|s.hi| ≥ |lo| but under cancellation, where its error stays ~2^−48 of the terms)
  r.lo = lo - (r.hi - s.hi);
  return r;
}

/** acc · (a_hi + a_lo) for a factor 0 ≤ a ≤ 1 (a softmax rescale): a_hi·acc.hi exact, the cross terms folded in. */
HALO_F64_FN halo_ff halo_ff_scale(halo_ff acc, float a_hi, float a_lo) {
  const float p = acc.hi * a_hi;
  const float lo = halo_fmaf(acc.hi, a_lo, halo_fmaf(acc.lo, a_hi, halo_fmaf(acc.hi, a_hi, -p)));
  halo_ff r;
  r.hi = p + lo;
  r.lo = lo - (r.hi - p);
  return r;
}

/** A float64 as a float pair (hi = f32(x), lo = f32(x − hi)): 48 of its bits. */
HALO_F64_FN halo_ff halo_ff_of(double x) {
  halo_ff r;
  r.hi = static_cast<float>(x);
  r.lo = static_cast<float>(x - static_cast<double>(r.hi));
  return r;
}

#endif
