// matmul.kern.h: the ternary matmul over halo-g2 rows and per-token int8 activations (halo_matmul_args).
//
// Memory is the whole cost of decode, so the design is about bytes: a wave owns one output row; lane l loads the
// row's 16-byte chunks l, l+32, … once (one 128-bit load each, 512 contiguous bytes per wave per step) and uses each
// chunk for every token of the block (up to HALO_MATMUL_TOKENS); 4 dot4 per weight word per token against the
// activation words; Σ (c−1)·a = Σ c·a − chunk_sums (no decode of codes to ±1); int32 accumulation per row and token
// (one float conversion at the end) for per-row scales, float per chunk for block scales; the wave butterfly last.
// The 8 waves of a block share each token's activation chunk through L1/L0; weights are read once per 8 tokens.
//
// Bytes per decode token at the BitNet b1.58 2B shape (hidden 2560, intermediate 6912, 20 heads / 5 KV heads of 128,
// vocab 128256, 30 layers), weights only (activations, scales and outputs add < 0.2 %), and the time they take at
// 256 GB/s (Strix Halo's LPDDR5X peak; expect 75–85 % of it in practice):
//   matmul    rows × cols        halo-g2 bytes   at 256 GB/s
//   qkv       3840 × 2560        2,457,600       9.60 µs
//   o         2560 × 2560        1,638,400       6.40 µs
//   gate|up  13824 × 2560        8,847,360      34.56 µs
//   down      2560 × 6912        4,423,680      17.28 µs
//   layer                       17,367,040      67.84 µs   × 30 layers = 521.0 MB, 2.035 ms
//   LM head (f16/bf16, tied) 128256 × 2560 × 2 = 656,670,720 B, 2.565 ms (the largest single read of a step)
//   KV cache (f16) read by attention: 2 · 640 · 2 B = 2,560 B per position per layer = 76,800 B per position per token
//     over 30 layers (1024 positions: 78.6 MB, 0.31 ms; 4096: 314.6 MB, 1.23 ms)
//   total at a short context ≈ 1.178 GB per token → ≈ 4.6 ms, a ceiling of ≈ 217 tokens/s at 256 GB/s.
// Prefill reads each weight row once per HALO_MATMUL_TOKENS tokens (ceil(n / 8) grid rows, mostly from L2).
// None of this is measured: no AMD or NVIDIA GPU was available when it was written.
#ifndef HALO_MATMUL_KERN_H
#define HALO_MATMUL_KERN_H

#include "common.kern.h"

/** Σ c·a over one 64-weight chunk: `weights` is the chunk (words 0…3), `activations` its 64 int8 codes. */
HALO_DEVICE int32_t halo_g2_chunk_dot(halo_u32x4 weights, const int8_t* activations, int32_t acc) {
  const uint32_t mask = 0x03030303u;
  const uint32_t words[4] = {weights.x, weights.y, weights.z, weights.w};
  HALO_UNROLL
  for (int i = 0; i < 4; i++) {
    // Word i holds weights 16i … 16i+15; shift 2j exposes the four codes that pair with activation word 4i + j.
    const halo_u32x4 a = halo_load_u32x4(activations + 16 * i);
    acc = halo_dot4_u8i8(words[i] & mask, static_cast<int32_t>(a.x), acc);
    acc = halo_dot4_u8i8((words[i] >> 2) & mask, static_cast<int32_t>(a.y), acc);
    acc = halo_dot4_u8i8((words[i] >> 4) & mask, static_cast<int32_t>(a.z), acc);
    acc = halo_dot4_u8i8((words[i] >> 6) & mask, static_cast<int32_t>(a.w), acc);
  }
  return acc;
}

/** y[t][row] = value, or += value with `accumulate` (the residual add). */
HALO_DEVICE void halo_matmul_store(const halo_matmul_args& args, int32_t t, int32_t row, float value) {
  float* y = args.y + static_cast<int64_t>(t) * args.y_stride + row;
  *y = args.accumulate != 0 ? *y + value : value;
}

// Grid (ceil(rows / 8), ceil(n / 8)). No barriers: a wave whose row is past the end leaves on its own. Rows of weights
// and of codes must be 16-byte aligned (device allocations are; chunks are 16 and 64 bytes).
HALO_KERNEL(halo_matmul, halo_matmul_args, HALO_MATMUL_THREADS) {
  const int32_t row = static_cast<int32_t>(halo_block_x() * HALO_MATMUL_ROWS + halo_wave_index());
  const int32_t t0 = static_cast<int32_t>(halo_block_y()) * HALO_MATMUL_TOKENS;
  if (row >= args.rows || t0 >= args.n) return;
  const int32_t tokens = halo_min_i32(args.n - t0, HALO_MATMUL_TOKENS);
  const int32_t chunks = args.chunks;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  const uint32_t* weights = args.weights + static_cast<int64_t>(row) * chunks * 4;
  const int8_t* codes = args.codes + static_cast<int64_t>(t0) * chunks * HALO_G2_CHUNK;
  const int32_t* chunk_sums = args.chunk_sums + static_cast<int64_t>(t0) * chunks;

  if (args.block_chunks <= 0) {
    int32_t acc[HALO_MATMUL_TOKENS];
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) acc[t] = 0;
    for (int32_t c = lane; c < chunks; c += HALO_WAVE) {
      const halo_u32x4 w = halo_load_u32x4(weights + 4 * c);
      HALO_UNROLL
      for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
        if (t < tokens) {
          const int64_t at = static_cast<int64_t>(t) * chunks + c;
          acc[t] = halo_g2_chunk_dot(w, codes + at * HALO_G2_CHUNK, acc[t]) - chunk_sums[at];
        }
      }
    }
    const float wscale = args.wscales[row];
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
      if (t < tokens) {
        const int32_t total = halo_wave_sum_i32(acc[t]);
        if (lane == 0) halo_matmul_store(args, t0 + t, row, static_cast<float>(total) * (wscale / args.ascales[t0 + t]));
      }
    }
    return;
  }

  // Block scales: each chunk's exact integer dot is converted and scaled on its own (a block's chunks are spread over
  // lanes), float partial sums per lane, the wave butterfly, then the activation scale.
  const int32_t blocks = chunks / args.block_chunks;
  const float* wscales = args.wscales + static_cast<int64_t>(row) * blocks;
  float acc[HALO_MATMUL_TOKENS];
  HALO_UNROLL
  for (int t = 0; t < HALO_MATMUL_TOKENS; t++) acc[t] = 0.0f;
  for (int32_t c = lane; c < chunks; c += HALO_WAVE) {
    const halo_u32x4 w = halo_load_u32x4(weights + 4 * c);
    const float wscale = wscales[c / args.block_chunks];
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
      if (t < tokens) {
        const int64_t at = static_cast<int64_t>(t) * chunks + c;
        const int32_t dot = halo_g2_chunk_dot(w, codes + at * HALO_G2_CHUNK, 0) - chunk_sums[at];
        acc[t] += static_cast<float>(dot) * wscale;
      }
    }
  }
  HALO_UNROLL
  for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
    if (t < tokens) {
      const float total = halo_wave_sum_f32(acc[t]);
      if (lane == 0) halo_matmul_store(args, t0 + t, row, total / args.ascales[t0 + t]);
    }
  }
}

#endif
