// twins.h: a plain scalar C++ twin of every GPU kernel in kernels/*.kern.h. Each takes the kernel's own argument
// struct, walks the same grid, and repeats the kernel's arithmetic in the same order (per-lane strided partial sums,
// the wave butterfly of halo_wave_sum_* simulated lane by lane, waves added in order), so under the CPU emulator the
// kernels and their twins agree bit for bit (test/native/kernels_test.cpp compares them with memcmp). Build with
// -ffp-contract=off, like the kernels. No GPU, no emulator: f16 conversions and the ranking are written out here.
#ifndef HALO_TWINS_H
#define HALO_TWINS_H

#include <stdint.h>

#include "../kernels/halo_kernel_args.h"

void halo_embed_twin(const halo_embed_args& args);
void halo_norm_quant_twin(const halo_norm_quant_args& args);
void halo_matmul_twin(const halo_matmul_args& args);
void halo_rope_kv_twin(const halo_rope_kv_args& args);
void halo_attention_twin(const halo_attention_args& args);
void halo_attention_merge_twin(const halo_attention_merge_args& args);
void halo_lm_head_twin(const halo_lm_head_args& args);
/** The per-span candidates as a sort defines them (the ranking is a total order, so the kernel's selection is unique). */
void halo_topk_twin(const halo_topk_args& args);
/** The merge as a sort of the union of the candidate lists (which phase 1 writes best first). */
void halo_topk_merge_twin(const halo_topk_merge_args& args);

/**
 * The contract's definitions, for checking both phases end to end: argmax != 0 is @halo/kernels' argmaxRows (ids[r] is
 * the best id or −1, values[r] its raw logit or −inf), else topKRows (the k best ids by value — +inf ranked as FLT_MAX,
 * NaN last — lower id on ties, with their raw logits; k ≤ vocab). ids / values: [rows][argmax ? 1 : k].
 */
void halo_topk_rows_definition(const float* logits, int32_t rows, int32_t vocab, int32_t k, int32_t argmax, int32_t* ids, float* values);

/** IEEE binary16 ↔ binary32 as hardware converts (round to nearest even; NaN quiet, sign and top payload bits kept). */
float halo_twin_f16_to_f32(uint16_t bits);
uint16_t halo_twin_f32_to_f16(float value);

#endif
