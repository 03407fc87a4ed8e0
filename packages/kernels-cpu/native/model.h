// model.h: the CPU backend's model (packed weights, KV slots, scratch) and the ops the binding exposes.
#ifndef HALO_MODEL_H
#define HALO_MODEL_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "file_map.h"
#include "halo_cpu.h"
#include "thread_pool.h"

namespace halo {

/** Kernels for an ISA name (`scalar`, `avx2`, `avx512vnni`, or `auto`); nullptr when this CPU lacks it. */
const halo_kernels* kernels_for(const std::string& isa);
/** ISAs this CPU runs, best first. */
std::vector<std::string> available_isas();
/** The shared pool of `threads` workers (created once per size, never torn down). */
ThreadPool* pool_for(int threads);

/** Memory from mmap, optionally advised into transparent huge pages. */
struct Region {
  void* data = nullptr;
  size_t bytes = 0;
  bool huge = false;
  Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();
  bool allocate(size_t size, bool huge_pages);
};

/**
 * A ternary matrix in halo_block_i2 rows with scales `[rows][cols / scale_block]`
 * (scale_block == cols: one scale per row).
 */
struct Matrix {
  int rows = 0;
  int cols = 0;
  int nb = 0;                      // 256-weight blocks per row
  halo_block_i2* codes = nullptr;  // [rows][nb]: arena_codes, or borrowed from a mapped file
  halo_block_i2* arena_codes = nullptr;  // this matrix's own space in the arena
  bool mapped = false;             // codes point into a file mapping
  int scale_block = 0;
  std::vector<float> scales;       // [rows][cols / scale_block]
  std::unique_ptr<Region> sparse;  // the same codes in the sparse layout (halo_sparse_masks), when the sparse lane is on
};

/**
 * Builds m.sparse (huge pages when asked) from m.codes, the row tiles split over the pool. HALO_OUT_OF_MEMORY when the
 * region cannot be allocated.
 */
halo_status build_sparse(ThreadPool* pool, Matrix& m, bool huge_pages);

/** Quantised activations of n rows. */
struct Activations {
  int n = 0;
  int width = 0;
  int padded = 0;                  // width rounded up to 256
  bool per_token = true;
  std::vector<int8_t> values;      // [n][padded], zeros past width
  std::vector<float> scales;       // per-token: [n] (s = 127/absmax); q8k: [n][width/256] (d)
  std::vector<int32_t> block_sums; // [n][padded/256] Σ codes of each 256-block
  std::vector<int32_t> row_sums;   // [n]
  /** Quantises with the kernels `k` (codes are identical on every path). */
  void quantize(const halo_kernels* k, const float* x, int rows, int w, bool per_token_scheme);
  /** Sizes the arrays for rows × w; then quantize_rows fills rows [t0, t1) of x [rows][w] (thread-safe per range). */
  void prepare(int rows, int w, bool per_token_scheme);
  void quantize_rows(const halo_kernels* k, const float* x, int t0, int t1);
};

/** y[t][r] for r < m.rows: the ternary product with scales, as the reference defines it. */
void matmul(ThreadPool* pool, const halo_kernels* k, const Matrix& m, const Activations& a, float* y, int y_stride, const Matrix* next);

/**
 * Row `t` of `a` times m through its sparse layout, reading only the columns `nz` lists (the nonzero activations of
 * that row, n_nz of them): y[r] for r < m.rows, the same floats as matmul's (the signed dot is the same integer and goes
 * through the same scale_dots). The listed columns are split over the pool and the partial sums added. Needs the
 * per-token scheme and one scale per row.
 */
void sparse_matmul(ThreadPool* pool, const halo_kernels* k, const Matrix& m, const Activations& a, int t, const int32_t* nz, int n_nz, float* y);

/** The columns of row t of `a` whose activation is nonzero, in order, into nz (≥ a.width entries); returns how many. */
int nonzero_columns(const Activations& a, int t, int32_t* nz);

struct Config {
  int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, context, max_sequences;
  double rope_theta, eps;
  bool relu2;
  int kv_dtype;  // halo_kv_dtype
  bool per_token;
  /** Bytes of one cached key or value element (int8 slots also hold one f32 scale per position and KV head). */
  size_t kv_elem() const { return kv_dtype == HALO_KV_F32 ? 4 : kv_dtype == HALO_KV_F16 ? 2 : 1; }
  /** Bytes of one sequence slot: keys then values [layers][context][kv_heads·head_dim], then for int8 the key
   *  scales and value scales [layers][context][kv_heads] as f32. */
  size_t kv_slot_bytes() const {
    const size_t rows = static_cast<size_t>(layers) * context;
    const size_t codes = 2 * rows * kv_heads * head_dim * kv_elem();
    return kv_dtype == HALO_KV_I8 ? (codes + 3) / 4 * 4 + 2 * rows * kv_heads * sizeof(float) : codes;
  }
};

struct Layer {
  std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;
  Matrix qkv, o, gate_up, down;  // q|k|v and gate|up fused by rows
};

enum class HeadType { F16 = 0, F32 = 1, I8 = 2, BF16 = 3, I4 = 4 };

/** Storage of a float table (the embedding, a float head). bf16 is what Hugging Face checkpoints ship. */
enum class FloatType { F32 = 0, F16 = 1, BF16 = 2 };
inline size_t float_bytes(FloatType t) { return t == FloatType::F32 ? 4 : 2; }
/** The head that reads a float table of this type as is. */
inline HeadType head_type_of(FloatType t) { return t == FloatType::F32 ? HeadType::F32 : t == FloatType::F16 ? HeadType::F16 : HeadType::BF16; }
/** Row `row` of a [rows][n] float table widened to f32 (exact for every type). */
void float_row(const halo_kernels* k, FloatType t, const void* base, size_t row, int n, float* out);

/** An LM head quantised to int8 (HeadType::I8) or int4 (HeadType::I4) rows, with what its kernel reads besides them. */
struct QuantisedHead {
  Region codes;                // I8: [vocab][hidden] int8; I4: [vocab][HALO_HEAD_I8_STRIDE(hidden) / 2] nibbles
  std::vector<float> scales;   // [vocab] row scales
  std::vector<uint8_t> sub;    // I4: [vocab][HALO_HEAD_I8_STRIDE(hidden) / 64] group sub-scales
  std::vector<int32_t> sums;   // I4: [vocab] Σ_g sub·Σ codes (halo_head_i4_row)
};
/**
 * Quantises `src` ([vocab][hidden] of `type`) to `quant` (I8: quantize_head_row, I4: halo_head_i4_row) into `out`,
 * rows split over the pool. HALO_BAD_ARGUMENT for another HeadType or an int4 head wider than HALO_HEAD_I4_MAX_HIDDEN.
 */
halo_status quantize_head(ThreadPool* pool, const halo_kernels* k, FloatType type, const void* src, int vocab, int hidden, HeadType quant, bool huge_pages,
                          QuantisedHead& out);

/** Drops this process's mappings of the whole pages inside [p, p + bytes) of a file mapping (MADV_DONTNEED: the
 *  page cache keeps them, RSS does not; a later read faults them back in). Advice only: failures are ignored. */
void drop_pages(const void* p, size_t bytes);

/**
 * A float head (or tied embedding) being copied out of its file mapping into huge pages by a thread of its own, so
 * the load does not wait for it: steps read `src` (the same bytes) until `done`, then the first step after it joins
 * the thread, drops the mapped pages and reads the copy. Destroying it (the model's dispose) stops and joins the copy.
 */
struct BackgroundCopy {
  std::thread thread;
  std::atomic<bool> done{false};
  std::atomic<bool> abort{false};
  const void* src = nullptr;  // the mapped bytes steps read while the copy runs
  size_t bytes = 0;
  bool tied = false;  // the head is the embedding: token lookups move too
  BackgroundCopy() = default;
  BackgroundCopy(const BackgroundCopy&) = delete;
  BackgroundCopy& operator=(const BackgroundCopy&) = delete;
  ~BackgroundCopy() {
    abort.store(true, std::memory_order_relaxed);
    if (thread.joinable()) thread.join();
  }
};

struct Model {
  Config c{};
  const halo_kernels* k = nullptr;
  ThreadPool* pool = nullptr;
  std::vector<Layer> layers;
  Region arena;                    // every ternary code block, in execution order
  size_t arena_used = 0;
  std::vector<std::unique_ptr<FileMap>> maps;  // files weights are borrowed from, one mapping per path
  FileChange file_change;          // set (under step_mutex) once a mapped file is found changed; never cleared
  Region embedding;                // [vocab][hidden] f16, bf16 or f32, when copied
  const void* embedding_data = nullptr;  // embedding.data, or a mapped file's bytes
  FloatType embedding_type = FloatType::F16;
  Region head;                     // [vocab][hidden] f16 / bf16 / f32 when copied (not tied, not mapped)
  QuantisedHead quantised_head;    // the I8 / I4 head
  const void* head_data = nullptr; // head.data, quantised_head.codes.data, a mapped file's bytes, or the embedding
  HeadType head_type = HeadType::F16;
  std::vector<float> output_norm;
  std::vector<std::unique_ptr<Region>> slots;  // per slot: keys, values [layers][context][kv_heads·head_dim], int8 scales
  std::mutex step_mutex;
  // Scratch, grown to the largest batch seen.
  std::vector<float> x, normed, qkv_out, attn_out, gate_up_out, delta;
  std::vector<const void*> key_ptrs, value_ptrs;              // per row of a step: its sequence's keys / values
  std::vector<const float*> key_scale_ptrs, value_scale_ptrs;  // and, for an int8 cache, their scales
  Activations act;
  std::vector<float> attn_partial;
  std::vector<double> rope_table_;  // [n][head_dim] cos|sin of this step's positions
  std::vector<float> head_in;       // [n_logits][hidden] normed rows the LM head reads
  std::vector<int8_t> head_q;       // int8 / int4 head: those rows quantised ([n_logits][HALO_HEAD_I8_STRIDE])
  std::vector<double> head_qs;      // int8 / int4 head: their scales
  // The sparse down lane (Matrix::sparse of every down matrix): a one-row step takes it when at most this share of the
  // down input is nonzero (0: never). Counters for nativeInfo, read on the JS thread while steps run.
  double sparse_max_density = 0;
  std::vector<int32_t> sparse_nz;
  std::atomic<uint64_t> sparse_calls{0}, sparse_dense_calls{0}, sparse_columns{0}, sparse_nonzero{0};
  // True from the head copy's start until the step that switches to it (read by nativeInfo on the JS thread).
  std::atomic<bool> head_copy_pending{false};
  // The head's copy into huge pages while it runs (head_data / embedding_data already name the copy). The last member:
  // destroyed, so joined, before the regions it writes and the file mappings it reads.
  std::unique_ptr<BackgroundCopy> head_copy;

  /** RMSNorm of in [n][d] into `normed`, then quantised into `act`, rows split over the pool. */
  void norm_quantize(const float* in, const float* weight, int d, int n);
  /** Maps `path` (once per path, pages populated) and returns its bytes. */
  halo_status map_file(const std::string& path, const uint8_t** data, size_t* bytes);
  /** HALO_FILE_CHANGED (and file_change set) when a mapped file changed since it was mapped, now or before. */
  halo_status check_files();
  /** A copy of file_change, taken under step_mutex. */
  FileChange file_change_copy();
  /** Whether `p` points into one of the file mappings. */
  bool in_file_map(const void* p) const;
  halo_status alloc_matrix(Matrix& m, int rows, int cols, int scale_block, const float* scales);
  /** Every tensor a step reads has been set (a step on a half-loaded model is refused, not a crash). */
  bool ready() const;
  /**
   * One forward pass of n rows: appends their keys and values to their slots, writes the logits of `logit_rows`
   * ([n_logits][vocab]) and, when `n_hidden` > 0, the residual stream of `hidden_rows` after the last layer, before
   * the output norm ([n_hidden][hidden]). Every argument is checked before any KV row is written.
   */
  halo_status step(const int32_t* tokens, const int32_t* positions, const int32_t* slot_ids, int n, const int32_t* logit_rows, int n_logits, float* logits,
                   const int32_t* hidden_rows = nullptr, int n_hidden = 0, float* hidden = nullptr);

  // KV slot layout (Config::kv_slot_bytes): keys then values [layers][context][kv_heads·head_dim] of kv_elem() bytes,
  // then for int8 the key scales and value scales [layers][context][kv_heads] f32 at kv_scales_at() bytes.
  /** Elements of one layer of one slot's keys (or values). */
  size_t kv_layer_stride() const { return static_cast<size_t>(c.context) * c.kv_heads * c.head_dim; }
  /** Element offset of the values after the keys. */
  size_t kv_values_offset() const { return static_cast<size_t>(c.layers) * kv_layer_stride(); }
  /** Byte offset of the int8 scales. */
  size_t kv_scales_at() const { return (2 * kv_values_offset() * c.kv_elem() + 3) / 4 * 4; }
  /** Scales of one layer of one slot's keys (or values). */
  size_t kv_scale_layer_stride() const { return static_cast<size_t>(c.context) * c.kv_heads; }
  /**
   * Stores one position's key and value rows (`[kv_heads·head_dim]` f32 each) of one layer in an allocated slot as its
   * dtype stores them (f16 through the kernels' conversion, int8 per KV head with halo_kv_i8_row, f32 as is): the one
   * KV write of a step and of import_slot. Rows of different positions may be written concurrently.
   */
  void write_kv(int slot, int layer, int position, const float* key, const float* value);
  /** One stored position's key and value rows widened to f32 exactly as attention reads them (f32(code·scale) for int8). */
  void read_kv(int slot, int layer, int position, float* key, float* value) const;
  /** Slot `to` gets the first `length` positions of slot `from` (codes and int8 scales), under step_mutex. */
  halo_status copy_slot(int from, int to, int length);
  /** Positions [0, length) of a slot as f32 rows `keys`/`values` [layers][length][kv_heads·head_dim], under step_mutex. */
  halo_status export_slot(int slot, int length, float* keys, float* values);
  /** Writes f32 rows [layers][length][kv_heads·head_dim] into positions [0, length) of a slot through write_kv. */
  halo_status import_slot(int slot, int length, const float* keys, const float* values);
};

/** The greedy id of each of `rows` rows of `vocab` logits: highest logit (+∞ ranked as FLT_MAX, as the sampler's greedy
 *  sanitises it), lowest id on ties, NaN never wins (a row with no value above −∞ gives −1: nothing to sample). The twin
 *  of argmaxRows in @halo/kernels. */
void argmax_rows(const float* logits, int rows, int vocab, int32_t* out);
/** The `k` best ids of each row with their logits, best first: higher logit, then lower id; NaN ranks last (below −∞).
 *  The twin of topKRows in @halo/kernels. ids, values: [rows][k]; 1 ≤ k ≤ vocab. */
void top_k_rows(const float* logits, int rows, int vocab, int k, int32_t* ids, float* values);

/** One LM head row as int8 with its scale absmax/127 (round to nearest, clamped to ±127); returns the scale. */
float quantize_head_row(const float* row, int hidden, int8_t* dst);

/** Packs trits [rows][cols] (values in {-1,0,1}) into m.codes rows [row0, row0+rows). */
halo_status pack_rows(Matrix& m, int row0, const int8_t* trits, int rows);
/**
 * Rows [row0, row0 + rows) of m from bytes already in halo_block_i2 layout (`halo-i2x256`): every code is checked
 * (3 is refused with HALO_BAD_WEIGHTS); with `borrow` (bytes in a file mapping that outlives the model) the matrix
 * points at them instead of copying when its parts are adjacent, else they are copied into the arena.
 */
halo_status place_codes(ThreadPool* pool, Matrix& m, int row0, const uint8_t* src, size_t src_bytes, int rows, bool borrow);
/** Stored packings pack_codes reads directly (the tensor's raw bytes). */
enum class PackedSource {
  HaloV2,  // 2-bit codes, 4 per byte LSB-first, rows of ceil(cols/4) bytes; 00 = -1, 01 = 0, 10 = +1, 11 = 0
  Tq2_0,   // llama.cpp TQ2_0: per 256 weights 64 bytes of codes (weight 128h+32n+m in bits 2n of byte 32h+m) + f16 d
  Int8,    // one signed byte per trit; anything outside {-1, 0, 1} -> HALO_BAD_WEIGHTS
  I2S,     // bitnet.cpp I2_S (x86 layout): per 128 weights 32 bytes, byte j holds weights j, 32+j, 64+j, 96+j in
           // bits 7..6, 5..4, 3..2, 1..0; 00 = -1, 01 = 0, 10 = +1, 11 = 0; rows of cols/4 bytes (cols % 128 == 0),
           // the tensor's f32 scale and padding follow the last row
  HfPacked,  // Hugging Face BitNet packed: uint8 [rows/4][cols]; row r of the matrix is byte row r % (rows/4) at bits
             // 2·(r / (rows/4)); code c → c − 1, 3 → 0 (rows % 4 == 0; each call packs a whole tensor)
};
/** Bytes of one stored row of `cols` weights. */
size_t packed_row_bytes(PackedSource packing, int cols);
/** Packs rows [row0, row0 + rows) straight from stored bytes (`src_bytes` long), rows split across the pool. */
halo_status pack_codes(ThreadPool* pool, Matrix& m, PackedSource packing, int row0, const uint8_t* src, size_t src_bytes, int rows);

/** RMSNorm rows (float64 sum of squares, as the reference). */
void rms_norm_rows(const float* x, const float* w, int d, int n, double eps, float* out);
/** NeoX RoPE in place over n rows of heads·head_dim at positions. */
void rope_rows(float* x, int stride, const int32_t* positions, int n, int heads, int head_dim, double theta);
/** cos/sin of every row's position: `[n][head_dim]` (cos in the first half, sin in the second). */
void rope_table(const int32_t* positions, int n, int head_dim, double theta, std::vector<double>& table);
/** NeoX RoPE in place with a table from rope_table. */
void rope_apply(float* x, int stride, const double* table, int n, int heads, int head_dim);

/**
 * Attention of query rows over one sequence's keys/values (f32, f16 or int8), split into tiles of
 * `tile` positions (0: one pass) merged by log-sum-exp in order.
 */
struct AttentionArgs {
  const float* q;               // [n][q_stride], heads·head_dim used
  int q_stride;
  const void* const* keys;      // [n] → [≥ last+1][kv_heads·head_dim] of that row's sequence
  const void* const* values;    // [n] → same
  int kv;                       // halo_kv_dtype of keys and values
  const float* const* key_scales = nullptr;    // HALO_KV_I8: [n] → [≥ last+1][kv_heads] scales of that row's sequence
  const float* const* value_scales = nullptr;  // HALO_KV_I8: same for values
  int n, heads, kv_heads, head_dim;
  const int32_t* last;          // [n] last position each query sees
  int tile;                     // positions per tile, 0 = one pass
  float* out;                   // [n][heads·head_dim]
  const void* prefetch = nullptr;  // what helpers prefetch once done (the o projection's first rows), may be null
  size_t prefetch_bytes = 0;
};
void attention(ThreadPool* pool, const halo_kernels* k, const AttentionArgs& args);

}  // namespace halo

#endif
