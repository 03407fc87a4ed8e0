// norm_quant.kern.h: RMSNorm of one row per block (optionally of the gated FFN activation first), then BitNet's
// per-token absmax int8 quantisation with the per-64 chunk sums the matmul's offset trick needs (halo_norm_quant_args).
//
// It rounds where the reference backend rounds (packages/kernels/src/reference: ffn-activation.ts, rms-norm.ts,
// quantize.ts), because one activation code landing on the other side of a .5 changes a small model's output visibly:
//   gated activation  v = f32(act(g) · u) of the float64 product (halo_gated), written over the gate half of the row
//                     like the reference writes it over `gate`, so it is computed once
//   sum of squares    float64 (per-thread partial sums, wave butterfly, waves in order: another order than the
//                     reference's loop, but a float64 sum of ≤ 10^5 squares moves inv by ~1e-16 relative, which rounds
//                     an f32 output differently about once in 10^8 values)
//   inv               1 / sqrt(Σ/width + eps) in float64, eps as the config gives it (a float64)
//   normed            f32(float64(v) · inv · float64(weight)), the reference's order of products (halo_normed)
//   scale             f32 127 / max(absmax, floor): f32 division is the reference's float64 division rounded to f32
//   codes             the exact product normed · scale rounded half to even (halo_quantize_code)
// float64 is 1/16 of the f32 rate on RDNA 3 (1/64 on GeForce), and at decode this kernel is ONE block on one CU, so
// its float64 work is time added to every step: per element only the square (a conversion and an FMA); the normed
// product and ReLU² are computed exactly in f32 pairs and rounded in f32 unless the value is within 2^−40 of a rounding
// boundary (then float64: about once in 2^14 values; common.kern.h halo_round_ff); SiLU is float64 (exp and a
// division, ≈ 40 float64 instructions per element, once per element thanks to the write-back).
// Three passes over the row, each reading it from global memory (L2-resident: a row is ≤ a few tens of KB) instead of
// caching it in shared memory, so any width works with no dynamic shared memory and no scratch:
//   1. v (written back in the gated modes) and Σ v² → inv
//   2. normed = v · inv · weight; absmax the same way; normed_out written here when asked
//   3. codes and chunk sums: wave w takes chunks w, w+8, …; lane l quantises elements 64c + l and 64c + 32 + l, and
//      the wave's integer sum of the 64 codes is the chunk sum (written by lane 0).
// halo_norm_quant_twin (native/twins.cpp) computes the float64 definitions directly, in the kernel's summation order;
// every target computes the same bits (no library call is left: exp is halo_exp_f64, sqrt and division are correctly
// rounded everywhere, the f32 fast paths are exact whenever taken).
#ifndef HALO_NORM_QUANT_KERN_H
#define HALO_NORM_QUANT_KERN_H

#include "common.kern.h"

HALO_KERNEL(halo_norm_quant, halo_norm_quant_args, HALO_ROW_THREADS) {
  HALO_SHARED(float, slots, HALO_WAVES(HALO_ROW_THREADS));
  HALO_SHARED(double, slots64, HALO_WAVES(HALO_ROW_THREADS));
  const int32_t t = static_cast<int32_t>(halo_block_x());
  if (t >= args.n) return;  // uniform: the whole block leaves together
  const unsigned thread = halo_thread();
  const int32_t row = args.row_index != nullptr ? args.row_index[t] : t;
  float* in = args.in + static_cast<int64_t>(row) * args.in_stride;
  const int32_t width = args.width;

  double squares = 0.0;
  for (int32_t i = static_cast<int32_t>(thread); i < width; i += HALO_ROW_THREADS) {
    float v = in[i];
    if (args.mode != HALO_NORM_PLAIN) {
      v = halo_gated(v, in[width + i], args.mode);
      in[i] = v;  // passes 2 and 3 read it back (pass 3 from other threads, after the barriers of the reductions)
    }
    const double d = v;
    squares = halo_fma_f64(d, d, squares);  // d·d is exact in float64, so this is the reference's squares += d·d
  }
  const double total = halo_block_sum_f64(squares, slots64);
  const halo_inv_split inv = halo_split_inv(1.0 / halo_sqrt_f64(total / static_cast<double>(width) + args.eps));

  float absmax = 0.0f;
  float* normed_out = args.normed_out != nullptr ? args.normed_out + static_cast<int64_t>(t) * width : nullptr;
  for (int32_t i = static_cast<int32_t>(thread); i < width; i += HALO_ROW_THREADS) {
    const float normed = halo_normed(in[i], inv, args.weight[i]);
    if (normed_out != nullptr) normed_out[i] = normed;
    const float magnitude = halo_fabsf(normed);
    absmax = magnitude > absmax ? magnitude : absmax;
  }
  if (args.codes == nullptr) return;
  absmax = halo_block_max_f32(absmax, slots);
  const float scale = 127.0f / (absmax > HALO_ABSMAX_FLOOR ? absmax : HALO_ABSMAX_FLOOR);
  if (thread == 0) args.scales[t] = scale;

  const int32_t chunks = args.padded / HALO_G2_CHUNK;
  int8_t* codes = args.codes + static_cast<int64_t>(t) * args.padded;
  int32_t* sums = args.chunk_sums + static_cast<int64_t>(t) * chunks;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  for (int32_t c = static_cast<int32_t>(halo_wave_index()); c < chunks; c += HALO_WAVES(HALO_ROW_THREADS)) {
    int32_t sum = 0;
    for (int32_t half = 0; half < HALO_G2_CHUNK; half += HALO_WAVE) {
      const int32_t i = c * HALO_G2_CHUNK + half + lane;
      int32_t code = 0;
      if (i < width) code = halo_quantize_code(halo_normed(in[i], inv, args.weight[i]), scale);
      codes[i] = static_cast<int8_t>(code);
      sum += code;
    }
    sum = halo_wave_sum_i32(sum);
    if (lane == 0) sums[c] = sum;
  }
}

#endif
