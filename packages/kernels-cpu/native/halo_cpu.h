/* halo_cpu.h: the plain C interface of the halo CPU kernels (packed layouts, kernel table, statuses). */
#ifndef HALO_CPU_H
#define HALO_CPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by native entry points; the binding turns them into HaloErrors. */
typedef enum halo_status {
  HALO_OK = 0,
  HALO_BAD_ARGUMENT = 1,   /* shapes, lengths, options */
  HALO_OUT_OF_MEMORY = 2,  /* an allocation failed */
  HALO_BAD_WEIGHTS = 3,    /* a trit outside {-1, 0, 1} */
  HALO_DISPOSED = 4,       /* a handle used after free */
  HALO_FILE_CHANGED = 5    /* a mapped model file changed (shrank, was rewritten) since it was mapped */
} halo_status;

/*
 * 256 ternary weights of one row, 2 bits per weight (2.0 bits per weight, no per-block scale).
 * Code c = w + 1 in {0, 1, 2} (3 never occurs). Byte p (0..63) holds the codes of
 * k = p + 64·j at bits [2j, 2j+1], j = 0..3: one 64-byte load, a shift by 2j and a mask give 64
 * consecutive unsigned codes lined up with 64 consecutive int8 activations, which is exactly
 * what `vpdpbusd` (u8 × s8, 4-way into s32) and `vpmaddubsw` want. Σ w·x = Σ c·x − Σ x.
 * A row of K weights is ceil(K/256) blocks; padding codes are 1 (w = 0) and padded activations 0.
 */
typedef struct halo_block_i2 {
  uint8_t qs[64];
} halo_block_i2;
#ifdef __cplusplus
static_assert(sizeof(halo_block_i2) == 64, "halo_block_i2 is 64 bytes: 256 weights at 2 bits");
#else
_Static_assert(sizeof(halo_block_i2) == 64, "halo_block_i2 is 64 bytes: 256 weights at 2 bits");
#endif

#define HALO_I2_BLOCK 256
/* Most key positions one attn_tile call takes (its float64 scratch is sized for this). */
#define HALO_ATTN_TILE 128
/* Doubles of scratch one attn_tile call needs (head_dim rounded up to 8). */
#define HALO_ATTN_SCRATCH(group, hd, span) ((2 * (size_t)(span) + (size_t)(group)) * (((size_t)(hd) + 7) / 8 * 8) + (size_t)(group) * ((size_t)(span) + 8))

/* Code of weight k of a row stored as blocks. */
static inline int halo_i2_code(const halo_block_i2* row, int k) {
  const halo_block_i2* b = row + (k >> 8);
  int within = k & 255;
  return (b->qs[within & 63] >> (2 * (within >> 6))) & 3;
}

/* How a KV cache stores keys and values (attn_tile's `kv`). */
typedef enum halo_kv_dtype {
  HALO_KV_F32 = 0,
  HALO_KV_F16 = 1,
  HALO_KV_I8 = 2 /* int8 codes, one f32 scale per (position, KV head) row: see halo_kv_i8_row */
} halo_kv_dtype;

/*
 * The kernel table: one implementation per ISA, chosen at run time. Every entry has a scalar
 * `_ref` twin (kernels_ref.cpp) that the tests compare against on random inputs.
 */
typedef struct halo_kernels {
  const char* name;
  /*
   * y[t·y_stride + (r − r0)] = Σ_k code[r][k] · x[t·x_stride + k] (raw unsigned-code dot, the
   * caller subtracts Σx), rows r in [r0, r1), tokens t in [0, n). w: [rows][nb] blocks.
   * prefetch_next: the first bytes of the next weights this thread will stream (may be NULL).
   */
  void (*gemm_i2)(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride, const void* prefetch_next);
  /* Per-256-block raw dots: y[(t·y_stride) + (r − r0)·nb + b], same inputs as gemm_i2. */
  void (*gemm_i2_blocks)(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride);
  /* y[t·y_stride + (r − r0)] = Σ_h f16(w[r][h]) · x[t·hidden + h] for r in [r0, r1), t < n. */
  void (*head_f16)(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride);
  /* Same with f32 weights. */
  void (*head_f32)(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride);
  /* Same with bf16 weights (the Hugging Face checkpoints' embedding), widened exactly to f32 (bits << 16). */
  void (*head_bf16)(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride);
  /*
   * Int8 weights with a per-row scale and int8 activations (W8A8): q [n][stride] and s [n] are the logit rows
   * quantised once per step by halo_head_i8_activations (stride a multiple of 64 ≥ hidden, zeros past hidden);
   * y = f32(f64(Σ_h q[h]·w[r][h]) · scale[r] / s), the integer dot exact on every path.
   */
  void (*head_i8)(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const int8_t* q, const double* s, int stride, int n, float* y,
                  int y_stride);
  /*
   * Int4 weights (halo_head_i4_row's layout: per row stride/2 bytes of nibble codes, stride/64 u8 group scales `sub`, an
   * f32 row scale and row_sum = Σ_g sub[g]·Σ_{h∈g} c[h]) with the head_i8 activations:
   * y = f32(f64(Σ_g sub[r][g] · Σ_{h∈g} q[h]·c[r][h]) · scale[r] / s), c = nibble − 8; the integer sum is exact (int64)
   * on every path. row_sum lets a path bias the activations to unsigned (q + 128) and subtract 128·row_sum.
   */
  void (*head_i4)(const uint8_t* w, const uint8_t* sub, const float* row_scale, const int32_t* row_sum, int hidden, int r0, int r1, const int8_t* q,
                  const double* s, int stride, int n, float* y, int y_stride);
  /*
   * Attention of `group` query heads (q: [group][hd] f32) over `span` key and value rows stored as `kv` (a
   * halo_kv_dtype; row i at element i·stride), in float64 with exact f32 products: s = (q·k)·scale, m = max s,
   * l = Σ exp(s − m), o = Σ exp(s − m)·v. out: [group][hd + 2] as m, l, o[hd]. scratch: ≥ HALO_ATTN_SCRATCH(group,
   * hd, span) doubles. HALO_KV_I8 rows are int8 codes read as f32(code · scale), row i's scale at
   * key_scales[i·scale_stride] (value_scales likewise); the scale pointers are ignored for the other dtypes.
   */
  void (*attn_tile)(const float* q, int group, int hd, const void* keys, const void* values, int kv, int stride, int span, const float* key_scales,
                    const float* value_scales, int scale_stride, double scale, double* scratch, double* out);
  /*
   * q[i] = clamp(round_half_even(double(x[i]) · s), −128, 127); returns Σ q[i]. Exact: every path gives the
   * same codes (the product of a float and a double-rounded scale is formed in float64, as the reference does).
   */
  int32_t (*quantize_i8)(const float* x, int n, double s, int8_t* q);
  /* Conversions, round to nearest even. */
  void (*f32_to_f16)(uint16_t* dst, const float* src, int n);
  void (*f16_to_f32)(float* dst, const uint16_t* src, int n);
  /*
   * The SiLU-gated FFN product, as the reference computes it: out[i] = f32((g / (1 + exp(−g))) · u) in float64, for
   * g = gate[i], u = up[i]; exp to ~1 ulp on the SIMD paths (the scalar twin calls std::exp).
   */
  void (*silu_mul)(const float* gate, const float* up, int n, float* out);
  /*
   * The per-token GEMM epilogue: y[t·y_stride + r] = f32(f64(raw[t·count + r] − correction[t]) · f64(row_scale[r]) /
   * f64(act_scale[t])) for r < count, t < n. Every path rounds the same two float64 operations, so all give the
   * same floats.
   */
  void (*scale_dots)(const int32_t* raw, int count, int n, const int32_t* correction, const float* act_scale, const float* row_scale, float* y, int y_stride);
  /*
   * The activation-sparse GEMV (the "sparse down" lane): y[r − HALO_SPARSE_TILE·g0] = Σ_i w[r][nz[i]] · x[nz[i]] (the signed
   * ternary dot over the listed columns only, exact int32) for the rows r of tiles [g0, g1) of a matrix of `tiles` row
   * tiles stored as halo_sparse_masks lays it out; nz: n_nz column indices (any order), each x[nz[i]] in [−128, 127].
   * Columns left out of nz are never read: listing only the nonzero activations skips their weights' bytes.
   */
  void (*gemv_i2_sparse)(const uint8_t* masks, int tiles, int g0, int g1, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y);
} halo_kernels;

/* Rows per tile of the sparse layout (one 64-byte line per column per tile). */
#define HALO_SPARSE_TILE 256
/* Row tiles of the sparse layout of a matrix of `rows` rows. */
#define HALO_SPARSE_TILES(rows) (((rows) + HALO_SPARSE_TILE - 1) / HALO_SPARSE_TILE)
/*
 * The sparse layout of a ternary matrix (input-major sign masks, 2 bits per weight like halo_block_i2): column j is
 * HALO_SPARSE_TILES(rows) consecutive 64-byte lines, the line of row tile g (rows [256g, 256g + 256)) at
 * (j·tiles + g)·64 holding 32 bytes of "+1" bits then 32 bytes of "−1" bits, row 256g + i at byte i / 8, bit i % 8 (rows
 * past the matrix: neither bit). A skipped column is a whole skipped run of bytes. Fills the lines of tiles [g0, g1) of
 * every column of `masks` from `rows` rows of nb blocks (codes 0..2).
 */
void halo_sparse_masks(const halo_block_i2* w, int nb, int rows, int cols, int g0, int g1, uint8_t* masks);

/* The scalar gemv_i2_sparse (the NEON tables' entry). */
void halo_gemv_i2_sparse_ref(const uint8_t* masks, int tiles, int g0, int g1, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y);

extern const halo_kernels halo_kernels_ref;
extern const halo_kernels halo_kernels_avx2;
extern const halo_kernels halo_kernels_avx512vnni;
extern const halo_kernels halo_kernels_neon;          /* aarch64 only */
extern const halo_kernels halo_kernels_neon_dotprod;  /* aarch64 only, needs HWCAP_ASIMDDP */
/* x86-64 only: the avx512vnni table with the AMX-INT8 gemm_i2 (kernels_amx.cpp), built on first call; call it only
   when the CPU, the OS and the process permission allow AMX (model.cpp checks). */
extern const halo_kernels* halo_kernels_amx(void);

/* The scalar silu_mul (the NEON tables' entry). */
void halo_silu_mul_ref(const float* gate, const float* up, int n, float* out);

/* The scalar scale_dots (the NEON tables' entry). */
void halo_scale_dots_ref(const int32_t* raw, int count, int n, const int32_t* correction, const float* act_scale, const float* row_scale, float* y,
                         int y_stride);

/* The scalar quantize_i8 (the SIMD paths use it for their tails). */
int32_t halo_quantize_i8_ref(const float* x, int n, double s, int8_t* q);

/* The scalar attention tile (also the NEON tables' entry: attention there is not vectorised yet). */
void halo_attn_tile_ref(const float* q, int group, int hd, const void* keys, const void* values, int kv, int stride, int span, const float* key_scales,
                        const float* value_scales, int scale_stride, double scale, double* scratch, double* out);

/*
 * One KV row of n values stored as int8 (KvDtype "int8", the reference's roundRowThroughInt8): a = max|x| (NaN
 * ignored), *scale = f32(a / 127); codes = clamp(round_half_even(x / scale), −127, 127), NaN → 0; a scale that is 0
 * or not finite stores zero codes and scale 0. Read back as f32(code · scale). Scalar on every path (a KV write is
 * one row per KV head per token), so every path stores the same bytes.
 */
void halo_kv_i8_row(const float* x, int n, int8_t* codes, float* scale);

/*
 * The int8 head's activations: rows x [n][hidden] quantised per token to q [n][stride] (zeros past hidden; values in
 * [−127, 127]) with s[t] = f32(127 / max(absmax, 1e-5)); shared by every path so their codes are identical.
 */
void halo_head_i8_activations(const float* x, int n, int hidden, int stride, int8_t* q, double* s);
/* The q stride halo_head_i8_activations and head_i8 use for `hidden` (a multiple of 64). */
#define HALO_HEAD_I8_STRIDE(hidden) (((hidden) + 63) / 64 * 64)

/* Weights per int4 head group (one u8 sub-scale each). */
#define HALO_HEAD_I4_GROUP 64
/* Largest hidden size the int4 head takes: its int32 SIMD lanes stay exact up to here (see head_i4). */
#define HALO_HEAD_I4_MAX_HIDDEN 65536
/*
 * One LM head row as int4 (the "int4" head): stride = HALO_HEAD_I8_STRIDE(hidden), groups of 64 weights. Group g's
 * ideal scale d_g is, among f32(max|x| / 7) × {1, 0.95, 0.9, 0.85, 0.8, 0.75} (NaN ignored), the one whose rounding
 * to [−7, 7] has the least squared error (clipping the largest weights can lower it). *scale = f32(max_g d_g / 255);
 * sub[g] = clamp(round_half_even(d_g / scale), 0, 255); codes c = clamp(round_half_even(x / (sub[g]·scale)), −7, 7) (0 where
 * sub[g] is 0 or x is NaN), stored as the nibble c + 8: byte 32·g + j holds weight 64·g + j in its low nibble and
 * 64·g + 32 + j in its high nibble (padding past hidden: c = 0). A row whose largest d_g is 0 or not finite stores
 * scale 0 and zero codes. *sum = Σ_g sub[g]·Σ c. 4.15 bits per weight at hidden 2560 (codes, sub-scales, scale, sum).
 */
void halo_head_i4_row(const float* x, int hidden, uint8_t* codes, uint8_t* sub, float* scale, int32_t* sum);

/* bf16 bits to f32: exact (the high half of an f32). */
static inline float halo_bf16_to_f32(uint16_t bits) {
  union {
    uint32_t u;
    float f;
  } v;
  v.u = (uint32_t)bits << 16;
  return v.f;
}

/* Scalar half-precision conversions (round to nearest even), used by the _ref kernels and loaders. */
uint16_t halo_f32_to_f16_ref(float value);
float halo_f16_to_f32_ref(uint16_t value);

#ifdef __cplusplus
}
#endif

#endif
