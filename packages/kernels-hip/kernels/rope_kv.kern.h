// rope_kv.kern.h: NeoX RoPE of q and k in place, then the row's k and v stored in the KV cache (halo_rope_kv_args).
// Each thread rotates whole pairs (x[i], x[i + head_dim/2]) of q then k heads, and the thread that rotates a k pair
// also stores it, so no barrier is needed; v is copied (and rounded to f16 for an f16 cache) by a second strided loop.
// As the reference's applyRope (rope.ts): float64 cos/sin from the host's table, the rotation in float64 (four
// products, two sums per pair: per element of the row, not per weight), each result rounded once to f32.
#ifndef HALO_ROPE_KV_KERN_H
#define HALO_ROPE_KV_KERN_H

#include "common.kern.h"

/** Stores `value` at `index` of a cache of `dtype` (HALO_GPU_F16 rounds to nearest even). */
HALO_DEVICE void halo_kv_store(void* cache, int64_t index, int32_t dtype, float value) {
  if (dtype == HALO_GPU_F16) static_cast<uint16_t*>(cache)[index] = halo_f32_to_f16(value);
  else static_cast<float*>(cache)[index] = value;
}

/** Element `index` of a cache of `dtype`, widened to f32. */
HALO_DEVICE float halo_kv_load(const void* cache, int64_t index, int32_t dtype) {
  if (dtype == HALO_GPU_F16) return halo_f16_to_f32(static_cast<const uint16_t*>(cache)[index]);
  return static_cast<const float*>(cache)[index];
}

// A row whose position or slot is out of range (the host validates both; only a bug gets here) is left untouched.
HALO_KERNEL(halo_rope_kv, halo_rope_kv_args, HALO_ROW_THREADS) {
  const int32_t t = static_cast<int32_t>(halo_block_x());
  if (t >= args.n) return;
  const int32_t position = args.positions[t], slot = args.slots[t];
  if (position < 0 || position >= args.context || slot < 0) return;
  const int32_t head_dim = args.head_dim, half = head_dim / 2;
  const int32_t q_dim = args.heads * head_dim, kv_dim = args.kv_heads * head_dim;
  float* row = args.qkv + static_cast<int64_t>(t) * args.qkv_stride;
  const double* rope = args.rope + static_cast<int64_t>(position) * half * 2;
  const int64_t cache = ((static_cast<int64_t>(slot) * args.layers + args.layer) * args.context + position) * kv_dim;

  const int32_t pairs = (args.heads + args.kv_heads) * half;
  for (int32_t p = static_cast<int32_t>(halo_thread()); p < pairs; p += HALO_ROW_THREADS) {
    const int32_t head = p / half, i = p - head * half;
    const int32_t at = head * head_dim + i;  // q heads then k heads, contiguous in the row
    const double cos = rope[2 * i], sin = rope[2 * i + 1];
    const double x1 = row[at], x2 = row[at + half];
    const float y1 = static_cast<float>(x1 * cos - x2 * sin);
    const float y2 = static_cast<float>(x1 * sin + x2 * cos);
    row[at] = y1;
    row[at + half] = y2;
    if (at >= q_dim) {
      halo_kv_store(args.keys, cache + (at - q_dim), args.kv_dtype, y1);
      halo_kv_store(args.keys, cache + (at - q_dim) + half, args.kv_dtype, y2);
    }
  }
  const float* v = row + q_dim + kv_dim;
  for (int32_t e = static_cast<int32_t>(halo_thread()); e < kv_dim; e += HALO_ROW_THREADS) halo_kv_store(args.values, cache + e, args.kv_dtype, v[e]);
}

#endif
