// embed.kern.h: the token embedding lookup, x[t] = table[tokens[t]] widened to f32 (halo_embed_args).
#ifndef HALO_EMBED_KERN_H
#define HALO_EMBED_KERN_H

#include "common.kern.h"

/** One table element widened to f32 (f16 and bf16 exactly). */
HALO_DEVICE float halo_load_widened(const void* table, int64_t index, int32_t dtype) {
  if (dtype == HALO_GPU_F16) return halo_f16_to_f32(static_cast<const uint16_t*>(table)[index]);
  if (dtype == HALO_GPU_BF16) return halo_bf16_to_f32(static_cast<const uint16_t*>(table)[index]);
  return static_cast<const float*>(table)[index];
}

// Block t copies row tokens[t]; threads stride over hidden (coalesced). A token outside [0, vocab) — the host validates
// tokens first, so only a bug gets here — gives a zero row rather than a read outside the table.
HALO_KERNEL(halo_embed, halo_embed_args, HALO_ROW_THREADS) {
  const int32_t t = static_cast<int32_t>(halo_block_x());
  if (t >= args.n) return;
  const int32_t token = args.tokens[t];
  const bool valid = token >= 0 && token < args.vocab;
  float* out = args.x + static_cast<int64_t>(t) * args.hidden;
  const int64_t base = static_cast<int64_t>(valid ? token : 0) * args.hidden;
  for (int32_t i = static_cast<int32_t>(halo_thread()); i < args.hidden; i += HALO_ROW_THREADS)
    out[i] = valid ? halo_load_widened(args.table, base + i, args.dtype) : 0.0f;
}

#endif
