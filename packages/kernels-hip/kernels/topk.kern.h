// topk.kern.h: greedy argmax and top-k on the device in two phases (halo_topk_args, halo_topk_merge_args).
//
// Ranking (a strict total order, because ids are distinct): higher key first, lower id on ties, NaN after every number
// (NaNs by id), where key = min(value, FLT_MAX) — +inf ties with FLT_MAX and loses to it on id, as the contract's
// argmaxRows and topKRows rank it (−0 and +0 tie). Argmax mode keeps only values above −inf as candidates, so a row of
// NaN / −inf gives id −1. Because the order is total, the result does not depend on reduction order: any correct
// selection gives the same ids, and the twin is a plain sort.
//
// Phase 1, block (row, span of HALO_TOPK_SPAN ids): each thread holds 16 values in registers (ids thread + 256 j) and
// its current best; k rounds of a block-wide best (wave butterfly, then waves 0…7 through shared memory, double-
// buffered so one barrier a round suffices); the thread that owned the winner drops it and rescans its 16.
// Phase 2, block per row: the same k rounds over the heads of the per-span lists (each already best first), a thread
// per list (up to HALO_TOPK_LISTS lists per thread, so vocab ≤ 256 · 4 · 4096 ≈ 4.2 M ids).
#ifndef HALO_TOPK_KERN_H
#define HALO_TOPK_KERN_H

#include "common.kern.h"

#define HALO_TOPK_PER_THREAD (HALO_TOPK_SPAN / HALO_TOPK_THREADS)
#define HALO_TOPK_LISTS 4

/** Whether candidate (a, ia) ranks before (b, ib); values are raw logits; id −1 is an empty slot, after everything. */
HALO_DEVICE bool halo_topk_better(float a, int32_t ia, float b, int32_t ib) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  const bool nan_a = halo_isnan(a), nan_b = halo_isnan(b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a) {
    const float ka = a > halo_flt_max() ? halo_flt_max() : a;
    const float kb = b > halo_flt_max() ? halo_flt_max() : b;
    if (ka != kb) return ka > kb;
  }
  return ia < ib;
}

/** The best of every thread's (value, id) in the block; every thread of the block calls it and gets the winner.
 *  `slots_*` are [2][8] shared arrays, `round` picks the half (see above). */
HALO_DEVICE void halo_topk_block_best(float* value, int32_t* id, float* slots_value, int32_t* slots_id, int32_t round) {
  float v = *value;
  int32_t i = *id;
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) {
    const unsigned from = halo_lane() ^ mask;
    const float ov = halo_exchange_f32(v, from);
    const int32_t oi = static_cast<int32_t>(halo_exchange_u32(static_cast<uint32_t>(i), from));
    if (halo_topk_better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
  const int32_t half = (round & 1) * HALO_WAVES(HALO_TOPK_THREADS);
  if (halo_lane() == 0) {
    slots_value[half + halo_wave_index()] = v;
    slots_id[half + halo_wave_index()] = i;
  }
  halo_barrier();
  v = slots_value[half];
  i = slots_id[half];
  for (int32_t w = 1; w < HALO_WAVES(HALO_TOPK_THREADS); w++) {
    if (halo_topk_better(slots_value[half + w], slots_id[half + w], v, i)) {
      v = slots_value[half + w];
      i = slots_id[half + w];
    }
  }
  *value = v;
  *id = i;
}

/** k as the kernels use it: 1 in argmax mode, else clamped to 1 … HALO_TOPK_MAX. */
HALO_DEVICE int32_t halo_topk_rounds(int32_t k, int32_t argmax) { return argmax != 0 ? 1 : k < 1 ? 1 : k > HALO_TOPK_MAX ? HALO_TOPK_MAX : k; }

// Padding slots are (id −1, value −inf).
HALO_KERNEL(halo_topk, halo_topk_args, HALO_TOPK_THREADS) {
  HALO_SHARED(float, slots_value, 2 * HALO_WAVES(HALO_TOPK_THREADS));
  HALO_SHARED(int32_t, slots_id, 2 * HALO_WAVES(HALO_TOPK_THREADS));
  const int32_t row = static_cast<int32_t>(halo_block_x()), block = static_cast<int32_t>(halo_block_y());
  if (row >= args.n || block >= args.blocks) return;  // uniform over the block
  const int32_t thread = static_cast<int32_t>(halo_thread());
  const int32_t k = halo_topk_rounds(args.k, args.argmax);
  const int32_t begin = block * HALO_TOPK_SPAN;
  const float* logits = args.logits + static_cast<int64_t>(row) * args.vocab;

  float values[HALO_TOPK_PER_THREAD];
  uint32_t live = 0;  // bit j: element j is still a candidate
  HALO_UNROLL
  for (int j = 0; j < HALO_TOPK_PER_THREAD; j++) {
    const int32_t id = begin + thread + HALO_TOPK_THREADS * j;
    values[j] = id < args.vocab ? logits[id] : 0.0f;
    if (id < args.vocab && (args.argmax == 0 || values[j] > -halo_inf())) live |= 1u << j;
  }
  float best_value = 0.0f;
  int32_t best_id = -1;
  HALO_UNROLL
  for (int j = 0; j < HALO_TOPK_PER_THREAD; j++) {
    const int32_t id = begin + thread + HALO_TOPK_THREADS * j;
    if ((live >> j & 1u) != 0 && halo_topk_better(values[j], id, best_value, best_id)) {
      best_value = values[j];
      best_id = id;
    }
  }

  const int64_t out = (static_cast<int64_t>(row) * args.blocks + block) * k;
  for (int32_t r = 0; r < k; r++) {
    float value = best_value;
    int32_t id = best_id;
    halo_topk_block_best(&value, &id, slots_value, slots_id, r);
    if (thread == 0) {
      args.cand_ids[out + r] = id;
      args.cand_values[out + r] = id >= 0 ? value : -halo_inf();
    }
    if (id >= 0 && id == best_id) {  // this thread owned the winner: drop it, rescan
      live &= ~(1u << ((id - begin - thread) / HALO_TOPK_THREADS));
      best_value = 0.0f;
      best_id = -1;
      HALO_UNROLL
      for (int j = 0; j < HALO_TOPK_PER_THREAD; j++) {
        const int32_t jd = begin + thread + HALO_TOPK_THREADS * j;
        if ((live >> j & 1u) != 0 && halo_topk_better(values[j], jd, best_value, best_id)) {
          best_value = values[j];
          best_id = jd;
        }
      }
    }
  }
}

// Phase 2: thread th merges lists th, th + 256, …; `head[j]` is how far list j has been consumed.
HALO_KERNEL(halo_topk_merge, halo_topk_merge_args, HALO_TOPK_THREADS) {
  HALO_SHARED(float, slots_value, 2 * HALO_WAVES(HALO_TOPK_THREADS));
  HALO_SHARED(int32_t, slots_id, 2 * HALO_WAVES(HALO_TOPK_THREADS));
  const int32_t row = static_cast<int32_t>(halo_block_x());
  if (row >= args.n) return;
  const int32_t thread = static_cast<int32_t>(halo_thread());
  const int32_t k = halo_topk_rounds(args.k, args.argmax);
  const int32_t blocks = halo_min_i32(args.blocks, HALO_TOPK_THREADS * HALO_TOPK_LISTS);
  const int32_t* cand_ids = args.cand_ids + static_cast<int64_t>(row) * args.blocks * k;
  const float* cand_values = args.cand_values + static_cast<int64_t>(row) * args.blocks * k;

  int32_t head[HALO_TOPK_LISTS];
  float head_value[HALO_TOPK_LISTS];
  int32_t head_id[HALO_TOPK_LISTS];
  HALO_UNROLL
  for (int j = 0; j < HALO_TOPK_LISTS; j++) {
    const int32_t list = thread + HALO_TOPK_THREADS * j;
    head[j] = 0;
    head_id[j] = list < blocks ? cand_ids[static_cast<int64_t>(list) * k] : -1;
    head_value[j] = list < blocks ? cand_values[static_cast<int64_t>(list) * k] : 0.0f;
  }
  for (int32_t r = 0; r < k; r++) {
    float value = 0.0f;
    int32_t id = -1, owner = -1;
    HALO_UNROLL
    for (int j = 0; j < HALO_TOPK_LISTS; j++) {
      if (halo_topk_better(head_value[j], head_id[j], value, id)) {
        value = head_value[j];
        id = head_id[j];
        owner = j;
      }
    }
    const int32_t mine = id;
    halo_topk_block_best(&value, &id, slots_value, slots_id, r);
    if (thread == 0) {
      args.ids[static_cast<int64_t>(row) * k + r] = id;
      args.values[static_cast<int64_t>(row) * k + r] = id >= 0 ? value : -halo_inf();
    }
    if (id >= 0 && id == mine) {  // ids are distinct, so exactly one thread advances one list
      HALO_UNROLL
      for (int j = 0; j < HALO_TOPK_LISTS; j++) {
        if (j == owner) {
          const int32_t list = thread + HALO_TOPK_THREADS * j;
          head[j]++;
          const int64_t at = static_cast<int64_t>(list) * k + head[j];
          head_id[j] = head[j] < k ? cand_ids[at] : -1;
          head_value[j] = head[j] < k ? cand_values[at] : 0.0f;
        }
      }
    }
  }
}

#endif
