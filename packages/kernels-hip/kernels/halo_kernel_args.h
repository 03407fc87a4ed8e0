// halo_kernel_args.h: the argument block of every GPU kernel (one struct per kernel, passed by value as the kernel's
// only parameter), shared by the kernels, the host that launches them and the emulator. Pointers are device addresses
// (host addresses under the emulator). Every shape is in a comment; block sizes and tiles are the constants below.
#ifndef HALO_KERNEL_ARGS_H
#define HALO_KERNEL_ARGS_H

#include <stdint.h>

/** Float table storage (`dtype` fields). */
enum halo_gpu_dtype : int32_t { HALO_GPU_F32 = 0, HALO_GPU_F16 = 1, HALO_GPU_BF16 = 2 };

/**
 * halo-g2, the GPU packing: 2.0 bits per weight, rows of `chunks` 16-byte chunks of 64 weights (K padded to a
 * multiple of 64 with code 1 = 0). A chunk is four little-endian 32-bit words; word i of a chunk holds weights
 * 16·i … 16·i + 15; weight 16·i + 4·j + b of the chunk (j = 0…3, b = 0…3) is at bits 8·b + 2·j of word i.
 * So `(word >> 2·j) & 0x03030303` is four unsigned codes whose byte b pairs with byte b of activation word
 * 4·i + j: one dot4 per 4 weights, no unpacking tables. Code c ∈ {0, 1, 2} means c − 1; 3 is invalid.
 * Σ (c − 1)·a = Σ c·a − Σ a, with Σ a of each 64-chunk precomputed once per activation row (chunk_sums).
 * One lane loads one chunk (16 bytes); a wave reads 512 contiguous bytes of a row: coalesced on every GPU.
 */
#define HALO_G2_CHUNK 64
#define HALO_G2_CHUNK_BYTES 16

#define HALO_MATMUL_THREADS 256  // 8 waves; a wave computes one output row for the block's tokens
#define HALO_MATMUL_ROWS 8       // rows per block
#define HALO_MATMUL_TOKENS 8     // tokens per block (grid.y tiles the batch): weights are read once per 8 tokens
#define HALO_ROW_THREADS 256     // one block per row: embedding, norm + quantise, RoPE + KV write
#define HALO_ATTN_THREADS 32     // one wave per (row, head, split)
#define HALO_ATTN_TILE 64        // positions per split-KV block
#define HALO_MAX_HEAD_DIM 256    // head_dim ≤ this, and a multiple of 2 (RoPE) — each lane holds head_dim / 32 values
#define HALO_HEAD_THREADS 256    // LM head: a wave per vocab row, 8 rows and up to 8 token rows per block
#define HALO_HEAD_ROWS 8
#define HALO_HEAD_TOKENS 8
#define HALO_TOPK_THREADS 256
#define HALO_TOPK_MAX 64         // device top-k up to this k; larger k reads the logits back
#define HALO_TOPK_SPAN 4096      // vocab ids per phase-1 block
#define HALO_ABSMAX_FLOOR 1e-5f  // the reference's per-token absmax floor (PER_TOKEN_ABSMAX_FLOOR)

/** Gated activation before a norm (halo_norm_quant_args.mode). */
enum halo_gpu_norm_mode : int32_t { HALO_NORM_PLAIN = 0, HALO_NORM_RELU2 = 1, HALO_NORM_SILU = 2 };

/** x[t][:] = table[tokens[t]][:] widened to f32. grid (n), block HALO_ROW_THREADS. */
struct halo_embed_args {
  const void* table;      // [vocab][hidden] of dtype
  const int32_t* tokens;  // [n]
  float* x;               // [n][hidden]
  int32_t n, hidden, vocab, dtype;
};

/**
 * RMSNorm of one row per block, optionally of act(gate)·up first, then BitNet per-token int8 quantisation, rounding
 * where the reference backend rounds (its ffn-activation.ts, rms-norm.ts, quantize.ts). Row t reads input row
 * `row_index ? row_index[t] : t`:
 *   mode PLAIN: v = in[row][0 … width)
 *   mode RELU2 / SILU: v[i] = f32(act(g)·u) in float64 for g = in[row][i], u = in[row][width + i] (gate | up fused rows;
 *   relu² = max(g,0)², silu = g/(1+e^−g) with V8's exp), WRITTEN OVER in[row][i] as the reference writes it over gate
 *   (so the rows of a gated launch must be distinct).
 * inv = 1 / sqrt(Σ v²/width + eps) in float64; normed[i] = f32(v[i]·inv·weight[i]), products in float64.
 * With `codes`: scale[t] = f32(127 / max(absmax(normed), HALO_ABSMAX_FLOOR)); codes[t][i] = clamp(round half to even of
 * the exact normed[i]·scale, −128, 127), 0 for width ≤ i < padded; chunk_sums[t][c] = Σ codes[t][64c … 64c+63].
 * With `normed_out`: normed rows as f32 (the output norm feeding the LM head). grid (n), block HALO_ROW_THREADS.
 */
struct halo_norm_quant_args {
  float* in;                 // [rows][in_stride] (the gate half rewritten in the gated modes)
  int32_t in_stride;
  const int32_t* row_index;  // [n] or null
  const float* weight;       // [width]
  int32_t n, width, padded, mode;  // padded: a multiple of 64 ≥ width
  double eps;                // the config's epsilon as given (a float64: 1e-5 is not an f32 value)
  int8_t* codes;             // [n][padded] or null
  float* scales;             // [n] (with codes)
  int32_t* chunk_sums;       // [n][padded / 64] (with codes)
  float* normed_out;         // [n][width] or null
};

/**
 * Ternary matmul over halo-g2 rows and per-token int8 activations, scaled as the reference's ternary-matmul.ts. Row r,
 * token t, with exact integer dots:
 *   block_chunks == 0 (one scale per row):  y = f32((float64(Σ_k (c−1)·a) · wscales[r]) / ascales[t])
 *   block_chunks  > 0 (block scales): y = f32((Σ_b float64(Σ_{k in b} (c−1)·a) · wscales[r·blocks + b]) / ascales[t]),
 *     the sum over blocks b in order in float64 (blocks = chunks / block_chunks; matmul.kern.h computes it exactly in
 *     integers when the row's scales allow, which gives the same bits).
 * accumulate != 0: y[t][r] += the product in f32 (the residual add), else y[t][r] = it.
 * grid (ceil(rows / HALO_MATMUL_ROWS), ceil(n / HALO_MATMUL_TOKENS)), block HALO_MATMUL_THREADS.
 */
struct halo_matmul_args {
  const uint32_t* weights;   // [rows][chunks · 4] halo-g2 words
  const float* wscales;      // [rows] or [rows][chunks / block_chunks]
  int32_t rows, chunks, block_chunks;
  const int8_t* codes;       // [n][chunks · 64]
  const float* ascales;      // [n]
  const int32_t* chunk_sums; // [n][chunks]
  int32_t n;
  float* y;                  // [n][y_stride], rows used
  int32_t y_stride, accumulate;
};

/**
 * KV cache layout: slot s, layer l, position p, element e at ((s·layers + l)·context + p)·kv_dim + e, kv_dim =
 * kv_heads·head_dim, of kv_dtype (HALO_GPU_F32 or HALO_GPU_F16), keys and values in separate buffers.
 *
 * RoPE (NeoX half split) of q and k of each row in place, then k and v of row t stored at slot slots[t], position
 * positions[t], layer `layer`. qkv rows: q [heads·head_dim] | k [kv_dim] | v [kv_dim].
 * rope: [context][head_dim / 2] pairs (cos, sin) of position·theta^(−2i/head_dim), float64 as the host computes them.
 * x1' = f32(x1·cos − x2·sin), x2' = f32(x1·sin + x2·cos) in float64 for x1 = x[i], x2 = x[i + head_dim/2] (the
 * reference's applyRope). grid (n), block HALO_ROW_THREADS.
 */
struct halo_rope_kv_args {
  float* qkv;                // [n][qkv_stride]
  int32_t qkv_stride;
  const int32_t* positions;  // [n]
  const int32_t* slots;      // [n]
  const double* rope;        // [context][head_dim / 2][2] float64 (cos, sin)
  int32_t n, heads, kv_heads, head_dim;
  void* keys;                // cache, layout above
  void* values;
  int32_t layer, layers, context, kv_dtype;
};

/**
 * Split-KV (flash-decoding) attention, phase 1. Block (x = t·heads + h, y = s) attends query head h of row t over
 * positions [s·tile, min((s+1)·tile, positions[t] + 1)) of its sequence (kv head h / (heads / kv_heads)), to the
 * precision of the reference's float64 attention (attention.kern.h: float-float sums, float64 exp):
 * score_p = scale · q·k_p; m = max score; l = Σ exp(score − m); o = Σ exp(score − m)·v_p.
 * Writes partial[(t·heads + h)·splits + s] = { m, l, o[0 … head_dim) } in float64; a split wholly past the row's last
 * position writes m = −inf, l = 0, o = 0. grid (n·heads, splits), block HALO_ATTN_THREADS.
 */
struct halo_attention_args {
  const float* q;            // [n][q_stride], heads·head_dim used (after RoPE)
  int32_t q_stride;
  const void* keys;          // cache, layout above
  const void* values;
  int32_t kv_dtype;
  const int32_t* positions;  // [n]
  const int32_t* slots;      // [n]
  int32_t n, heads, kv_heads, head_dim, layer, layers, context, tile, splits;
  double scale;              // 1 / sqrt(head_dim) in float64, as the reference computes it
  double* partial;           // [n·heads][splits][head_dim + 2] float64: m, l, o
};

/**
 * Phase 2: the log-sum-exp merge of a (row, head)'s splits in float64: M = max m_s;
 * out = f32(Σ_s exp(m_s − M)·o_s / Σ_s exp(m_s − M)·l_s). grid (n·heads), block HALO_ATTN_THREADS.
 */
struct halo_attention_merge_args {
  const double* partial;     // as above
  int32_t n, heads, head_dim, splits;
  float* out;                // [n][out_stride], heads·head_dim used
  int32_t out_stride;
};

/**
 * LM head: logits[i][v] = Σ_h head[v][h]·x[i][h], head widened to f32, lane partial sums over a strided slice then
 * the wave sum. grid (ceil(vocab / HALO_HEAD_ROWS), ceil(n / HALO_HEAD_TOKENS)), block HALO_HEAD_THREADS.
 */
struct halo_lm_head_args {
  const void* head;          // [vocab][hidden] of dtype
  int32_t dtype;
  const float* x;            // [n][hidden] (output-normed rows)
  int32_t n, hidden, vocab;
  float* logits;             // [n][vocab]
};

/**
 * Greedy / top-k on device, phase 1. Block (i, b) ranks ids [b·HALO_TOPK_SPAN, (b+1)·HALO_TOPK_SPAN) of row i and
 * writes its best k (id, value) candidates best first, padding with id −1. Ranking, in both modes: higher
 * min(value, FLT_MAX) first — +inf ranks as FLT_MAX, so FLT_MAX at a lower id beats +inf (the contract's argmaxRows
 * and topKRows, packages/kernels/src/contract/forward.ts) — then lower id on ties, NaN below everything (−inf included).
 * argmax != 0 (k = 1): only values above −inf are candidates. grid (n, ceil(vocab / HALO_TOPK_SPAN)), block
 * HALO_TOPK_THREADS.
 */
struct halo_topk_args {
  const float* logits;       // [n][vocab]
  int32_t n, vocab, k, blocks, argmax;
  int32_t* cand_ids;         // [n][blocks][k]
  float* cand_values;        // [n][blocks][k]
};

/**
 * Phase 2: merges row i's blocks·k candidates by the same ranking into ids[i][0 … k) and values[i][0 … k) (the raw
 * logits). argmax: ids[i][0] = −1 when no candidate exists. grid (n), block HALO_TOPK_THREADS.
 */
struct halo_topk_merge_args {
  const int32_t* cand_ids;   // [n][blocks][k]
  const float* cand_values;
  int32_t n, k, blocks, argmax;
  int32_t* ids;              // [n][k]
  float* values;             // [n][k]
};

#endif
