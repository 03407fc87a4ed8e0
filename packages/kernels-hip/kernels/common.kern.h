// common.kern.h: helpers the kernel bodies share — 16-byte vector loads, float constants without headers, an unroll
// pragma every compiler accepts, the block-wide sum / max in a fixed order (the twins in native/twins.cpp repeat
// that order), and the float64 pieces with which the kernels round where the reference backend rounds (its RMSNorm,
// gated activation, RoPE and matmul scaling run in float64; see halo_kernel_args.h). Every .kern.h includes what it
// uses, so halo_kernels.cpp may list them in any order.
#ifndef HALO_COMMON_KERN_H
#define HALO_COMMON_KERN_H

#include "halo_exp_f64.h"
#include "halo_ff.h"
#include "halo_gpu.h"
#include "halo_kernel_args.h"

// Every kernel is written for the one block size its HALO_KERNEL line declares (halo_gpu.h has no blockDim query), and
// the host launches exactly that many threads: the per-block reductions below index the waves of a full block.
#if defined(HALO_GPU_EMU)
#define HALO_UNROLL
#else
#define HALO_UNROLL _Pragma("unroll")
#endif

/** 16 bytes loaded with one instruction (global_load_b128 / ld.global.v4.u32); the address must be 16-byte aligned. */
struct alignas(16) halo_u32x4 {
  uint32_t x, y, z, w;
};

HALO_DEVICE halo_u32x4 halo_load_u32x4(const void* address) {
#if defined(HALO_GPU_EMU)
  halo_u32x4 value;
  std::memcpy(&value, address, sizeof value);
  return value;
#else
  return *static_cast<const halo_u32x4*>(address);
#endif
}

/** +inf, and the largest finite float (FLT_MAX), without <cmath> / <cfloat> (the HIP build has no headers). */
HALO_DEVICE float halo_inf() { return halo_bits_f32(0x7f800000u); }
HALO_DEVICE float halo_flt_max() { return halo_bits_f32(0x7f7fffffu); }
HALO_DEVICE int32_t halo_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

/** Waves in a block of `threads`. */
#define HALO_WAVES(threads) ((threads) / HALO_WAVE)

/**
 * Block-wide sum of `value` over a HALO_ROW_THREADS block: the butterfly within each wave, then waves 0…7 added in
 * order from shared memory. Every thread of the block must call it (two barriers); every thread gets the total.
 * `slots` is a [HALO_WAVES(HALO_ROW_THREADS)] shared array.
 */
HALO_DEVICE float halo_block_sum_f32(float value, float* slots) {
  value = halo_wave_sum_f32(value);
  if (halo_lane() == 0) slots[halo_wave_index()] = value;
  halo_barrier();
  float total = slots[0];
  for (unsigned w = 1; w < HALO_WAVES(HALO_ROW_THREADS); w++) total += slots[w];
  halo_barrier();  // the slots may be written again by the next reduction
  return total;
}

/** Block-wide maximum, the same shape as halo_block_sum_f32 (`other > value ? other : value` at every step). */
HALO_DEVICE float halo_block_max_f32(float value, float* slots) {
  value = halo_wave_max_f32(value);
  if (halo_lane() == 0) slots[halo_wave_index()] = value;
  halo_barrier();
  float best = slots[0];
  for (unsigned w = 1; w < HALO_WAVES(HALO_ROW_THREADS); w++) best = slots[w] > best ? slots[w] : best;
  halo_barrier();
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// float64 and exact-rounding helpers. float64 runs at 1/16–1/32 of the f32 rate on consumer GPUs (RDNA, GeForce), so
// the kernels use it per row or per output element only, never per weight.

/** Correctly rounded float64 square root (LLVM 19 expands llvm.sqrt.f64 for AMDGPU to a correctly rounded sequence). */
HALO_DEVICE double halo_sqrt_f64(double x) {
#if defined(HALO_GPU_HIP)
  return __builtin_sqrt(x);
#elif defined(HALO_GPU_CUDA)
  return __dsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

/** Lane `src`'s 64-bit `value`: its two 32-bit halves exchanged separately. Every lane of the wave must call it. */
HALO_DEVICE uint64_t halo_exchange_u64(uint64_t value, unsigned src) {
  const uint32_t lo = halo_exchange_u32(static_cast<uint32_t>(value), src);
  const uint32_t hi = halo_exchange_u32(static_cast<uint32_t>(value >> 32), src);
  return static_cast<uint64_t>(hi) << 32 | lo;
}

/** Butterfly sum over the wave in float64 (masks 16 … 1, as halo_wave_sum_f32): every lane gets the same total. */
HALO_DEVICE double halo_wave_sum_f64(double value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) value += halo_bits_f64(halo_exchange_u64(halo_f64_bits(value), halo_lane() ^ mask));
  return value;
}

/** The same over int64 (exact, so its order does not matter). */
HALO_DEVICE int64_t halo_wave_sum_i64(int64_t value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) value += static_cast<int64_t>(halo_exchange_u64(static_cast<uint64_t>(value), halo_lane() ^ mask));
  return value;
}

/** halo_block_sum_f32 in float64: the wave butterflies, then waves 0…7 added in order. `slots`: [HALO_WAVES(HALO_ROW_THREADS)]. */
HALO_DEVICE double halo_block_sum_f64(double value, double* slots) {
  value = halo_wave_sum_f64(value);
  if (halo_lane() == 0) slots[halo_wave_index()] = value;
  halo_barrier();
  double total = slots[0];
  for (unsigned w = 1; w < HALO_WAVES(HALO_ROW_THREADS); w++) total += slots[w];
  halo_barrier();  // the slots may be written again by the next reduction
  return total;
}

/** halo_wave_sum_f64's shape for the maximum (`other > value ? other : value` at every step). */
HALO_DEVICE double halo_wave_max_f64(double value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) {
    const double other = halo_bits_f64(halo_exchange_u64(halo_f64_bits(value), halo_lane() ^ mask));
    value = other > value ? other : value;
  }
  return value;
}

/** Lane `src`'s float64 `value`. Every lane of the wave must call it. */
HALO_DEVICE double halo_exchange_f64(double value, unsigned src) { return halo_bits_f64(halo_exchange_u64(halo_f64_bits(value), src)); }

/**
 * round_f32(hi + lo), the exact sum of two floats standing for a real value X with |X − (hi + lo)| ≤ 2^−44·|hi + lo|,
 * when every real within 2^−40·|hi + lo| of hi + lo rounds to the same f32 — then so do X and any float64 evaluation of X
 * within 2^−44 (the callers': two float64 roundings, 2^−52): writes it to `out` and returns true. Returns false when
 * the value is that close to a rounding boundary (about once in 2^14 random values), or 0, subnormal, beyond 2^±100
 * (where the callers' error bounds need not hold), inf or NaN: the caller then evaluates in float64. This is how the
 * norm rounds like the reference's float64 products in f32 arithmetic (float64 costs 16 f32 instructions on RDNA 3).
 */
HALO_DEVICE bool halo_round_ff(float hi, float lo, float* out) {
  const float y = hi + lo;
  const float magnitude = halo_fabsf(y);
  if (!(magnitude >= 0x1p-100f && magnitude <= 0x1p100f)) return false;
  const float rest = (hi - y) + lo;  // hi − y is exact (y is within an ulp of hi): rest ≈ (hi + lo) − y
  // Half the gap to the float below |y| (the smaller of y's two gaps): the boundary nearest y on either side.
  const float half_gap = (magnitude - halo_bits_f32(halo_f32_bits(magnitude) - 1u)) * 0.5f;
  if (halo_fabsf(rest) + magnitude * 0x1p-40f >= half_gap) return false;
  *out = y;
  return true;
}

/** inv (float64, the RMSNorm factor of a row) and its split into floats, inv = hi + lo to 2^−48; hi = NaN (the float64
 * path everywhere) outside [2^−60, 2^60]. */
struct halo_inv_split {
  double inv;
  float hi, lo;
};

HALO_DEVICE halo_inv_split halo_split_inv(double inv) {
  halo_inv_split s;
  s.inv = inv;
  s.hi = halo_bits_f32(0x7fc00000u);
  s.lo = 0.0f;
  if (inv >= 0x1p-60 && inv <= 0x1p60) {
    s.hi = static_cast<float>(inv);
    s.lo = static_cast<float>(inv - static_cast<double>(s.hi));
  }
  return s;
}

/**
 * The reference's RMSNorm output f32(float64(v) · inv · float64(weight)) (two float64 roundings, then one to f32). Fast
 * path in f32: v·hi and (v·hi)_f32·weight as exact float pairs (FMA), the lo parts folded in with one rounding each:
 * within 2^−45 of the exact v·inv·weight, rounded by halo_round_ff; a zero v is exact as is. Otherwise float64.
 */
HALO_DEVICE float halo_normed(float v, const halo_inv_split& inv, float weight) {
  if (v == 0.0f && inv.hi == inv.hi) return v * inv.hi * weight;  // ±0 (or NaN for a non-finite weight), as in float64
  const float a_hi = v * inv.hi;
  const float a_lo = halo_fmaf(v, inv.lo, halo_fmaf(v, inv.hi, -a_hi));  // v·inv − a_hi to 2^−47·|v·inv|
  const float b_hi = a_hi * weight;
  const float b_lo = halo_fmaf(a_lo, weight, halo_fmaf(a_hi, weight, -b_hi));
  float y;
  const float a = halo_fabsf(a_hi);
  if (a >= 0x1p-100f && a <= 0x1p100f && halo_round_ff(b_hi, b_lo, &y)) return y;
  return static_cast<float>(static_cast<double>(v) * inv.inv * static_cast<double>(weight));
}

/**
 * The reference's gated activation of one element (ffn-activation.ts): f32(act(gate) · up) in float64. ReLU²: g² and
 * g²·up as exact float pairs, rounded by halo_round_ff (float64 near a boundary); a zero g (every gate ≤ 0, or NaN) is
 * exact in f32. SiLU: float64 throughout, with V8's exp (halo_exp_f64.h): g / (1 + e^−g) · up.
 */
HALO_DEVICE float halo_gated(float gate, float up, int32_t mode) {
  if (mode == HALO_NORM_RELU2) {
    const float g = gate > 0.0f ? gate : 0.0f;
    const float s_hi = g * g;
    if (g == 0.0f) return s_hi * up;
    const float s_lo = halo_fmaf(g, g, -s_hi);  // g² = s_hi + s_lo exactly
    const float t_hi = s_hi * up;
    const float t_lo = halo_fmaf(s_lo, up, halo_fmaf(s_hi, up, -t_hi));
    float y;
    if (s_hi >= 0x1p-100f && s_hi <= 0x1p100f && halo_round_ff(t_hi, t_lo, &y)) return y;
    const double d = g;
    return static_cast<float>(d * d * static_cast<double>(up));
  }
  const double g = gate;
  return static_cast<float>(g / (1.0 + halo_exp_f64(-g)) * static_cast<double>(up));
}

/**
 * BitNet's per-token code of `x` at `scale`: clamp(roundHalfEven(x·scale), −128, 127) of the EXACT product, as the
 * reference rounds it (in float64, where the product of two floats is exact), without float64: p = fl(x·scale) and
 * e = fma(x, scale, −p) are the product's two exact parts (p + e = x·scale). Half-integers of magnitude < 2^23 are
 * floats, so the exact product and p, its nearest float, lie on the same side of every half-integer unless p is one:
 * then e decides (e > 0 above the tie, e < 0 below, e = 0 a true tie, which rint sends to even). NaN gives 0 (the
 * reference's Int8Array store of a NaN code is 0 too).
 */
HALO_DEVICE int32_t halo_quantize_code(float x, float scale) {
  const float p = x * scale;
  if (halo_isnan(p)) return 0;
  const float e = halo_fmaf(x, scale, -p);
  float r = halo_rintf(p);
  const float d = p - r;  // exact: |d| ≤ 0.5 and r within a factor 2 of p (or 0)
  if (d == 0.5f && e > 0.0f) r += 1.0f;
  else if (d == -0.5f && e < 0.0f) r -= 1.0f;
  return static_cast<int32_t>(r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r);
}

#endif
