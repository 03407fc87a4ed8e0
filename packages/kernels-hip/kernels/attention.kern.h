// attention.kern.h: split-KV (flash-decoding) attention over the KV cache and the log-sum-exp merge of the splits
// (halo_attention_args, halo_attention_merge_args).
//
// The reference (packages/kernels/src/reference/attention.ts) computes scores, exponentials, sums and the weighted sum
// in float64, and the attention output feeds a norm and an int8 quantisation: f32 arithmetic here (errors of a few
// ulps) moved an activation code across a .5 often enough to change a small model's logits by 0.3. So the output is
// computed to ~2^−45 and rounds like the reference's but about once in 2^16 values, without float64 in the loops over
// positions and elements (1/16 of the f32 rate on RDNA 3, 1/64 on GeForce): those run in float-float (halo_ff.h
// halo_ff: an FMA gives each product's error), and float64 is used once per position spread over the lanes.
//
// One wave per (row, head, split); a split's positions go 32 at a time (a chunk):
//   A. scores, a lane per position: lane i computes q·k of position c0 + i as a float-float sum over d = 0 … head_dim−1
//      in order (q read by every lane at the same address: a broadcast), then s = float64(hi + lo) · scale
//   B. the chunk's max over the lanes; if it raises the running max m, l and o are rescaled by exp(m_old − m_new)
//      (float64 exp, then a float-float product per element); each lane's weight w = exp(s − m) in float64 (V8's exp,
//      halo_exp_f64: one per lane per chunk), l += Σ w over the lanes in float64
//   C. the weighted sum, a lane per element (elements l, l+32, … of the head: coalesced rows of values): for each
//      position of the chunk, its w (float-float, from its lane) times v into o, float-float; values HALO_ATTN_GROUP
//      positions at a time so their loads overlap
// Writes partial[(t·heads + h)·splits + s] = { m, l, o[0 … head_dim) } in float64 (o = hi + lo); an empty split only
// m = −inf, l = 0. The merge weighs the splits in float64 (per split, not per position).
// Cost: two float-float multiply-adds (≈ 11 f32 instructions each) per element and position where f32 attention had
// about three f32 operations, plus one float64 exp per position (spread over the lanes, ≈ 27 float64 instructions per
// 32 positions): at the 2B shape (4 query heads per KV head, f16 KV) ≈ 22 f32 operations per byte of KV read, against
// ≈ 58 that Strix Halo executes per byte it can read — still below the memory time, by this count; not measured on a
// GPU (none here). No hardware exp is left: every target computes the same bits as the twin.
#ifndef HALO_ATTENTION_KERN_H
#define HALO_ATTENTION_KERN_H

#include "common.kern.h"
#include "rope_kv.kern.h"

#define HALO_ATTN_PER_LANE (HALO_MAX_HEAD_DIM / HALO_WAVE)
#define HALO_ATTN_GROUP 4  // positions whose values are in flight together in step C

/** q·k of one cached key row as a float-float sum over d in order; 16-byte loads when every row start is aligned. */
template <int32_t KvDtype>
HALO_DEVICE halo_ff halo_attention_dot(const float* q, const void* keys, int64_t row, int32_t head_dim, bool vector) {
  halo_ff acc;
  acc.hi = 0.0f;
  acc.lo = 0.0f;
  if (vector) {
    // 16 bytes = 8 f16 or 4 f32 elements per load.
    const int32_t per = KvDtype == HALO_GPU_F16 ? 8 : 4;
    for (int32_t d0 = 0; d0 < head_dim; d0 += per) {
      const halo_u32x4 raw = halo_load_u32x4(KvDtype == HALO_GPU_F16 ? static_cast<const void*>(static_cast<const uint16_t*>(keys) + row + d0)
                                                                     : static_cast<const void*>(static_cast<const float*>(keys) + row + d0));
      const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
      HALO_UNROLL
      for (int e = 0; e < per; e++) {
        const float k = KvDtype == HALO_GPU_F16 ? halo_f16_to_f32(static_cast<uint16_t>(words[e / 2] >> (16 * (e % 2)))) : halo_bits_f32(words[e]);
        acc = halo_ff_mac(acc, q[d0 + e], 0.0f, k);
      }
    }
    return acc;
  }
  for (int32_t d = 0; d < head_dim; d++) acc = halo_ff_mac(acc, q[d], 0.0f, halo_kv_load(keys, row + d, KvDtype));
  return acc;
}

template <int PerLane, int32_t KvDtype>
HALO_DEVICE void halo_attention_split(const halo_attention_args& args, const float* q, int64_t base, int32_t start, int32_t end, bool vector, double* out) {
  const int32_t head_dim = args.head_dim, kv_dim = args.kv_heads * head_dim;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  halo_ff o[PerLane];
  HALO_UNROLL
  for (int j = 0; j < PerLane; j++) o[j].hi = o[j].lo = 0.0f;
  double m = -static_cast<double>(halo_inf()), l = 0.0;
  for (int32_t c0 = start; c0 < end; c0 += HALO_WAVE) {
    const int32_t count = halo_min_i32(HALO_WAVE, end - c0);
    // A. This lane's position's score (−inf for a lane past the end).
    double s = -static_cast<double>(halo_inf());
    if (lane < count) {
      const halo_ff dot = halo_attention_dot<KvDtype>(q, args.keys, base + static_cast<int64_t>(c0 + lane) * kv_dim, head_dim, vector);
      s = (static_cast<double>(dot.hi) + static_cast<double>(dot.lo)) * args.scale;
    }
    // B. The running max, the rescale when it grows, the weights and their sum.
    const double grown_to = halo_wave_max_f64(s);
    const double grown = grown_to > m ? grown_to : m;
    if (grown > m && m > -static_cast<double>(halo_inf())) {  // uniform: every lane has the same m and grown
      const double alpha = halo_exp_f64(m - grown);
      l *= alpha;
      const halo_ff a = halo_ff_of(alpha);
      HALO_UNROLL
      for (int j = 0; j < PerLane; j++) o[j] = halo_ff_scale(o[j], a.hi, a.lo);
    }
    m = grown;
    const double w = lane < count ? halo_exp_f64(s - m) : 0.0;
    l += halo_wave_sum_f64(w);
    const halo_ff mine = halo_ff_of(w);
    // C. o += w_p · v_p over the chunk's positions, a lane per element.
    for (int32_t u0 = 0; u0 < count; u0 += HALO_ATTN_GROUP) {
      float values[HALO_ATTN_GROUP][PerLane];
      HALO_UNROLL
      for (int u = 0; u < HALO_ATTN_GROUP; u++) {
        const int64_t at = base + static_cast<int64_t>(c0 + u0 + u) * kv_dim;
        HALO_UNROLL
        for (int j = 0; j < PerLane; j++) {
          const int32_t d = lane + HALO_WAVE * j;
          values[u][j] = u0 + u < count && d < head_dim ? halo_kv_load(args.values, at + d, KvDtype) : 0.0f;
        }
      }
      HALO_UNROLL
      for (int u = 0; u < HALO_ATTN_GROUP; u++) {
        if (u0 + u < count) {  // uniform
          const float w_hi = halo_exchange_f32(mine.hi, static_cast<unsigned>(u0 + u));
          const float w_lo = halo_exchange_f32(mine.lo, static_cast<unsigned>(u0 + u));
          HALO_UNROLL
          for (int j = 0; j < PerLane; j++)
            if (lane + HALO_WAVE * j < head_dim) o[j] = halo_ff_mac(o[j], w_hi, w_lo, values[u][j]);
        }
      }
    }
  }
  if (lane == 0) {
    out[0] = m;
    out[1] = l;
  }
  HALO_UNROLL
  for (int j = 0; j < PerLane; j++) {
    const int32_t d = lane + HALO_WAVE * j;
    if (d < head_dim) out[2 + d] = static_cast<double>(o[j].hi) + static_cast<double>(o[j].lo);
  }
}

template <int32_t KvDtype>
HALO_DEVICE void halo_attention_dispatch(const halo_attention_args& args, const float* q, int64_t base, int32_t start, int32_t end, bool vector, double* out) {
  if (args.head_dim <= HALO_WAVE) halo_attention_split<1, KvDtype>(args, q, base, start, end, vector, out);
  else if (args.head_dim <= 2 * HALO_WAVE) halo_attention_split<2, KvDtype>(args, q, base, start, end, vector, out);
  else if (args.head_dim <= 4 * HALO_WAVE) halo_attention_split<4, KvDtype>(args, q, base, start, end, vector, out);
  else halo_attention_split<HALO_ATTN_PER_LANE, KvDtype>(args, q, base, start, end, vector, out);
}

// A split wholly past the row's last position (or a row the host should not have sent: bad position, slot or head_dim
// above HALO_MAX_HEAD_DIM) writes only m = −inf and l = 0, which the merge weighs as nothing without reading its o:
// a decode step's partial traffic then follows the row's position, not contextLength (loaded at 4096, a step at
// position 63 wrote and read 63 empty splits' o, 1 KiB each at head_dim 128, in every head and layer: 77 MB a token
// on the 2B shape).
HALO_KERNEL(halo_attention, halo_attention_args, HALO_ATTN_THREADS) {
  const int32_t bx = static_cast<int32_t>(halo_block_x()), split = static_cast<int32_t>(halo_block_y());
  const int32_t t = bx / args.heads, h = bx - t * args.heads;
  if (t >= args.n || split >= args.splits) return;
  const int32_t head_dim = args.head_dim;
  double* out = args.partial + (static_cast<int64_t>(bx) * args.splits + split) * (head_dim + 2);
  const int32_t last = args.positions[t], slot = args.slots[t];
  const bool valid = last >= 0 && last < args.context && slot >= 0 && head_dim <= HALO_MAX_HEAD_DIM;
  const int32_t start = split * args.tile;
  const int32_t end = valid ? halo_min_i32(start + args.tile, last + 1) : start;
  if (end <= start) {  // uniform
    if (halo_lane() == 0u) {
      out[0] = -static_cast<double>(halo_inf());
      out[1] = 0.0;
    }
    return;
  }
  const int32_t kv_dim = args.kv_heads * head_dim;
  const int32_t kv_head = h / (args.heads / args.kv_heads);
  const int64_t base = (static_cast<int64_t>(valid ? slot : 0) * args.layers + args.layer) * args.context * kv_dim + static_cast<int64_t>(kv_head) * head_dim;
  const float* q = args.q + static_cast<int64_t>(t) * args.q_stride + static_cast<int64_t>(h) * head_dim;
  // Key rows may be read 16 bytes at a time when every row starts on a 16-byte boundary.
  const int32_t element = args.kv_dtype == HALO_GPU_F16 ? 2 : 4;
  const bool vector = (kv_dim * element) % 16 == 0 && (head_dim * element) % 16 == 0 && (reinterpret_cast<uintptr_t>(args.keys) & 15u) == 0;
  if (args.kv_dtype == HALO_GPU_F16) halo_attention_dispatch<HALO_GPU_F16>(args, q, base, start, end, vector, out);
  else halo_attention_dispatch<HALO_GPU_F32>(args, q, base, start, end, vector, out);
}

// Phase 2, one wave per (row, head), in float64 (per split, not per position): M = max m_s; lane i weighs splits
// i, i+32, …: w_s = exp(m_s − M) (an empty split, m = −inf, weighs 0); den = Σ w_s·l_s (per lane, then the butterfly);
// num_d = Σ_s w_s·o_s[d] in split order (a lane per element), skipping empty splits, whose o the attention kernel no
// longer writes (their term was +0 added to a sum that starts at +0, so the result is the same bits); out =
// f32(num / den). A row with no positions at all (M = −inf) gives zeros. Every split's m and l are still read (16
// bytes a split): the merge has no positions to count the live splits from.
HALO_KERNEL(halo_attention_merge, halo_attention_merge_args, HALO_ATTN_THREADS) {
  const int32_t bx = static_cast<int32_t>(halo_block_x());
  const int32_t t = bx / args.heads, h = bx - t * args.heads;
  if (t >= args.n || args.head_dim > HALO_MAX_HEAD_DIM) return;
  const int32_t head_dim = args.head_dim, stride = head_dim + 2;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  const double* partial = args.partial + static_cast<int64_t>(bx) * args.splits * stride;
  float* out = args.out + static_cast<int64_t>(t) * args.out_stride + static_cast<int64_t>(h) * head_dim;

  double top = -static_cast<double>(halo_inf());
  for (int32_t s = lane; s < args.splits; s += HALO_WAVE) {
    const double ms = partial[static_cast<int64_t>(s) * stride];
    top = ms > top ? ms : top;
  }
  top = halo_wave_max_f64(top);
  double num[HALO_ATTN_PER_LANE];
  HALO_UNROLL
  for (int j = 0; j < HALO_ATTN_PER_LANE; j++) num[j] = 0.0;
  double den = 0.0;
  const bool any = halo_ballot(top > -static_cast<double>(halo_inf())) != 0u;  // uniform (the loop exchanges)
  if (any) {
    for (int32_t c0 = 0; c0 < args.splits; c0 += HALO_WAVE) {
      const int32_t count = halo_min_i32(HALO_WAVE, args.splits - c0);
      double w = 0.0, ms = -static_cast<double>(halo_inf());
      if (lane < count) {
        const double* split = partial + static_cast<int64_t>(c0 + lane) * stride;
        ms = split[0];
        w = halo_exp_f64(ms - top);
        den += w * split[1];
      }
      for (int32_t u = 0; u < count; u++) {
        const double wu = halo_exchange_f64(w, static_cast<unsigned>(u));
        if (halo_exchange_f64(ms, static_cast<unsigned>(u)) == -static_cast<double>(halo_inf())) continue;  // uniform: empty, o unwritten
        const double* split = partial + static_cast<int64_t>(c0 + u) * stride;
        HALO_UNROLL
        for (int j = 0; j < HALO_ATTN_PER_LANE; j++) {
          const int32_t d = lane + HALO_WAVE * j;
          if (d < head_dim) num[j] += wu * split[2 + d];
        }
      }
    }
  }
  den = halo_wave_sum_f64(den);
  HALO_UNROLL
  for (int j = 0; j < HALO_ATTN_PER_LANE; j++) {
    const int32_t d = lane + HALO_WAVE * j;
    if (d < head_dim) out[d] = any ? static_cast<float>(num[j] / den) : 0.0f;
  }
}

#endif
