// norm_quant.kern.h: RMSNorm of one row per block (optionally of the gated FFN activation first), then BitNet's
// per-token absmax int8 quantisation with the per-64 chunk sums the matmul's offset trick needs (halo_norm_quant_args).
//
// Three passes over the input row, each recomputing v[i] from global memory (L2-resident: a row is ≤ a few tens of
// KB) instead of caching it in shared memory, so any width works with no dynamic shared memory and no scratch:
//   1. Σ v² (strided partial sums, wave butterfly, waves 0…7 in order) → inv = 1 / sqrt(Σ/width + eps)
//   2. normed = v · inv · weight; absmax the same way; normed_out written here when asked
//   3. codes and chunk sums: wave w takes chunks w, w+8, …; lane l quantises elements 64c + l and 64c + 32 + l, and
//      the wave's integer sum of the 64 codes is the chunk sum (written by lane 0).
// halo_norm_quant_twin (native/twins.cpp) repeats exactly this order. f32 throughout (the reference sums in float64:
// the difference is within its tolerances, not bit-exact). On hardware halo_expf (SILU) may differ from the CPU's
// expf in the last bits: bit-exactness holds against the emulator only.
#ifndef HALO_NORM_QUANT_KERN_H
#define HALO_NORM_QUANT_KERN_H

#include "common.kern.h"

/** v[i] of the row `in` under `mode` (gate | up fused for RELU2 / SILU). */
HALO_DEVICE float halo_norm_input(const float* in, int32_t i, int32_t width, int32_t mode) {
  if (mode == HALO_NORM_PLAIN) return in[i];
  const float gate = in[i];
  const float up = in[width + i];
  if (mode == HALO_NORM_RELU2) {
    const float relu = gate > 0.0f ? gate : 0.0f;
    return relu * relu * up;
  }
  return gate / (1.0f + halo_expf(-gate)) * up;
}

/** clamp(rint(x), −128, 127) as int32; NaN (a broken row) quantises to 0 rather than to an undefined conversion. */
HALO_DEVICE int32_t halo_quantize_code(float x) {
  if (halo_isnan(x)) return 0;
  const float r = halo_rintf(x);
  return static_cast<int32_t>(r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r);
}

HALO_KERNEL(halo_norm_quant, halo_norm_quant_args, HALO_ROW_THREADS) {
  HALO_SHARED(float, slots, HALO_WAVES(HALO_ROW_THREADS));
  const int32_t t = static_cast<int32_t>(halo_block_x());
  if (t >= args.n) return;  // uniform: the whole block leaves together
  const unsigned thread = halo_thread();
  const int32_t row = args.row_index != nullptr ? args.row_index[t] : t;
  const float* in = args.in + static_cast<int64_t>(row) * args.in_stride;
  const int32_t width = args.width, mode = args.mode;

  float squares = 0.0f;
  for (int32_t i = static_cast<int32_t>(thread); i < width; i += HALO_ROW_THREADS) {
    const float v = halo_norm_input(in, i, width, mode);
    squares += v * v;
  }
  const float total = halo_block_sum_f32(squares, slots);
  const float inv = 1.0f / halo_sqrtf(total / static_cast<float>(width) + args.eps);

  float absmax = 0.0f;
  float* normed_out = args.normed_out != nullptr ? args.normed_out + static_cast<int64_t>(t) * width : nullptr;
  for (int32_t i = static_cast<int32_t>(thread); i < width; i += HALO_ROW_THREADS) {
    const float normed = halo_norm_input(in, i, width, mode) * inv * args.weight[i];
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
      if (i < width) code = halo_quantize_code(halo_norm_input(in, i, width, mode) * inv * args.weight[i] * scale);
      codes[i] = static_cast<int8_t>(code);
      sum += code;
    }
    sum = halo_wave_sum_i32(sum);
    if (lane == 0) sums[c] = sum;
  }
}

#endif
