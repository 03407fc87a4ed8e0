// lm_head.kern.h: logits = head · x for the output-normed rows, head stored f16 / bf16 / f32 as the model has it
// (halo_lm_head_args). The head is the largest read of a decode step (656 MB at the 2B shape in f16), so a wave owns
// one vocab row and reads it once for up to HALO_HEAD_TOKENS token rows, 16 bytes per lane per load.
//
// Arithmetic order (the twin repeats it): lane l takes groups g = l, l+32, … of G = 16 / sizeof(element) consecutive
// elements (8 for f16 / bf16, 4 for f32); per token, the group's elements in order, acc += w·x (f32, no contraction);
// then the wave butterfly. When hidden is not a multiple of G the same groups are read element by element (rows are then
// not 16-byte aligned), in the same order, skipping elements past the end.
#ifndef HALO_LM_HEAD_KERN_H
#define HALO_LM_HEAD_KERN_H

#include "common.kern.h"
#include "embed.kern.h"

/** Widens quarter `quarter` (4 elements, or 4 of the 8 for 16-bit dtypes) of the 16 bytes `raw` into `out[0 … 4)`. */
template <int32_t Dtype>
HALO_DEVICE void halo_widen4(halo_u32x4 raw, int quarter, float* out) {
  if (Dtype == HALO_GPU_F32) {
    out[0] = halo_bits_f32(raw.x);
    out[1] = halo_bits_f32(raw.y);
    out[2] = halo_bits_f32(raw.z);
    out[3] = halo_bits_f32(raw.w);
    return;
  }
  const uint32_t lo = quarter == 0 ? raw.x : raw.z, hi = quarter == 0 ? raw.y : raw.w;
  if (Dtype == HALO_GPU_F16) {
    out[0] = halo_f16_to_f32(static_cast<uint16_t>(lo & 0xffffu));
    out[1] = halo_f16_to_f32(static_cast<uint16_t>(lo >> 16));
    out[2] = halo_f16_to_f32(static_cast<uint16_t>(hi & 0xffffu));
    out[3] = halo_f16_to_f32(static_cast<uint16_t>(hi >> 16));
  } else {
    out[0] = halo_bits_f32(lo << 16);
    out[1] = halo_bits_f32(lo & 0xffff0000u);
    out[2] = halo_bits_f32(hi << 16);
    out[3] = halo_bits_f32(hi & 0xffff0000u);
  }
}

// One 16-byte group of the row is loaded once and consumed 4 elements at a time for every token (x as one 16-byte
// load per token and quarter), which keeps the registers in flight low enough that no target spills; each token still
// adds its products in element order.
template <int32_t Dtype>
HALO_DEVICE void halo_lm_head_row(const halo_lm_head_args& args, int32_t v, int32_t t0, int32_t tokens, int32_t lane) {
  constexpr int32_t group = Dtype == HALO_GPU_F32 ? 4 : 8;
  constexpr int32_t element_bytes = Dtype == HALO_GPU_F32 ? 4 : 2;
  const int32_t hidden = args.hidden;
  const int32_t groups = (hidden + group - 1) / group;
  const bool vector = hidden % group == 0;
  const unsigned char* head = static_cast<const unsigned char*>(args.head) + static_cast<int64_t>(v) * hidden * element_bytes;
  const float* x = args.x + static_cast<int64_t>(t0) * hidden;

  float acc[HALO_HEAD_TOKENS];
  HALO_UNROLL
  for (int t = 0; t < HALO_HEAD_TOKENS; t++) acc[t] = 0.0f;
  for (int32_t g = lane; g < groups; g += HALO_WAVE) {
    const int32_t h0 = g * group;
    const halo_u32x4 raw = vector ? halo_load_u32x4(head + static_cast<int64_t>(h0) * element_bytes) : halo_u32x4{0, 0, 0, 0};
    HALO_UNROLL
    for (int quarter = 0; quarter < group / 4; quarter++) {
      const int32_t hq = h0 + 4 * quarter;
      float w[4];
      if (vector) {
        halo_widen4<Dtype>(raw, quarter, w);
      } else {
        HALO_UNROLL
        for (int e = 0; e < 4; e++) w[e] = hq + e < hidden ? halo_load_widened(head, hq + e, Dtype) : 0.0f;
      }
      HALO_UNROLL
      for (int t = 0; t < HALO_HEAD_TOKENS; t++) {
        if (t < tokens) {
          const float* xt = x + static_cast<int64_t>(t) * hidden + hq;
          if (vector) {
            const halo_u32x4 xv = halo_load_u32x4(xt);
            acc[t] += w[0] * halo_bits_f32(xv.x);
            acc[t] += w[1] * halo_bits_f32(xv.y);
            acc[t] += w[2] * halo_bits_f32(xv.z);
            acc[t] += w[3] * halo_bits_f32(xv.w);
          } else {
            HALO_UNROLL
            for (int e = 0; e < 4; e++)
              if (hq + e < hidden) acc[t] += w[e] * xt[e];
          }
        }
      }
    }
  }
  HALO_UNROLL
  for (int t = 0; t < HALO_HEAD_TOKENS; t++) {
    if (t < tokens) {
      const float total = halo_wave_sum_f32(acc[t]);
      if (lane == 0) args.logits[static_cast<int64_t>(t0 + t) * args.vocab + v] = total;
    }
  }
}

// Grid (ceil(vocab / 8), ceil(n / 8)); no barriers, so a wave past the last vocab row leaves on its own.
HALO_KERNEL(halo_lm_head, halo_lm_head_args, HALO_HEAD_THREADS) {
  const int32_t v = static_cast<int32_t>(halo_block_x() * HALO_HEAD_ROWS + halo_wave_index());
  const int32_t t0 = static_cast<int32_t>(halo_block_y()) * HALO_HEAD_TOKENS;
  if (v >= args.vocab || t0 >= args.n) return;
  const int32_t tokens = halo_min_i32(args.n - t0, HALO_HEAD_TOKENS);
  const int32_t lane = static_cast<int32_t>(halo_lane());
  if (args.dtype == HALO_GPU_F16) halo_lm_head_row<HALO_GPU_F16>(args, v, t0, tokens, lane);
  else if (args.dtype == HALO_GPU_BF16) halo_lm_head_row<HALO_GPU_BF16>(args, v, t0, tokens, lane);
  else halo_lm_head_row<HALO_GPU_F32>(args, v, t0, tokens, lane);
}

#endif
