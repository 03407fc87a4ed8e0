// attention.kern.h: split-KV (flash-decoding) attention over the KV cache and the log-sum-exp merge of the splits
// (halo_attention_args, halo_attention_merge_args).
//
// One wave per (row, head, split). Lane l owns elements l, l+32, … of the head (so each load of a key or value row is
// 32 consecutive elements: coalesced for f32 and f16, and head_dim 16 works with half the lanes idle); q and the
// running output stay in registers, PerLane = ceil(head_dim / 32) of each (a template: 1, 2, 4 or 8, fixed-index
// arrays, no scratch). Positions go HALO_ATTN_GROUP at a time: the group's keys and values are loaded together and
// its dot products reduced as independent butterflies, so memory latency overlaps instead of serialising per position;
// then, per position in order: score = wave sum · scale, online softmax (m, l, o rescaled only when the max grows).
// The arithmetic per position is the same as one at a time (the twin walks positions singly). Every lane computes the
// same m and l. On hardware halo_expf may differ from the CPU's expf in the last bits, so GPU results are compared with
// tolerances, and bit-exactly only under the emulator.
#ifndef HALO_ATTENTION_KERN_H
#define HALO_ATTENTION_KERN_H

#include "common.kern.h"
#include "rope_kv.kern.h"

#define HALO_ATTN_PER_LANE (HALO_MAX_HEAD_DIM / HALO_WAVE)
#define HALO_ATTN_GROUP 4  // positions whose keys and values are in flight together

template <int PerLane, int32_t KvDtype>
HALO_DEVICE void halo_attention_split(const halo_attention_args& args, const float* q, int64_t base, int32_t start, int32_t end, bool valid, float* out) {
  const int32_t head_dim = args.head_dim, kv_dim = args.kv_heads * head_dim;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  float qv[PerLane], o[PerLane];
  HALO_UNROLL
  for (int j = 0; j < PerLane; j++) {
    const int32_t d = lane + HALO_WAVE * j;
    qv[j] = d < head_dim && valid ? q[d] : 0.0f;
    o[j] = 0.0f;
  }
  float m = -halo_inf(), l = 0.0f;
  for (int32_t p0 = start; p0 < end; p0 += HALO_ATTN_GROUP) {
    const int32_t count = halo_min_i32(HALO_ATTN_GROUP, end - p0);
    float keys[HALO_ATTN_GROUP][PerLane], values[HALO_ATTN_GROUP][PerLane], dots[HALO_ATTN_GROUP];
    HALO_UNROLL
    for (int u = 0; u < HALO_ATTN_GROUP; u++) {
      const int64_t at = base + static_cast<int64_t>(p0 + u) * kv_dim;
      HALO_UNROLL
      for (int j = 0; j < PerLane; j++) {
        const int32_t d = lane + HALO_WAVE * j;
        const bool here = u < count && d < head_dim;
        keys[u][j] = here ? halo_kv_load(args.keys, at + d, KvDtype) : 0.0f;
        values[u][j] = here ? halo_kv_load(args.values, at + d, KvDtype) : 0.0f;
      }
    }
    HALO_UNROLL
    for (int u = 0; u < HALO_ATTN_GROUP; u++) {
      float dot = 0.0f;
      HALO_UNROLL
      for (int j = 0; j < PerLane; j++)
        if (lane + HALO_WAVE * j < head_dim) dot += qv[j] * keys[u][j];
      dots[u] = dot;
    }
    HALO_UNROLL
    for (int u = 0; u < HALO_ATTN_GROUP; u++)
      if (u < count) dots[u] = halo_wave_sum_f32(dots[u]);  // count is the same on every lane
    HALO_UNROLL
    for (int u = 0; u < HALO_ATTN_GROUP; u++) {
      if (u < count) {
        const float score = dots[u] * args.scale;
        const float grown = score > m ? score : m;
        const float alpha = grown > m ? halo_expf(m - grown) : 1.0f;  // exp(−inf) = 0 at the first position
        const float weight = halo_expf(score - grown);
        l = l * alpha + weight;
        HALO_UNROLL
        for (int j = 0; j < PerLane; j++)
          if (lane + HALO_WAVE * j < head_dim) o[j] = o[j] * alpha + weight * values[u][j];
        m = grown;
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
    if (d < head_dim) out[2 + d] = o[j];
  }
}

template <int32_t KvDtype>
HALO_DEVICE void halo_attention_dispatch(const halo_attention_args& args, const float* q, int64_t base, int32_t start, int32_t end, bool valid, float* out) {
  if (args.head_dim <= HALO_WAVE) halo_attention_split<1, KvDtype>(args, q, base, start, end, valid, out);
  else if (args.head_dim <= 2 * HALO_WAVE) halo_attention_split<2, KvDtype>(args, q, base, start, end, valid, out);
  else if (args.head_dim <= 4 * HALO_WAVE) halo_attention_split<4, KvDtype>(args, q, base, start, end, valid, out);
  else halo_attention_split<HALO_ATTN_PER_LANE, KvDtype>(args, q, base, start, end, valid, out);
}

// A split wholly past the row's last position (or a row the host should not have sent: bad position, slot or head_dim
// above HALO_MAX_HEAD_DIM) writes m = −inf, l = 0 and o = 0, which the merge weighs as nothing.
HALO_KERNEL(halo_attention, halo_attention_args, HALO_ATTN_THREADS) {
  const int32_t bx = static_cast<int32_t>(halo_block_x()), split = static_cast<int32_t>(halo_block_y());
  const int32_t t = bx / args.heads, h = bx - t * args.heads;
  if (t >= args.n || split >= args.splits) return;
  const int32_t head_dim = args.head_dim;
  float* out = args.partial + (static_cast<int64_t>(bx) * args.splits + split) * (head_dim + 2);
  const int32_t last = args.positions[t], slot = args.slots[t];
  const bool valid = last >= 0 && last < args.context && slot >= 0 && head_dim <= HALO_MAX_HEAD_DIM;
  const int32_t start = split * args.tile;
  const int32_t end = valid ? halo_min_i32(start + args.tile, last + 1) : start;
  const int32_t kv_dim = args.kv_heads * head_dim;
  const int32_t kv_head = h / (args.heads / args.kv_heads);
  const int64_t base = (static_cast<int64_t>(valid ? slot : 0) * args.layers + args.layer) * args.context * kv_dim + static_cast<int64_t>(kv_head) * head_dim;
  const float* q = args.q + static_cast<int64_t>(t) * args.q_stride + static_cast<int64_t>(h) * head_dim;
  if (args.kv_dtype == HALO_GPU_F16) halo_attention_dispatch<HALO_GPU_F16>(args, q, base, start, end, valid, out);
  else halo_attention_dispatch<HALO_GPU_F32>(args, q, base, start, end, valid, out);
}

// Phase 2, one wave per (row, head): M = max m_s, then Σ exp(m_s − M)·o_s / Σ exp(m_s − M)·l_s in split order (every
// lane computes the same M and denominator). A row with no positions at all (M = −inf) gives zeros.
HALO_KERNEL(halo_attention_merge, halo_attention_merge_args, HALO_ATTN_THREADS) {
  const int32_t bx = static_cast<int32_t>(halo_block_x());
  const int32_t t = bx / args.heads, h = bx - t * args.heads;
  if (t >= args.n || args.head_dim > HALO_MAX_HEAD_DIM) return;
  const int32_t head_dim = args.head_dim, stride = head_dim + 2;
  const int32_t lane = static_cast<int32_t>(halo_lane());
  const float* partial = args.partial + static_cast<int64_t>(bx) * args.splits * stride;
  float* out = args.out + static_cast<int64_t>(t) * args.out_stride + static_cast<int64_t>(h) * head_dim;

  float top = -halo_inf();
  for (int32_t s = 0; s < args.splits; s++) {
    const float ms = partial[static_cast<int64_t>(s) * stride];
    top = ms > top ? ms : top;
  }
  float num[HALO_ATTN_PER_LANE];
  HALO_UNROLL
  for (int j = 0; j < HALO_ATTN_PER_LANE; j++) num[j] = 0.0f;
  float den = 0.0f;
  const bool any = top > -halo_inf();
  if (any) {
    for (int32_t s = 0; s < args.splits; s++) {
      const float* split = partial + static_cast<int64_t>(s) * stride;
      const float weight = halo_expf(split[0] - top);  // an empty split (m = −inf) weighs 0
      den += weight * split[1];
      HALO_UNROLL
      for (int j = 0; j < HALO_ATTN_PER_LANE; j++) {
        const int32_t d = lane + HALO_WAVE * j;
        if (d < head_dim) num[j] += weight * split[2 + d];
      }
    }
  }
  HALO_UNROLL
  for (int j = 0; j < HALO_ATTN_PER_LANE; j++) {
    const int32_t d = lane + HALO_WAVE * j;
    if (d < head_dim) out[d] = any ? num[j] / den : 0.0f;
  }
}

#endif
