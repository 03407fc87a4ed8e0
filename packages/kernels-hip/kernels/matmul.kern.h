// matmul.kern.h: the ternary matmul over halo-g2 rows and per-token int8 activations (halo_matmul_args).
//
// Memory is the whole cost of decode, so the design is about bytes: a wave owns one output row; lane l loads the
// row's 16-byte chunks l, l+32, … once (one 128-bit load each, 512 contiguous bytes per wave per step) and uses each
// chunk for every token of the block (up to HALO_MATMUL_TOKENS); 4 dot4 per weight word per token against the
// activation words; Σ (c−1)·a = Σ c·a − chunk_sums (no decode of codes to ±1); exact integer accumulation (int32 for
// per-row scales; int64 for block scales, see below), the wave butterfly, then the scaling in float64 exactly as the
// reference (packages/kernels/src/reference/ternary-matmul.ts) does it, rounded once to f32: lanes 0…7 scale tokens
// 0…7 at once, so the float64 work is a handful of instructions per output row, never per weight.
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

/** The float64 value of one unit of the block path's integer sum: 2^(exponent − 150), exponent ≥ 1 (f32 biased). */
HALO_DEVICE double halo_f32_unit(int32_t exponent) { return halo_bits_f64(static_cast<uint64_t>(exponent - 150 + 1023) << 52); }

/**
 * A block scale as an integer multiple of the row's unit 2^(base − 150): ±significand · 2^(exponent − base), below 2^31
 * for exponent − base ≤ 7. `bits` is a finite f32; a zero scale gives 0 (its exponent may be below `base`).
 */
HALO_DEVICE int32_t halo_scale_units(uint32_t bits, int32_t base) {
  const int32_t exponent = static_cast<int32_t>((bits >> 23) & 0xffu);
  const int32_t significand = static_cast<int32_t>((bits & 0x7fffffu) | (exponent != 0 ? 0x800000u : 0u));
  if (significand == 0) return 0;
  const int32_t units = significand << ((exponent > 1 ? exponent : 1) - base);
  return (bits >> 31) != 0 ? -units : units;
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
    // One scale per row: the reference's (dot · ws) / s in float64.
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
    int32_t mine = 0;  // lane t: token t's dot
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
      if (t < tokens) {
        const int32_t total = halo_wave_sum_i32(acc[t]);
        mine = lane == t ? total : mine;
      }
    }
    if (lane < tokens) {
      const double value = static_cast<double>(mine) * static_cast<double>(args.wscales[row]) / static_cast<double>(args.ascales[t0 + lane]);
      halo_matmul_store(args, t0 + lane, row, static_cast<float>(value));
    }
    return;
  }

  // Block scales. The reference sums dot_b · ws_b over the blocks in order in float64, then divides by s. Each term is
  // an integer multiple of the unit u = 2^(e_min − 150) (e_min: the smallest exponent of the row's nonzero scales), and
  // |dot_b| ≤ 128 · 64 · block_chunks, so Σ_b |term_b| < chunks · 2^(37 + spread) · u (spread = e_max − e_min). When
  // chunks · 2^spread ≤ 2^16 every partial sum of the reference is below 2^53 units: its float64 sum is exact, in any
  // order. Then each lane adds dot · ws / u per chunk in int64 (exact; ws / u < 2^31 for spread ≤ 7, a 32 × 32-bit
  // product), the wave sums them, and the total times u is the reference's sum bit for bit. Rows whose scales are
  // further apart (a factor above 128 to 256 within a row), or not finite, take the reference's own order: block by
  // block, the wave's integer dot of the block, then the float64 multiply-add — slower, exact too.
  const int32_t block_chunks = args.block_chunks;
  const int32_t blocks = chunks / block_chunks;
  const float* wscales = args.wscales + static_cast<int64_t>(row) * blocks;
  int32_t e_min = 255, e_max = 0;
  bool finite = true;
  for (int32_t b = lane; b < blocks; b += HALO_WAVE) {
    const uint32_t bits = halo_f32_bits(wscales[b]);
    const int32_t exponent = static_cast<int32_t>((bits >> 23) & 0xffu);
    if (exponent == 0xff) finite = false;
    else if ((bits & 0x7fffffffu) != 0) {
      const int32_t e = exponent > 1 ? exponent : 1;  // subnormals count in units of exponent 1
      e_min = e < e_min ? e : e_min;
      e_max = e > e_max ? e : e_max;
    }
  }
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) {
    const int32_t other_min = halo_shfl_xor_i32(e_min, mask), other_max = halo_shfl_xor_i32(e_max, mask);
    e_min = other_min < e_min ? other_min : e_min;
    e_max = other_max > e_max ? other_max : e_max;
  }
  const bool none = e_min > e_max;  // every scale 0: every term is 0
  const int32_t base = none ? 1 : e_min;
  const bool exact = halo_ballot(!finite) == 0u && (none || (e_max - e_min <= 7 && (static_cast<int64_t>(chunks) << (e_max - e_min)) <= 65536));

  if (exact) {
    int64_t acc[HALO_MATMUL_TOKENS];
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) acc[t] = 0;
    for (int32_t c = lane; c < chunks; c += HALO_WAVE) {
      const halo_u32x4 w = halo_load_u32x4(weights + 4 * c);
      const int32_t units = halo_scale_units(halo_f32_bits(wscales[c / block_chunks]), base);
      HALO_UNROLL
      for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
        if (t < tokens) {
          const int64_t at = static_cast<int64_t>(t) * chunks + c;
          const int32_t dot = halo_g2_chunk_dot(w, codes + at * HALO_G2_CHUNK, 0) - chunk_sums[at];
          acc[t] += static_cast<int64_t>(dot) * static_cast<int64_t>(units);  // 32 × 32 → 64 bits
        }
      }
    }
    int64_t mine = 0;
    HALO_UNROLL
    for (int t = 0; t < HALO_MATMUL_TOKENS; t++) {
      if (t < tokens) {
        const int64_t total = halo_wave_sum_i64(acc[t]);
        mine = lane == t ? total : mine;
      }
    }
    if (lane < tokens) {
      const double total = static_cast<double>(mine) * halo_f32_unit(base);  // exact: |mine| < 2^53
      halo_matmul_store(args, t0 + lane, row, static_cast<float>(total / static_cast<double>(args.ascales[t0 + lane])));
    }
    return;
  }

  // One token at a time (a rare path: few registers, the row's weights read once per token).
  double mine = 0.0;  // lane t: token t's float64 sum
  for (int32_t t = 0; t < tokens; t++) {
    double total = 0.0;
    for (int32_t b = 0; b < blocks; b++) {
      int32_t acc = 0;
      for (int32_t c = b * block_chunks + lane; c < (b + 1) * block_chunks; c += HALO_WAVE) {
        const int64_t at = static_cast<int64_t>(t) * chunks + c;
        acc = halo_g2_chunk_dot(halo_load_u32x4(weights + 4 * c), codes + at * HALO_G2_CHUNK, acc) - chunk_sums[at];
      }
      const int32_t dot = halo_wave_sum_i32(acc);
      // The reference skips a zero dot (so a zero block of a non-finite scale adds nothing rather than NaN).
      if (dot != 0) total += static_cast<double>(dot) * static_cast<double>(wscales[b]);
    }
    mine = lane == t ? total : mine;
  }
  if (lane < tokens) halo_matmul_store(args, t0 + lane, row, static_cast<float>(mine / static_cast<double>(args.ascales[t0 + lane])));
}

#endif
