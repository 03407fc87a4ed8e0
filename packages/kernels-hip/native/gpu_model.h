// gpu_model.h: a BitNet-style model resident on one halo_gpu::Device — halo-g2 weights, f16/f32 KV slots, scratch
// sized for the largest batch — and one step as a fixed launch sequence (11 kernels per layer plus embedding, output
// norm, LM head and device top-k), replayed as a device graph once a step shape repeats.
#ifndef HALO_GPU_MODEL_H
#define HALO_GPU_MODEL_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "device.h"
#include "halo_kernel_args.h"

namespace halo_gpu {

/** Status numbers shared with the binding and the TypeScript side: Device's Status, then the model's own. */
enum ModelStatus : int {
  MODEL_OK = 0,
  MODEL_NO_RUNTIME = 1,
  MODEL_NO_DEVICE = 2,
  MODEL_NO_CODE_FOR_ARCH = 3,
  MODEL_OUT_OF_MEMORY = 4,
  MODEL_DEVICE_ERROR = 5,
  MODEL_BAD_ARGUMENT = 6,
  MODEL_BAD_WEIGHTS = 7,  // a halo-g2 code 3, a trit outside {-1, 0, 1}
  MODEL_NOT_READY = 8,    // finalize() missing or failed, the device did not open, or the model was disposed
};

/** A model call's outcome: a ModelStatus and, when it failed, what was expected, what was found and what to do. */
struct ModelResult {
  int status = MODEL_OK;
  std::string message;
  bool ok() const { return status == MODEL_OK; }
  static ModelResult success() { return {}; }
  static ModelResult failure(int status, std::string message) { return {status, std::move(message)}; }
  static ModelResult from(const Result& r) { return {static_cast<int>(r.status), r.message}; }
};

struct ModelConfig {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0, context = 0;
  int max_sequences = 0;     // KV slots
  int max_batch_tokens = 0;  // rows of one step (and logit rows: every row may ask for its logits)
  double rope_theta = 0, eps = 0;
  bool relu2 = true;              // relu²(gate)·up, else silu(gate)·up
  int kv_dtype = HALO_GPU_F16;    // HALO_GPU_F16 or HALO_GPU_F32
  bool graphs = true;             // replay device graphs for repeated step shapes (when the device has them)
};

/** Checks dimensions before anything is allocated: ranges, divisibility, head_dim even and ≤ HALO_MAX_HEAD_DIM, the
 *  attention grid's splits within a grid dimension (context ≤ 65535 · HALO_ATTN_TILE), and that every buffer's element
 *  count fits the int32 indices the kernels use. */
ModelResult check_config(const ModelConfig& c);

/** Rows one attention launch (and its merge) covers at most. The split-KV partials are float64
 *  ([rows·heads][splits][head_dim + 2]); held for every row of a step they would grow with maxBatchTokens · context
 *  (681 MB on the 2B-4T shape at 512 rows and context 4096), so a step's rows run through attention in chunks. */
constexpr int kAttentionRowsMax = 64;
/** Fewer rows per chunk when kAttentionRowsMax rows' partials would pass this many bytes (long contexts); one row at
 *  least, whatever its size. */
constexpr std::size_t kAttentionPartialBudget = std::size_t{64} << 20;
/** Rows per attention chunk for `c`: min(maxBatchTokens, kAttentionRowsMax, max(1, budget / one row's partial bytes)).
 *  src/hip-memory.ts (attentionRows) repeats this to size the partials buffer. */
int attention_rows(const ModelConfig& c);

/** Largest vocabulary the device top-k ranks: the merge kernel reads at most HALO_TOPK_THREADS · 4 (1024) candidate
 *  lists of HALO_TOPK_SPAN ids. A larger vocabulary downloads the logits and ranks them on the host (argmax included),
 *  and holds no candidate buffers. src/hip-memory.ts repeats this. */
constexpr int kDeviceTopKMaxVocab = 1024 * HALO_TOPK_SPAN;

/** What a step returns: logits, device argmax, or device top-k (k ≤ HALO_TOPK_MAX; a larger k downloads the logits
 *  and ranks them on the host the same way). */
enum class StepOutput : int { Logits = 0, Argmax = 1, TopK = 2 };

struct StepRequest {
  const int32_t* tokens = nullptr;     // [n]
  const int32_t* positions = nullptr;  // [n]
  const int32_t* slots = nullptr;      // [n]
  int n = 0;
  const int32_t* logit_rows = nullptr;  // [n_logits], strictly increasing row indices < n
  int n_logits = 0;
  StepOutput output = StepOutput::Logits;
  int top_k = 0;                         // TopK: 1 … vocab
  const int32_t* hidden_rows = nullptr;  // [n_hidden] row indices < n (any order)
  int n_hidden = 0;
};

struct StepResult {
  std::vector<float> logits;  // Logits: [n_logits][vocab]; otherwise empty
  std::vector<int32_t> ids;   // Argmax: [n_logits] (−1: no finite candidate); TopK: [n_logits][top_k]
  std::vector<float> values;  // TopK: [n_logits][top_k] raw logits of `ids`
  std::vector<float> hidden;  // [n_hidden][hidden]: the residual stream after the last layer, before the output norm
};

/** Matrix roles of a layer (binding's `role`), and norms (binding's `which`). */
enum MatrixRole : int { ROLE_QKV = 0, ROLE_O = 1, ROLE_GATE_UP = 2, ROLE_DOWN = 3 };
enum NormRole : int { NORM_ATTN = 0, NORM_ATTN_SUB = 1, NORM_FFN = 2, NORM_FFN_SUB = 3 };

struct ModelInfo {
  std::string kind, name, arch;
  double weights_bytes = 0;    // halo-g2 codes + weight scales + every norm (output norm included)
  double head_bytes = 0;       // an untied LM head table (0 when tied to the embedding)
  double embedding_bytes = 0;  // [vocab][hidden] as stored
  double kv_bytes = 0;         // keys + values of every slot
  double scratch_bytes = 0;    // activations, partials, logits, candidates, step inputs, RoPE table
  int launches_per_step = 0;   // kernels the last step ran (what a GPU launches, replayed from a graph or not)
  double launches = 0;         // kernels launched since the device opened (graph replays count theirs)
  bool graphs = false;         // steps of a repeated shape replay a device graph
  double graph_replays = 0;
};

/** One buffer in device memory, released by the model. */
struct DeviceBuffer {
  DevicePtr ptr = nullptr;
  std::size_t bytes = 0;
};

/** A ternary matrix as the matmul kernel reads it. */
struct GpuMatrix {
  int rows = 0, cols = 0;
  int chunks = 0;        // ceil(cols / 64): halo-g2 chunks per row
  int block_chunks = 0;  // 0: one scale per row; else chunks per scale block
  DeviceBuffer codes;    // [rows][chunks · 16] bytes, halo-g2
  DeviceBuffer scales;   // [rows] or [rows][chunks / block_chunks] f32
  std::vector<bool> rows_set;  // [rows]: uploaded; finalize() refuses a matrix with a row never written
  int rows_done = 0;
};

struct GpuLayer {
  GpuMatrix matrices[4];  // MatrixRole order: qkv (q | k | v rows), o, gate_up (gate | up rows), down
  DeviceBuffer norms[4];  // NormRole order: [hidden], [heads·head_dim], [hidden], [intermediate] f32
};

/** The host's IEEE binary16 conversions (round to nearest even; overflow → ±inf; NaN stays NaN): what the kernels'
 *  halo_f32_to_f16 does, so an imported row is stored exactly as a step would store it. */
uint16_t host_f32_to_f16(float value);
float host_f16_to_f32(uint16_t bits);

/** The `k` best ids of each row with their logits, best first: higher logit (+inf ranked as FLT_MAX), then a number
 *  before NaN, then the lower id (the contract's topKRows). ids, values: [rows][k]; 1 ≤ k ≤ vocab. */
void host_top_k_rows(const float* logits, int rows, int vocab, int k, int32_t* ids, float* values);

class GpuModel {
 public:
  /** Opens the device `which` ("auto", "hip", "cuda", "emulator") with code objects from `code_dir`, checks the config
   *  and resolves every kernel. Nothing else is allocated until the weights are set. */
  static ModelResult open(const ModelConfig& config, const std::string& which, const std::string& code_dir, std::unique_ptr<GpuModel>* out);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const { return c_; }
  Device& device() { return *device_; }

  // Weights: every setter refuses once finalize() ran (captured graphs hold the buffers' addresses).
  /** Allocates matrix `role` of `layer`: `rows`×`cols` must be the role's shape; `scale_block` 0 or cols: `scales`
   *  [rows] (one per row), else a multiple of 64 dividing cols: `scales` [rows][cols / scale_block]. */
  ModelResult set_matrix(int layer, int role, int rows, int cols, int scale_block, const float* scales, std::size_t scale_count);
  /** Rows [row0, row0 + row_count) from halo-g2 bytes ([row_count][chunks·16]); every code is checked first. */
  ModelResult upload_g2(int layer, int role, int row0, const uint8_t* bytes, std::size_t byte_count, int row_count);
  /** Rows [row0, row0 + row_count) from trits ([row_count][cols], each −1, 0 or 1), packed to halo-g2 here. */
  ModelResult pack_rows(int layer, int role, int row0, const int8_t* trits, std::size_t trit_count, int row_count);
  /** `layer` −1: the output norm ([hidden]); else NormRole `which`. */
  ModelResult set_norm(int layer, int which, const float* values, std::size_t count);
  /** [vocab][hidden] of `dtype` (HALO_GPU_F16 / BF16: 16-bit patterns; F32). */
  ModelResult set_embedding(const void* values, std::size_t count, int dtype);
  /** `tied`: the embedding is the head (values ignored); else [vocab][hidden] of `dtype`. */
  ModelResult set_head(bool tied, const void* values, std::size_t count, int dtype);
  /** Checks every tensor is set, then allocates the KV slots and scratch and uploads the RoPE table. */
  ModelResult finalize();
  bool finalized() const { return finalized_; }

  /** One forward pass (see StepRequest). Every argument is checked before anything reaches the device; a slot's rows
   *  must be consecutive positions whose first is ≤ the slot's length (positions it has written; a first position
   *  below it rewrites after a truncation). The slots' lengths advance only when the step succeeds; a failed step
   *  may have written some of its rows, so each of its slots then holds at most the positions before its first row. */
  ModelResult step(const StepRequest& request, StepResult* result);

  /** Slot `to` gets positions [0, length) of slot `from` (length ≤ from's length); to's length becomes `length`. */
  ModelResult copy_slot(int from, int to, int length);
  /** keys / values [layers][length][kv_heads·head_dim] f32 of positions [0, length) (f16 widened exactly). */
  ModelResult export_slot(int slot, int length, float* keys, float* values, std::size_t count);
  /** Writes [layers][length][kv_heads·head_dim] rows into positions [0, length), rounded through the KV dtype (f16 as
   *  host_f32_to_f16); a non-finite value is refused before anything is written. The slot's length becomes `length`. */
  ModelResult import_slot(int slot, int length, const float* keys, const float* values, std::size_t count);
  /** Positions a slot holds (what a step may continue from). */
  int slot_length(int slot) const { return slot >= 0 && slot < c_.max_sequences ? lengths_[slot] : -1; }

  ModelInfo info();

 private:
  GpuModel() = default;
  struct Kernels {
    KernelHandle embed, norm_quant, matmul, rope_kv, attention, attention_merge, lm_head, topk, topk_merge;
  };
  /** A step shape: everything the launch sequence's arguments depend on. */
  using ShapeKey = std::tuple<int, int, int, int>;  // n, n_logits, output, device k (0: none)
  struct CachedGraph {
    int id = -1;
    int launches = 0;
  };

  ModelResult alloc(DeviceBuffer* buffer, std::size_t bytes, const char* what);
  void release(DeviceBuffer* buffer);
  ModelResult upload(const DeviceBuffer& buffer, std::size_t offset, const void* src, std::size_t bytes, const char* what);
  ModelResult matrix(int layer, int role, GpuMatrix** out);
  ModelResult upload_rows(GpuMatrix& m, int row0, const uint8_t* g2, int row_count);
  ModelResult check_step(const StepRequest& r) const;
  /** A checked step: the upload, the launches and the downloads (step() settles the slots' lengths). */
  ModelResult run_step(const StepRequest& r, StepResult* result);
  /** Launches (or, between begin_capture and end_capture, records) a step's kernels; `*count` gets their number. */
  ModelResult launch_sequence(int n, int n_logits, int device_k, bool argmax, int* count);
  /** Runs the sequence for a shape: replayed from its graph, captured on the shape's second step, or launched. */
  ModelResult run_shape(int n, int n_logits, int device_k, bool argmax);
  std::size_t kv_elem() const { return c_.kv_dtype == HALO_GPU_F32 ? 4 : 2; }
  int kv_dim() const { return c_.kv_heads * c_.head_dim; }
  /** Byte offset of (slot, layer, position 0) in the keys or values buffer. */
  std::size_t kv_offset(int slot, int layer) const;

  ModelConfig c_;
  std::unique_ptr<Device> device_;
  Kernels k_{};
  std::mutex mutex_;  // one thread on the device at a time
  bool finalized_ = false;

  std::vector<GpuLayer> layers_;
  DeviceBuffer output_norm_;  // [hidden] f32
  DeviceBuffer embedding_;    // [vocab][hidden] of embedding_dtype_
  int embedding_dtype_ = HALO_GPU_F16;
  bool head_tied_ = false;
  bool head_set_ = false;
  DeviceBuffer head_;  // [vocab][hidden] of head_dtype_ (untied)
  int head_dtype_ = HALO_GPU_F16;

  // KV: layout of halo_kernel_args.h, slots × layers × context × kv_dim of kv_dtype.
  DeviceBuffer keys_, values_;
  std::vector<int> lengths_;  // [max_sequences] positions written (a step continues from at most this)

  // Scratch for N = max_batch_tokens rows.
  int padded_max_ = 0;  // round64(max(hidden, heads·head_dim, intermediate))
  int splits_ = 0;      // ceil(context / HALO_ATTN_TILE)
  int attn_rows_ = 0;   // attention_rows(c_): rows per attention launch
  int topk_blocks_ = 0; // ceil(vocab / HALO_TOPK_SPAN); 0 when the vocabulary is ranked on the host
  bool device_topk_ = false;  // vocab ≤ kDeviceTopKMaxVocab
  DeviceBuffer x_;          // [N][hidden] f32 residual stream
  DeviceBuffer qkv_;        // [N][q_dim + 2·kv_dim] f32
  DeviceBuffer attn_;       // [N][q_dim] f32
  DeviceBuffer gate_up_;    // [N][2·intermediate] f32
  DeviceBuffer codes_;      // [N][padded_max] int8 activation codes
  DeviceBuffer ascales_;    // [N] f32
  DeviceBuffer chunk_sums_; // [N][padded_max / 64] int32
  DeviceBuffer partial_;    // [attn_rows·heads][splits][head_dim + 2] float64 (one attention chunk's rows)
  DeviceBuffer head_in_;    // [N][hidden] f32 output-normed rows
  DeviceBuffer logits_;     // [N][vocab] f32
  DeviceBuffer cand_ids_;   // [N][topk_blocks][HALO_TOPK_MAX] int32 (0 bytes without device top-k)
  DeviceBuffer cand_values_;// [N][topk_blocks][HALO_TOPK_MAX] f32 (0 bytes without device top-k)
  DeviceBuffer top_ids_;    // [N][HALO_TOPK_MAX] int32 (0 bytes without device top-k)
  DeviceBuffer top_values_; // [N][HALO_TOPK_MAX] f32 (0 bytes without device top-k)
  DeviceBuffer inputs_;     // [4][N] int32: tokens | positions | slots | logit rows — one upload per step
  DeviceBuffer rope_;       // [context][head_dim / 2][2] float64 (cos, sin)
  std::vector<int32_t> host_inputs_;  // [4][N] staging for the one upload

  // Graphs.
  bool use_graphs_ = false;
  std::map<ShapeKey, CachedGraph> graphs_;
  std::map<ShapeKey, int> seen_;  // steps per shape not yet captured
  double graph_replays_ = 0;
  int launches_per_step_ = 0;
};

}  // namespace halo_gpu

#endif
