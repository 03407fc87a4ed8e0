// gpu_model.cpp: the model on a halo_gpu::Device — weights and KV resident, one step = one upload of the step's
// inputs, a fixed launch sequence (replayed from a device graph for a repeated shape), and downloads of only what the
// caller asked for.
#include "gpu_model.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

#include "pack_g2.h"

namespace halo_gpu {

namespace {

// Kernel entry points of kernels/halo_kernels.cpp (`extern "C"`, one per argument struct of halo_kernel_args.h).
constexpr const char* kKernelNames[] = {"halo_embed",           "halo_norm_quant", "halo_matmul", "halo_rope_kv",   "halo_attention",
                                        "halo_attention_merge", "halo_lm_head",    "halo_topk",   "halo_topk_merge"};

/** Graphs kept per model; past this every cached graph is dropped (Device can only drop them all) and shapes are
 *  captured again on demand. A decode loop uses one or two shapes; prefill chunks a few more. */
constexpr std::size_t kMaxGraphs = 16;
/** Shapes remembered for "seen twice" before the table is cleared (steps of ever-new shapes never grow it). */
constexpr std::size_t kMaxSeenShapes = 256;

int round64(int v) { return (v + HALO_G2_CHUNK - 1) / HALO_G2_CHUNK * HALO_G2_CHUNK; }
int ceil_div(int a, int b) { return (a + b - 1) / b; }
std::size_t dtype_bytes(int dtype) { return dtype == HALO_GPU_F32 ? 4 : 2; }
const char* role_name(int role) {
  static const char* const names[] = {"qkv", "o", "gate_up", "down"};
  return role >= 0 && role < 4 ? names[role] : "?";
}
const char* norm_name(int which) {
  static const char* const names[] = {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"};
  return which >= 0 && which < 4 ? names[which] : "?";
}

ModelResult bad(std::string message) { return ModelResult::failure(MODEL_BAD_ARGUMENT, std::move(message)); }
std::string str(long long v) { return std::to_string(v); }

}  // namespace

// ---------------------------------------------------------------- host conversions and ranking

uint16_t host_f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t exponent = (bits >> 23) & 0xffu;
  uint32_t mantissa = bits & 0x7fffffu;
  if (exponent == 0xff) {
    // inf stays inf; NaN stays NaN (quiet, the top payload bits kept, as the hardware conversion does).
    if (mantissa == 0) return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | (mantissa >> 13));
  }
  const int e = static_cast<int>(exponent) - 127 + 15;  // f16 biased exponent
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow (≥ 65520 after rounding too, handled below)
  if (e <= 0) {
    // Subnormal (or zero) f16: shift the full significand (implicit 1 included) right, round to nearest even.
    if (e < -10) return sign;  // below half the smallest subnormal: ±0 (exactly half rounds to even = 0 too)
    mantissa |= 0x800000u;
    const int shift = 14 - e;  // 24-bit significand → 10-bit subnormal field
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    uint32_t result = mantissa >> shift;
    if (rest > half || (rest == half && (result & 1u))) result++;
    return static_cast<uint16_t>(sign | result);  // a carry into the exponent field is the right normal value
  }
  uint32_t result = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) result++;  // may carry into the exponent, up to inf
  return static_cast<uint16_t>(sign | result);
}

float host_f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0 ? 0x400000u : 0u);  // NaN comes back quiet
  } else if (exponent != 0) {
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    out = sign;
  } else {
    int e = 113;  // normalise the subnormal
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      e--;
    }
    out = sign | (static_cast<uint32_t>(e) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &out, 4);
  return value;
}

void host_top_k_rows(const float* logits, int rows, int vocab, int k, int32_t* ids, float* values) {
  std::vector<int32_t> order(static_cast<std::size_t>(vocab));
  for (int r = 0; r < rows; r++) {
    const float* row = logits + static_cast<std::size_t>(r) * vocab;
    auto better = [row](int32_t a, int32_t b) {
      const float va = row[a], vb = row[b];
      const bool na = std::isnan(va), nb = std::isnan(vb);
      const float ka = na ? -INFINITY : std::min(va, FLT_MAX), kb = nb ? -INFINITY : std::min(vb, FLT_MAX);
      if (ka != kb) return ka > kb;
      if (na != nb) return nb;
      return a < b;
    };
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
    for (int j = 0; j < k; j++) {
      ids[static_cast<std::size_t>(r) * k + j] = order[j];
      values[static_cast<std::size_t>(r) * k + j] = row[order[j]];
    }
  }
}

// ---------------------------------------------------------------- config and opening

ModelResult check_config(const ModelConfig& c) {
  const std::pair<const char*, int> dims[] = {{"hidden", c.hidden},
                                              {"intermediate", c.intermediate},
                                              {"layers", c.layers},
                                              {"heads", c.heads},
                                              {"kvHeads", c.kv_heads},
                                              {"headDim", c.head_dim},
                                              {"vocab", c.vocab},
                                              {"context", c.context},
                                              {"maxSequences", c.max_sequences},
                                              {"maxBatchTokens", c.max_batch_tokens}};
  for (const auto& [name, value] : dims)
    if (value < 1 || value > (1 << 24)) return bad(std::string("config.") + name + ": expected a whole number in [1, 2^24], found " + str(value));
  if (c.heads % c.kv_heads != 0) return bad("config.heads (" + str(c.heads) + ") must be a multiple of config.kvHeads (" + str(c.kv_heads) + ")");
  if (c.head_dim % 2 != 0 || c.head_dim > HALO_MAX_HEAD_DIM)
    return bad("config.headDim: expected an even number ≤ " + str(HALO_MAX_HEAD_DIM) + " (RoPE pairs; one wave holds a head), found " + str(c.head_dim));
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 0)) return bad("config.ropeTheta must be a finite positive number");
  if (!(std::isfinite(c.eps) && c.eps >= 0)) return bad("config.eps must be a finite number ≥ 0");
  if (c.kv_dtype != HALO_GPU_F16 && c.kv_dtype != HALO_GPU_F32) return bad("config.kvDtype must be \"f16\" or \"f32\"");
  if (c.max_batch_tokens > 65535 * HALO_MATMUL_TOKENS) return bad("config.maxBatchTokens must be at most " + str(65535 * HALO_MATMUL_TOKENS));
  // The attention grid's y dimension holds one block per HALO_ATTN_TILE positions, and a grid's y is at most 65535.
  if (ceil_div(c.context, HALO_ATTN_TILE) > 65535)
    return bad("config.context: at most " + str(65535LL * HALO_ATTN_TILE) + " positions (the attention grid has one block per " + str(HALO_ATTN_TILE) +
               " positions in a grid dimension of at most 65535), found " + str(c.context) + "; load with a smaller contextLength");
  // The kernels index with int32 products of these (rows × strides); keep every element count below 2^31.
  const int64_t n = c.max_batch_tokens;
  const int64_t q_dim = static_cast<int64_t>(c.heads) * c.head_dim, kv_dim = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  const int64_t widest = std::max<int64_t>({q_dim + 2 * kv_dim, 2 * static_cast<int64_t>(c.intermediate), c.vocab, c.hidden});
  const int64_t splits = ceil_div(c.context, HALO_ATTN_TILE);
  const int64_t limit = int64_t{1} << 31;
  if (n * widest >= limit || int64_t{attention_rows(c)} * c.heads * splits * (c.head_dim + 2) >= limit || static_cast<int64_t>(c.vocab) * c.hidden >= limit ||
      static_cast<int64_t>(c.context) * kv_dim >= limit)
    return bad("model dimensions too large: a buffer would hold 2^31 or more elements (lower maxBatchTokens or context)");
  return ModelResult::success();
}

int attention_rows(const ModelConfig& c) {
  const std::size_t row_bytes = static_cast<std::size_t>(c.heads) * static_cast<std::size_t>(ceil_div(c.context, HALO_ATTN_TILE)) *
                                (static_cast<std::size_t>(c.head_dim) + 2) * sizeof(double);
  const std::size_t fit = row_bytes == 0 ? 1 : std::max<std::size_t>(1, kAttentionPartialBudget / row_bytes);
  return static_cast<int>(std::min<std::size_t>({fit, static_cast<std::size_t>(kAttentionRowsMax), static_cast<std::size_t>(std::max(c.max_batch_tokens, 1))}));
}

ModelResult GpuModel::open(const ModelConfig& config, const std::string& which, const std::string& code_dir, std::unique_ptr<GpuModel>* out) {
  out->reset();
  ModelResult checked = check_config(config);
  if (!checked.ok()) return checked;
  std::unique_ptr<Device> device;
  Result opened = open_device(which, CodeObjects{code_dir}, &device);
  if (!opened.ok()) return ModelResult::from(opened);
  if (!device) return ModelResult::failure(MODEL_NO_DEVICE, "open_device(\"" + which + "\") returned no device");
  std::unique_ptr<GpuModel> model(new GpuModel());
  model->c_ = config;
  model->device_ = std::move(device);
  KernelHandle* handles[] = {&model->k_.embed,           &model->k_.norm_quant, &model->k_.matmul, &model->k_.rope_kv,   &model->k_.attention,
                             &model->k_.attention_merge, &model->k_.lm_head,    &model->k_.topk,   &model->k_.topk_merge};
  for (std::size_t i = 0; i < sizeof kKernelNames / sizeof kKernelNames[0]; i++) {
    Result found = model->device_->kernel(kKernelNames[i], handles[i]);
    if (!found.ok()) {
      return ModelResult::failure(MODEL_NO_CODE_FOR_ARCH, std::string("kernel ") + kKernelNames[i] + " is missing from the loaded code object (" +
                                                              found.message + "); rebuild the package's code objects (scripts/build-kernels.mjs)");
    }
  }
  model->layers_.resize(config.layers);
  model->lengths_.assign(config.max_sequences, 0);
  model->host_inputs_.assign(static_cast<std::size_t>(4) * config.max_batch_tokens, 0);
  const char* graphs_env = std::getenv("HALO_HIP_GRAPHS");
  model->use_graphs_ = config.graphs && model->device_->graphs() && !(graphs_env != nullptr && std::strcmp(graphs_env, "0") == 0);
  *out = std::move(model);
  return ModelResult::success();
}

GpuModel::~GpuModel() {
  if (!device_) return;
  if (use_graphs_) device_->drop_graphs();
  for (GpuLayer& L : layers_) {
    for (GpuMatrix& m : L.matrices) {
      release(&m.codes);
      release(&m.scales);
    }
    for (DeviceBuffer& b : L.norms) release(&b);
  }
  for (DeviceBuffer* b : {&output_norm_, &embedding_, &head_,    &keys_,   &values_,   &x_,           &qkv_,     &attn_,       &gate_up_, &codes_, &ascales_,
                          &chunk_sums_,  &partial_,   &head_in_, &logits_, &cand_ids_, &cand_values_, &top_ids_, &top_values_, &inputs_,  &rope_})
    release(b);
}

// ---------------------------------------------------------------- device memory helpers

ModelResult GpuModel::alloc(DeviceBuffer* buffer, std::size_t bytes, const char* what) {
  release(buffer);
  DevicePtr ptr = nullptr;
  Result r = device_->alloc(std::max<std::size_t>(bytes, 16), &ptr);
  if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), std::string(what) + " (" + str(static_cast<long long>(bytes)) + " bytes): " + r.message);
  buffer->ptr = ptr;
  buffer->bytes = bytes;
  return ModelResult::success();
}

void GpuModel::release(DeviceBuffer* buffer) {
  if (buffer->ptr != nullptr) device_->release(buffer->ptr);
  buffer->ptr = nullptr;
  buffer->bytes = 0;
}

ModelResult GpuModel::upload(const DeviceBuffer& buffer, std::size_t offset, const void* src, std::size_t bytes, const char* what) {
  if (bytes == 0) return ModelResult::success();
  Result r = device_->upload(static_cast<char*>(buffer.ptr) + offset, src, bytes);
  if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), std::string("uploading ") + what + ": " + r.message);
  return ModelResult::success();
}

std::size_t GpuModel::kv_offset(int slot, int layer) const {
  return (static_cast<std::size_t>(slot) * c_.layers + layer) * static_cast<std::size_t>(c_.context) * kv_dim() * kv_elem();
}

// ---------------------------------------------------------------- weights

ModelResult GpuModel::matrix(int layer, int role, GpuMatrix** out) {
  if (layer < 0 || layer >= c_.layers) return bad("layer: expected 0 … " + str(c_.layers - 1) + ", found " + str(layer));
  if (role < 0 || role > 3) return bad("role: expected 0 (qkv), 1 (o), 2 (gate_up) or 3 (down), found " + str(role));
  *out = &layers_[layer].matrices[role];
  return ModelResult::success();
}

ModelResult GpuModel::set_matrix(int layer, int role, int rows, int cols, int scale_block, const float* scales, std::size_t scale_count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("setMatrix after finalize(): the weights are fixed once the model is finalized");
  GpuMatrix* m = nullptr;
  ModelResult r = matrix(layer, role, &m);
  if (!r.ok()) return r;
  const int q_dim = c_.heads * c_.head_dim, kv = kv_dim();
  const int shapes[4][2] = {{q_dim + 2 * kv, c_.hidden}, {c_.hidden, q_dim}, {2 * c_.intermediate, c_.hidden}, {c_.hidden, c_.intermediate}};
  const std::string name = "layer " + str(layer) + " " + role_name(role);
  if (rows != shapes[role][0] || cols != shapes[role][1])
    return bad(name + ": expected " + str(shapes[role][0]) + "×" + str(shapes[role][1]) + ", found " + str(rows) + "×" + str(cols));
  const int chunks = ceil_div(cols, HALO_G2_CHUNK);
  int block_chunks = 0;
  std::size_t want = static_cast<std::size_t>(rows);
  if (scale_block != 0 && scale_block != cols) {
    if (scale_block < 0 || scale_block % HALO_G2_CHUNK != 0 || cols % scale_block != 0)
      return bad(name + ": scale block " + str(scale_block) + " must be 0, cols, or a multiple of 64 dividing cols (" + str(cols) +
                 "); other block sizes run on the cpu backend");
    block_chunks = scale_block / HALO_G2_CHUNK;
    want = static_cast<std::size_t>(rows) * (cols / scale_block);
  }
  if (scale_count != want) return bad(name + ": expected " + str(static_cast<long long>(want)) + " scales, found " + str(static_cast<long long>(scale_count)));
  release(&m->codes);
  release(&m->scales);
  m->rows = rows;
  m->cols = cols;
  m->chunks = chunks;
  m->block_chunks = block_chunks;
  m->rows_set.assign(rows, false);
  m->rows_done = 0;
  r = alloc(&m->codes, static_cast<std::size_t>(rows) * chunks * HALO_G2_CHUNK_BYTES, "allocating halo-g2 weights");
  if (r.ok()) r = alloc(&m->scales, want * sizeof(float), "allocating weight scales");
  if (r.ok()) r = upload(m->scales, 0, scales, want * sizeof(float), "weight scales");
  if (!r.ok()) {
    release(&m->codes);
    release(&m->scales);
    m->rows = 0;
  }
  return r;
}

ModelResult GpuModel::upload_rows(GpuMatrix& m, int row0, const uint8_t* g2, int row_count) {
  const std::size_t row_bytes = static_cast<std::size_t>(m.chunks) * HALO_G2_CHUNK_BYTES;
  ModelResult r = upload(m.codes, static_cast<std::size_t>(row0) * row_bytes, g2, static_cast<std::size_t>(row_count) * row_bytes, "halo-g2 rows");
  if (!r.ok()) return r;
  for (int i = row0; i < row0 + row_count; i++) {
    if (!m.rows_set[i]) m.rows_done++;
    m.rows_set[i] = true;
  }
  return r;
}

ModelResult GpuModel::upload_g2(int layer, int role, int row0, const uint8_t* bytes, std::size_t byte_count, int row_count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("uploadG2 after finalize(): the weights are fixed once the model is finalized");
  GpuMatrix* m = nullptr;
  ModelResult r = matrix(layer, role, &m);
  if (!r.ok()) return r;
  const std::string name = "layer " + str(layer) + " " + role_name(role);
  if (m->codes.ptr == nullptr) return bad(name + ": setMatrix first");
  if (row0 < 0 || row_count < 0 || row0 > m->rows - row_count)
    return bad(name + ": rows [" + str(row0) + ", " + str(static_cast<long long>(row0) + row_count) + ") outside [0, " + str(m->rows) + ")");
  const std::size_t want = static_cast<std::size_t>(row_count) * m->chunks * HALO_G2_CHUNK_BYTES;
  if (byte_count != want)
    return bad(name + ": expected " + str(static_cast<long long>(want)) + " halo-g2 bytes, found " + str(static_cast<long long>(byte_count)));
  std::string why;
  if (!g2_validate(bytes, row_count, m->cols, &why)) return ModelResult::failure(MODEL_BAD_WEIGHTS, name + ": " + why);
  return upload_rows(*m, row0, bytes, row_count);
}

ModelResult GpuModel::pack_rows(int layer, int role, int row0, const int8_t* trits, std::size_t trit_count, int row_count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("packRows after finalize(): the weights are fixed once the model is finalized");
  GpuMatrix* m = nullptr;
  ModelResult r = matrix(layer, role, &m);
  if (!r.ok()) return r;
  const std::string name = "layer " + str(layer) + " " + role_name(role);
  if (m->codes.ptr == nullptr) return bad(name + ": setMatrix first");
  if (row0 < 0 || row_count < 0 || row0 > m->rows - row_count)
    return bad(name + ": rows [" + str(row0) + ", " + str(static_cast<long long>(row0) + row_count) + ") outside [0, " + str(m->rows) + ")");
  const std::size_t want = static_cast<std::size_t>(row_count) * m->cols;
  if (trit_count != want) return bad(name + ": expected " + str(static_cast<long long>(want)) + " trits, found " + str(static_cast<long long>(trit_count)));
  std::vector<uint8_t> packed(g2_row_bytes(m->cols) * static_cast<std::size_t>(row_count));
  std::string why;
  if (!g2_pack(trits, row_count, m->cols, packed.data(), &why)) return ModelResult::failure(MODEL_BAD_WEIGHTS, name + ": " + why);
  return upload_rows(*m, row0, packed.data(), row_count);
}

ModelResult GpuModel::set_norm(int layer, int which, const float* values, std::size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("setNorm after finalize(): the weights are fixed once the model is finalized");
  DeviceBuffer* target = nullptr;
  std::size_t want = 0;
  std::string name;
  if (layer == -1) {
    target = &output_norm_;
    want = c_.hidden;
    name = "output norm";
  } else {
    if (layer < 0 || layer >= c_.layers) return bad("setNorm layer: expected -1 (output norm) or 0 … " + str(c_.layers - 1) + ", found " + str(layer));
    if (which < 0 || which > 3) return bad("setNorm which: expected 0 (attn), 1 (attnSub), 2 (ffn) or 3 (ffnSub), found " + str(which));
    const int lengths[4] = {c_.hidden, c_.heads * c_.head_dim, c_.hidden, c_.intermediate};
    target = &layers_[layer].norms[which];
    want = lengths[which];
    name = "layer " + str(layer) + " " + norm_name(which);
  }
  if (count != want) return bad(name + ": expected " + str(static_cast<long long>(want)) + " values, found " + str(static_cast<long long>(count)));
  ModelResult r = alloc(target, want * sizeof(float), "allocating a norm");
  if (r.ok()) r = upload(*target, 0, values, want * sizeof(float), "a norm");
  if (!r.ok()) release(target);
  return r;
}

ModelResult GpuModel::set_embedding(const void* values, std::size_t count, int dtype) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("setEmbedding after finalize(): the weights are fixed once the model is finalized");
  const std::size_t want = static_cast<std::size_t>(c_.vocab) * c_.hidden;
  if (dtype != HALO_GPU_F16 && dtype != HALO_GPU_BF16 && dtype != HALO_GPU_F32) return bad("embedding dtype must be f16, bf16 or f32");
  if (count != want)
    return bad("embedding: expected " + str(static_cast<long long>(want)) + " values ([vocab][hidden]), found " + str(static_cast<long long>(count)));
  ModelResult r = alloc(&embedding_, want * dtype_bytes(dtype), "allocating the embedding");
  if (r.ok()) r = upload(embedding_, 0, values, want * dtype_bytes(dtype), "the embedding");
  if (!r.ok()) {
    release(&embedding_);
    return r;
  }
  embedding_dtype_ = dtype;
  return r;
}

ModelResult GpuModel::set_head(bool tied, const void* values, std::size_t count, int dtype) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return bad("setHead after finalize(): the weights are fixed once the model is finalized");
  if (tied) {
    release(&head_);
    head_tied_ = true;
    head_set_ = true;
    return ModelResult::success();
  }
  const std::size_t want = static_cast<std::size_t>(c_.vocab) * c_.hidden;
  if (dtype != HALO_GPU_F16 && dtype != HALO_GPU_BF16 && dtype != HALO_GPU_F32) return bad("head dtype must be f16, bf16 or f32");
  if (count != want)
    return bad("LM head: expected " + str(static_cast<long long>(want)) + " values ([vocab][hidden]), found " + str(static_cast<long long>(count)));
  head_set_ = false;
  ModelResult r = alloc(&head_, want * dtype_bytes(dtype), "allocating the LM head");
  if (r.ok()) r = upload(head_, 0, values, want * dtype_bytes(dtype), "the LM head");
  if (!r.ok()) {
    release(&head_);
    return r;
  }
  head_dtype_ = dtype;
  head_tied_ = false;
  head_set_ = true;
  return r;
}

ModelResult GpuModel::finalize() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finalized_) return ModelResult::success();
  // Every tensor a step reads must be set: a half-loaded model is refused here, not read as garbage by a kernel.
  for (int l = 0; l < c_.layers; l++) {
    for (int role = 0; role < 4; role++) {
      const GpuMatrix& m = layers_[l].matrices[role];
      if (m.codes.ptr == nullptr) return ModelResult::failure(MODEL_NOT_READY, "layer " + str(l) + " " + role_name(role) + " was never set (setMatrix)");
      if (m.rows_done != m.rows)
        return ModelResult::failure(MODEL_NOT_READY, "layer " + str(l) + " " + role_name(role) + ": " + str(m.rows - m.rows_done) + " of " + str(m.rows) +
                                                         " rows were never uploaded (uploadG2 / packRows)");
    }
    for (int which = 0; which < 4; which++)
      if (layers_[l].norms[which].ptr == nullptr)
        return ModelResult::failure(MODEL_NOT_READY, "layer " + str(l) + " " + norm_name(which) + " was never set (setNorm)");
  }
  if (output_norm_.ptr == nullptr) return ModelResult::failure(MODEL_NOT_READY, "the output norm was never set (setNorm(-1, …))");
  if (embedding_.ptr == nullptr) return ModelResult::failure(MODEL_NOT_READY, "the embedding was never set (setEmbedding)");
  if (!head_set_) return ModelResult::failure(MODEL_NOT_READY, "the LM head was never set (setHead)");

  const std::size_t n = c_.max_batch_tokens;
  const int q_dim = c_.heads * c_.head_dim, kv = kv_dim();
  padded_max_ = round64(std::max({c_.hidden, q_dim, c_.intermediate}));
  splits_ = ceil_div(c_.context, HALO_ATTN_TILE);
  attn_rows_ = attention_rows(c_);
  device_topk_ = c_.vocab <= kDeviceTopKMaxVocab;
  topk_blocks_ = device_topk_ ? ceil_div(c_.vocab, HALO_TOPK_SPAN) : 0;
  const std::size_t topk_rows = device_topk_ ? n : 0;  // no device top-k: no candidate or result buffers
  const std::size_t kv_bytes = static_cast<std::size_t>(c_.max_sequences) * c_.layers * c_.context * kv * kv_elem();
  struct Plan {
    DeviceBuffer* buffer;
    std::size_t bytes;
    const char* what;
  };
  const Plan plans[] = {
      {&keys_, kv_bytes, "allocating the key cache"},
      {&values_, kv_bytes, "allocating the value cache"},
      {&x_, n * c_.hidden * 4, "allocating the residual stream"},
      {&qkv_, n * (q_dim + 2 * kv) * 4, "allocating q|k|v scratch"},
      {&attn_, n * q_dim * 4, "allocating attention output"},
      {&gate_up_, n * 2 * c_.intermediate * 4, "allocating gate|up scratch"},
      {&codes_, n * padded_max_, "allocating activation codes"},
      {&ascales_, n * 4, "allocating activation scales"},
      {&chunk_sums_, n * (padded_max_ / HALO_G2_CHUNK) * 4, "allocating chunk sums"},
      {&partial_, static_cast<std::size_t>(attn_rows_) * c_.heads * splits_ * (c_.head_dim + 2) * 8, "allocating attention partials"},
      {&head_in_, n * c_.hidden * 4, "allocating LM head input"},
      {&logits_, n * c_.vocab * 4, "allocating logits"},
      {&cand_ids_, topk_rows * topk_blocks_ * HALO_TOPK_MAX * 4, "allocating top-k candidates"},
      {&cand_values_, topk_rows * topk_blocks_ * HALO_TOPK_MAX * 4, "allocating top-k candidates"},
      {&top_ids_, topk_rows * HALO_TOPK_MAX * 4, "allocating top-k ids"},
      {&top_values_, topk_rows * HALO_TOPK_MAX * 4, "allocating top-k values"},
      {&inputs_, 4 * n * 4, "allocating step inputs"},
      {&rope_, static_cast<std::size_t>(c_.context) * c_.head_dim * 8, "allocating the RoPE table"},
  };
  ModelResult r;
  for (const Plan& p : plans) {
    r = alloc(p.buffer, p.bytes, p.what);
    if (!r.ok()) break;
  }
  if (r.ok()) {
    // RoPE angles in float64 (the reference's definition): angle = position · θ^(−2i/head_dim), cos/sin kept in
    // float64 — the kernel rotates in float64 as the reference does.
    const int half = c_.head_dim / 2;
    std::vector<double> inverse(half);
    for (int i = 0; i < half; i++) inverse[i] = std::pow(c_.rope_theta, (-2.0 * i) / c_.head_dim);
    std::vector<double> table(static_cast<std::size_t>(c_.context) * half * 2);
    for (int p = 0; p < c_.context; p++)
      for (int i = 0; i < half; i++) {
        const double angle = static_cast<double>(p) * inverse[i];
        table[(static_cast<std::size_t>(p) * half + i) * 2] = std::cos(angle);
        table[(static_cast<std::size_t>(p) * half + i) * 2 + 1] = std::sin(angle);
      }
    r = upload(rope_, 0, table.data(), table.size() * 8, "the RoPE table");
  }
  // A fresh cache reads as zeros (a slot is never read past what it wrote, but exports of length 0 … are well defined).
  if (r.ok()) {
    Result f = device_->fill(keys_.ptr, 0, kv_bytes);
    if (f.ok()) f = device_->fill(values_.ptr, 0, kv_bytes);
    if (!f.ok()) r = ModelResult::failure(static_cast<int>(f.status), "clearing the KV cache: " + f.message);
  }
  if (!r.ok()) {
    for (const Plan& p : plans) release(p.buffer);
    return r;
  }
  finalized_ = true;
  return r;
}

// ---------------------------------------------------------------- the step

ModelResult GpuModel::check_step(const StepRequest& q) const {
  if (!finalized_) return ModelResult::failure(MODEL_NOT_READY, "step before finalize(): set every weight, then call finalize()");
  if (q.n < 1 || q.n > c_.max_batch_tokens) return bad("batch size: expected 1 … " + str(c_.max_batch_tokens) + " rows (maxBatchTokens), found " + str(q.n));
  if (q.tokens == nullptr || q.positions == nullptr || q.slots == nullptr) return bad("tokens, positions and slots are required");
  if (q.n_logits < 0 || q.n_logits > q.n || (q.n_logits > 0 && q.logit_rows == nullptr))
    return bad("logit rows: expected at most " + str(q.n) + ", found " + str(q.n_logits));
  for (int i = 0; i < q.n_logits; i++) {
    const int previous = i == 0 ? -1 : q.logit_rows[i - 1];
    if (q.logit_rows[i] <= previous || q.logit_rows[i] >= q.n)
      return bad("logitRows[" + str(i) + "]: expected a row in (" + str(previous) + ", " + str(q.n) + ") (strictly increasing), found " + str(q.logit_rows[i]));
  }
  if (q.output == StepOutput::TopK && (q.top_k < 1 || q.top_k > c_.vocab))
    return bad("topK: expected a whole number in [1, " + str(c_.vocab) + "], found " + str(q.top_k));
  if (q.n_hidden < 0 || (q.n_hidden > 0 && q.hidden_rows == nullptr)) return bad("hidden rows missing");
  for (int i = 0; i < q.n_hidden; i++)
    if (q.hidden_rows[i] < 0 || q.hidden_rows[i] >= q.n)
      return bad("hiddenRows[" + str(i) + "]: expected a row in [0, " + str(q.n) + "), found " + str(q.hidden_rows[i]));
  // Each slot's rows: consecutive positions, the first at most the slot's length (what it has written).
  std::map<int, int> next;
  for (int t = 0; t < q.n; t++) {
    if (q.tokens[t] < 0 || q.tokens[t] >= c_.vocab)
      return bad("tokens[" + str(t) + "]: expected an id in [0, " + str(c_.vocab) + "), found " + str(q.tokens[t]));
    const int slot = q.slots[t];
    if (slot < 0 || slot >= c_.max_sequences) return bad("slots[" + str(t) + "]: expected a slot in [0, " + str(c_.max_sequences) + "), found " + str(slot));
    const int position = q.positions[t];
    if (position < 0 || position >= c_.context)
      return bad("positions[" + str(t) + "]: expected a position in [0, " + str(c_.context) + ") (the context length), found " + str(position));
    auto it = next.find(slot);
    if (it == next.end()) {
      if (position > lengths_[slot])
        return bad("positions[" + str(t) + "]: slot " + str(slot) + " holds " + str(lengths_[slot]) +
                   " positions, so its rows must start at most there; found " + str(position));
      next[slot] = position + 1;
    } else {
      if (position != it->second)
        return bad("positions[" + str(t) + "]: slot " + str(slot) + "'s rows must be consecutive positions: expected " + str(it->second) + ", found " +
                   str(position));
      it->second = position + 1;
    }
  }
  return ModelResult::success();
}

ModelResult GpuModel::launch_sequence(int n, int n_logits, int device_k, bool argmax, int* count) {
  *count = 0;
  const int q_dim = c_.heads * c_.head_dim, kv = kv_dim(), qkv_rows = q_dim + 2 * kv, inter = c_.intermediate;
  const int N = c_.max_batch_tokens;
  const int32_t* inputs = static_cast<const int32_t*>(inputs_.ptr);
  const int32_t* tokens = inputs;
  const int32_t* positions = inputs + N;
  const int32_t* slots = inputs + 2 * N;
  const int32_t* rows = inputs + 3 * N;
  const double eps = c_.eps;  // the kernels take it as float64, as the reference uses it
  Result failed;
  const char* failed_what = nullptr;
  auto go = [&](KernelHandle kernel, Dim3 grid, unsigned threads, const auto& args, const char* what) {
    if (failed_what != nullptr) return;
    Result r = device_->launch(kernel, grid, Dim3{threads, 1, 1}, &args, sizeof args);
    if (!r.ok()) {
      failed = r;
      failed_what = what;
      return;
    }
    ++*count;
  };
  // Per-token norm + int8 quantisation of `in` rows into the shared activation buffers.
  auto norm_quant = [&](float* in, int in_stride, const DeviceBuffer& weight, int width, int mode) {
    halo_norm_quant_args a{};
    a.in = in;
    a.in_stride = in_stride;
    a.row_index = nullptr;
    a.weight = static_cast<const float*>(weight.ptr);
    a.n = n;
    a.width = width;
    a.padded = round64(width);
    a.mode = mode;
    a.eps = eps;
    a.codes = static_cast<int8_t*>(codes_.ptr);
    a.scales = static_cast<float*>(ascales_.ptr);
    a.chunk_sums = static_cast<int32_t*>(chunk_sums_.ptr);
    a.normed_out = nullptr;
    go(k_.norm_quant, Dim3{static_cast<unsigned>(n), 1, 1}, HALO_ROW_THREADS, a, "halo_norm_quant");
  };
  auto matmul = [&](const GpuMatrix& m, float* y, int y_stride, bool accumulate) {
    halo_matmul_args a{};
    a.weights = static_cast<const uint32_t*>(m.codes.ptr);
    a.wscales = static_cast<const float*>(m.scales.ptr);
    a.rows = m.rows;
    a.chunks = m.chunks;
    a.block_chunks = m.block_chunks;
    a.codes = static_cast<const int8_t*>(codes_.ptr);
    a.ascales = static_cast<const float*>(ascales_.ptr);
    a.chunk_sums = static_cast<const int32_t*>(chunk_sums_.ptr);
    a.n = n;
    a.y = y;
    a.y_stride = y_stride;
    a.accumulate = accumulate ? 1 : 0;
    go(k_.matmul, Dim3{static_cast<unsigned>(ceil_div(m.rows, HALO_MATMUL_ROWS)), static_cast<unsigned>(ceil_div(n, HALO_MATMUL_TOKENS)), 1},
       HALO_MATMUL_THREADS, a, "halo_matmul");
  };
  float* x = static_cast<float*>(x_.ptr);
  float* qkv = static_cast<float*>(qkv_.ptr);
  float* attn = static_cast<float*>(attn_.ptr);
  float* gate_up = static_cast<float*>(gate_up_.ptr);

  halo_embed_args embed{embedding_.ptr, tokens, x, n, c_.hidden, c_.vocab, embedding_dtype_};
  go(k_.embed, Dim3{static_cast<unsigned>(n), 1, 1}, HALO_ROW_THREADS, embed, "halo_embed");
  for (int l = 0; l < c_.layers; l++) {
    const GpuLayer& L = layers_[l];
    norm_quant(x, c_.hidden, L.norms[NORM_ATTN], c_.hidden, HALO_NORM_PLAIN);
    matmul(L.matrices[ROLE_QKV], qkv, qkv_rows, false);
    halo_rope_kv_args rope{};
    rope.qkv = qkv;
    rope.qkv_stride = qkv_rows;
    rope.positions = positions;
    rope.slots = slots;
    rope.rope = static_cast<const double*>(rope_.ptr);
    rope.n = n;
    rope.heads = c_.heads;
    rope.kv_heads = c_.kv_heads;
    rope.head_dim = c_.head_dim;
    rope.keys = keys_.ptr;
    rope.values = values_.ptr;
    rope.layer = l;
    rope.layers = c_.layers;
    rope.context = c_.context;
    rope.kv_dtype = c_.kv_dtype;
    go(k_.rope_kv, Dim3{static_cast<unsigned>(n), 1, 1}, HALO_ROW_THREADS, rope, "halo_rope_kv");
    // Attention and its merge over chunks of at most attn_rows_ rows, which share one partials buffer (sized for a
    // chunk, not the batch). A row's attention depends on its own query, position and slot only, so chunking changes
    // no bit; the offsets are fixed by the step's shape, so a captured graph replays them.
    for (int r0 = 0; r0 < n; r0 += attn_rows_) {
      const int rows_here = std::min(attn_rows_, n - r0);
      halo_attention_args at{};
      at.q = qkv + static_cast<std::size_t>(r0) * qkv_rows;
      at.q_stride = qkv_rows;
      at.keys = keys_.ptr;
      at.values = values_.ptr;
      at.kv_dtype = c_.kv_dtype;
      at.positions = positions + r0;
      at.slots = slots + r0;
      at.n = rows_here;
      at.heads = c_.heads;
      at.kv_heads = c_.kv_heads;
      at.head_dim = c_.head_dim;
      at.layer = l;
      at.layers = c_.layers;
      at.context = c_.context;
      at.tile = HALO_ATTN_TILE;
      at.splits = splits_;
      at.scale = 1.0 / std::sqrt(static_cast<double>(c_.head_dim));
      at.partial = static_cast<double*>(partial_.ptr);
      go(k_.attention, Dim3{static_cast<unsigned>(rows_here * c_.heads), static_cast<unsigned>(splits_), 1}, HALO_ATTN_THREADS, at, "halo_attention");
      halo_attention_merge_args merge{static_cast<const double*>(partial_.ptr),    rows_here, c_.heads, c_.head_dim, splits_,
                                      attn + static_cast<std::size_t>(r0) * q_dim, q_dim};
      go(k_.attention_merge, Dim3{static_cast<unsigned>(rows_here * c_.heads), 1, 1}, HALO_ATTN_THREADS, merge, "halo_attention_merge");
    }
    norm_quant(attn, q_dim, L.norms[NORM_ATTN_SUB], q_dim, HALO_NORM_PLAIN);
    matmul(L.matrices[ROLE_O], x, c_.hidden, true);
    norm_quant(x, c_.hidden, L.norms[NORM_FFN], c_.hidden, HALO_NORM_PLAIN);
    matmul(L.matrices[ROLE_GATE_UP], gate_up, 2 * inter, false);
    norm_quant(gate_up, 2 * inter, L.norms[NORM_FFN_SUB], inter, c_.relu2 ? HALO_NORM_RELU2 : HALO_NORM_SILU);
    matmul(L.matrices[ROLE_DOWN], x, c_.hidden, true);
  }
  if (n_logits > 0) {
    halo_norm_quant_args out{};
    out.in = x;
    out.in_stride = c_.hidden;
    out.row_index = rows;
    out.weight = static_cast<const float*>(output_norm_.ptr);
    out.n = n_logits;
    out.width = c_.hidden;
    out.padded = round64(c_.hidden);
    out.mode = HALO_NORM_PLAIN;
    out.eps = eps;
    out.normed_out = static_cast<float*>(head_in_.ptr);
    go(k_.norm_quant, Dim3{static_cast<unsigned>(n_logits), 1, 1}, HALO_ROW_THREADS, out, "halo_norm_quant (output norm)");
    halo_lm_head_args head{};
    head.head = head_tied_ ? embedding_.ptr : head_.ptr;
    head.dtype = head_tied_ ? embedding_dtype_ : head_dtype_;
    head.x = static_cast<const float*>(head_in_.ptr);
    head.n = n_logits;
    head.hidden = c_.hidden;
    head.vocab = c_.vocab;
    head.logits = static_cast<float*>(logits_.ptr);
    go(k_.lm_head, Dim3{static_cast<unsigned>(ceil_div(c_.vocab, HALO_HEAD_ROWS)), static_cast<unsigned>(ceil_div(n_logits, HALO_HEAD_TOKENS)), 1},
       HALO_HEAD_THREADS, head, "halo_lm_head");
    if (device_k > 0) {
      halo_topk_args topk{
          static_cast<const float*>(logits_.ptr), n_logits, c_.vocab, device_k, topk_blocks_, argmax ? 1 : 0, static_cast<int32_t*>(cand_ids_.ptr),
          static_cast<float*>(cand_values_.ptr)};
      go(k_.topk, Dim3{static_cast<unsigned>(n_logits), static_cast<unsigned>(topk_blocks_), 1}, HALO_TOPK_THREADS, topk, "halo_topk");
      halo_topk_merge_args merge{
          static_cast<const int32_t*>(cand_ids_.ptr), static_cast<const float*>(cand_values_.ptr), n_logits, device_k, topk_blocks_, argmax ? 1 : 0,
          static_cast<int32_t*>(top_ids_.ptr),        static_cast<float*>(top_values_.ptr)};
      go(k_.topk_merge, Dim3{static_cast<unsigned>(n_logits), 1, 1}, HALO_TOPK_THREADS, merge, "halo_topk_merge");
    }
  }
  if (failed_what != nullptr) return ModelResult::failure(static_cast<int>(failed.status), std::string(failed_what) + ": " + failed.message);
  return ModelResult::success();
}

ModelResult GpuModel::run_shape(int n, int n_logits, int device_k, bool argmax) {
  const ShapeKey key{n, n_logits, argmax ? 1 : 0, device_k};
  int count = 0;
  if (use_graphs_) {
    auto cached = graphs_.find(key);
    if (cached != graphs_.end()) {
      Result r = device_->replay(cached->second.id);
      if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), "replaying the step's graph: " + r.message);
      graph_replays_ += 1;
      launches_per_step_ = cached->second.launches;
      return ModelResult::success();
    }
    if (seen_.size() >= kMaxSeenShapes && seen_.find(key) == seen_.end()) seen_.clear();
    // Captured the second time a shape is seen: one-off shapes (a prompt's odd-sized tail) never pay for a capture.
    if (++seen_[key] >= 2) {
      if (graphs_.size() >= kMaxGraphs) {
        device_->drop_graphs();
        graphs_.clear();
      }
      Result begun = device_->begin_capture();
      if (begun.ok()) {
        ModelResult recorded = launch_sequence(n, n_logits, device_k, argmax, &count);
        int id = -1;
        Result ended = device_->end_capture(&id);
        if (!recorded.ok() || !ended.ok()) {
          // A launch refused mid-capture still leaves end_capture a (partial) graph that nothing refers to: drop every
          // graph (Device can only drop them all) and forget the cached ids, so no orphan stays on the device; shapes
          // are captured again on demand.
          device_->drop_graphs();
          graphs_.clear();
          seen_.clear();
          if (!recorded.ok()) return ModelResult::failure(recorded.status, "capturing the step's graph: " + recorded.message);
          return ModelResult::failure(static_cast<int>(ended.status), "capturing the step's graph: " + ended.message);
        }
        seen_.erase(key);
        graphs_[key] = CachedGraph{id, count};
        Result r = device_->replay(id);
        if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), "replaying the step's graph: " + r.message);
        graph_replays_ += 1;
        launches_per_step_ = count;
        return ModelResult::success();
      }
      // A device that cannot capture now runs the launches directly, as a device without graphs does.
    }
  }
  ModelResult r = launch_sequence(n, n_logits, device_k, argmax, &count);
  launches_per_step_ = count;
  return r;
}

ModelResult GpuModel::step(const StepRequest& q, StepResult* result) {
  std::lock_guard<std::mutex> lock(mutex_);
  *result = StepResult{};
  ModelResult r = check_step(q);
  if (!r.ok()) return r;
  r = run_step(q, result);
  if (r.ok()) {
    // Success: every slot now holds the positions through its last row of this step.
    for (int t = 0; t < q.n; t++) lengths_[q.slots[t]] = q.positions[t] + 1;
  } else {
    // A failed step may have written some of its rows' KV before it stopped. Positions below a slot's first row are
    // untouched; from that row on they may be half-written, so a slot rewritten below its length (after a truncation)
    // no longer holds them: it keeps min(length, first position) and a later step must start there at the latest.
    std::map<int, int> first;
    for (int t = 0; t < q.n; t++) first.emplace(q.slots[t], q.positions[t]);
    for (const auto& [slot, position] : first) lengths_[slot] = std::min(lengths_[slot], position);
  }
  return r;
}

ModelResult GpuModel::run_step(const StepRequest& q, StepResult* result) {
  const int N = c_.max_batch_tokens;
  // The one upload: tokens | positions | slots | logit rows at fixed offsets, so the kernels' arguments (and a graph
  // captured with them) never change between steps of one shape.
  std::memcpy(host_inputs_.data(), q.tokens, sizeof(int32_t) * q.n);
  std::memcpy(host_inputs_.data() + N, q.positions, sizeof(int32_t) * q.n);
  std::memcpy(host_inputs_.data() + 2 * N, q.slots, sizeof(int32_t) * q.n);
  if (q.n_logits > 0) std::memcpy(host_inputs_.data() + 3 * N, q.logit_rows, sizeof(int32_t) * q.n_logits);
  ModelResult r = upload(inputs_, 0, host_inputs_.data(), sizeof(int32_t) * (static_cast<std::size_t>(3) * N + q.n_logits), "the step's inputs");
  if (!r.ok()) return r;
  const bool argmax = q.output == StepOutput::Argmax;
  // Device ranking: argmax, and top-k up to HALO_TOPK_MAX, when the merge can read every candidate list of the vocabulary.
  const int device_k = q.n_logits == 0 || !device_topk_ ? 0 : argmax ? 1 : (q.output == StepOutput::TopK && q.top_k <= HALO_TOPK_MAX) ? q.top_k : 0;
  r = run_shape(q.n, q.n_logits, device_k, argmax);
  if (!r.ok()) return r;

  auto download = [&](void* dst, const DeviceBuffer& src, std::size_t offset, std::size_t bytes, const char* what) {
    if (bytes == 0) return ModelResult::success();
    Result d = device_->download(dst, static_cast<const char*>(src.ptr) + offset, bytes);
    if (!d.ok()) return ModelResult::failure(static_cast<int>(d.status), std::string("downloading ") + what + ": " + d.message);
    return ModelResult::success();
  };
  StepResult out;
  const std::size_t rows = q.n_logits;
  if (device_k > 0) {
    // Only ids (and k logits) cross: [n_logits][k] of the merge's [N][k] layout.
    out.ids.resize(rows * device_k);
    r = download(out.ids.data(), top_ids_, 0, out.ids.size() * 4, "top-k ids");
    if (r.ok() && !argmax) {
      out.values.resize(rows * device_k);
      r = download(out.values.data(), top_values_, 0, out.values.size() * 4, "top-k logits");
    }
  } else if (rows > 0) {
    out.logits.resize(rows * c_.vocab);
    r = download(out.logits.data(), logits_, 0, out.logits.size() * 4, "logits");
    if (r.ok() && q.output != StepOutput::Logits) {
      // Ranked here from the logits, by the same order as the device top-k: k above HALO_TOPK_MAX, or a vocabulary
      // larger than the device merge reads (then argmax too: the best id, −1 when no logit is above −inf).
      const int k = argmax ? 1 : q.top_k;
      out.ids.resize(rows * k);
      out.values.resize(rows * k);
      host_top_k_rows(out.logits.data(), static_cast<int>(rows), c_.vocab, k, out.ids.data(), out.values.data());
      if (argmax) {
        for (std::size_t i = 0; i < rows; i++)
          if (std::isnan(out.values[i]) || out.values[i] == -INFINITY) out.ids[i] = -1;
        std::vector<float>().swap(out.values);
      }
      std::vector<float>().swap(out.logits);
    }
  }
  if (r.ok() && q.n_hidden > 0) {
    // The residual stream after the last layer (the output norm wrote its own buffer): one download of the rows spanned.
    const int lo = *std::min_element(q.hidden_rows, q.hidden_rows + q.n_hidden), hi = *std::max_element(q.hidden_rows, q.hidden_rows + q.n_hidden);
    const std::size_t width = c_.hidden;
    std::vector<float> span(static_cast<std::size_t>(hi - lo + 1) * width);
    r = download(span.data(), x_, static_cast<std::size_t>(lo) * width * 4, span.size() * 4, "hidden rows");
    if (r.ok()) {
      out.hidden.resize(static_cast<std::size_t>(q.n_hidden) * width);
      for (int i = 0; i < q.n_hidden; i++)
        std::memcpy(out.hidden.data() + i * width, span.data() + static_cast<std::size_t>(q.hidden_rows[i] - lo) * width, width * 4);
    }
  }
  if (r.ok() && rows == 0 && q.n_hidden == 0) {
    // Nothing to download: wait for the launches so a device error surfaces with this step, not the next.
    Result s = device_->synchronize();
    if (!s.ok()) r = ModelResult::failure(static_cast<int>(s.status), "synchronizing the step: " + s.message);
  }
  if (r.ok()) *result = std::move(out);
  return r;
}

// ---------------------------------------------------------------- KV slots

ModelResult GpuModel::copy_slot(int from, int to, int length) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!finalized_) return ModelResult::failure(MODEL_NOT_READY, "copySlot before finalize()");
  if (from < 0 || from >= c_.max_sequences || to < 0 || to >= c_.max_sequences)
    return bad("copySlot: slots must be in [0, " + str(c_.max_sequences) + "), found " + str(from) + " → " + str(to));
  if (length < 0 || length > lengths_[from])
    return bad("copySlot: slot " + str(from) + " holds " + str(lengths_[from]) + " positions; cannot copy " + str(length));
  if (from != to) {
    const std::size_t bytes = static_cast<std::size_t>(length) * kv_dim() * kv_elem();
    for (int l = 0; l < c_.layers && bytes > 0; l++) {
      for (const DeviceBuffer* b : {&keys_, &values_}) {
        char* base = static_cast<char*>(b->ptr);
        Result r = device_->copy(base + kv_offset(to, l), base + kv_offset(from, l), bytes);
        if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), "copying KV rows: " + r.message);
      }
    }
  }
  lengths_[to] = length;
  return ModelResult::success();
}

ModelResult GpuModel::export_slot(int slot, int length, float* keys, float* values, std::size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!finalized_) return ModelResult::failure(MODEL_NOT_READY, "exportSlot before finalize()");
  if (slot < 0 || slot >= c_.max_sequences) return bad("exportSlot: slot must be in [0, " + str(c_.max_sequences) + "), found " + str(slot));
  if (length < 0 || length > lengths_[slot])
    return bad("exportSlot: slot " + str(slot) + " holds " + str(lengths_[slot]) + " positions; cannot export " + str(length));
  const std::size_t row = static_cast<std::size_t>(length) * kv_dim();  // elements of one layer
  if (count != row * c_.layers) return bad("exportSlot: expected arrays of " + str(static_cast<long long>(row * c_.layers)) + " floats");
  std::vector<uint16_t> staging(kv_elem() == 2 ? row : 0);
  for (int l = 0; l < c_.layers && row > 0; l++) {
    for (int which = 0; which < 2; which++) {
      const DeviceBuffer& b = which == 0 ? keys_ : values_;
      float* dst = (which == 0 ? keys : values) + static_cast<std::size_t>(l) * row;
      const char* src = static_cast<const char*>(b.ptr) + kv_offset(slot, l);
      Result r = kv_elem() == 4 ? device_->download(dst, src, row * 4) : device_->download(staging.data(), src, row * 2);
      if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), "downloading KV rows: " + r.message);
      if (kv_elem() == 2)
        for (std::size_t i = 0; i < row; i++) dst[i] = host_f16_to_f32(staging[i]);
    }
  }
  return ModelResult::success();
}

ModelResult GpuModel::import_slot(int slot, int length, const float* keys, const float* values, std::size_t count) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!finalized_) return ModelResult::failure(MODEL_NOT_READY, "importSlot before finalize()");
  if (slot < 0 || slot >= c_.max_sequences) return bad("importSlot: slot must be in [0, " + str(c_.max_sequences) + "), found " + str(slot));
  if (length < 0 || length > c_.context) return bad("importSlot: length must be in [0, " + str(c_.context) + "] (the context length), found " + str(length));
  const std::size_t row = static_cast<std::size_t>(length) * kv_dim();
  if (count != row * c_.layers) return bad("importSlot: expected arrays of " + str(static_cast<long long>(row * c_.layers)) + " floats");
  for (std::size_t i = 0; i < count; i++)
    if (!std::isfinite(keys[i]) || !std::isfinite(values[i]))
      return bad("importSlot: element " + str(static_cast<long long>(i)) + " of the " + (std::isfinite(keys[i]) ? "values" : "keys") +
                 " is not finite; a KV cache holds finite numbers");
  // The slot no longer holds its old positions once any row is overwritten: a failure below leaves it empty.
  lengths_[slot] = 0;
  std::vector<uint16_t> staging(kv_elem() == 2 ? row : 0);
  for (int l = 0; l < c_.layers && row > 0; l++) {
    for (int which = 0; which < 2; which++) {
      const DeviceBuffer& b = which == 0 ? keys_ : values_;
      const float* src = (which == 0 ? keys : values) + static_cast<std::size_t>(l) * row;
      char* dst = static_cast<char*>(b.ptr) + kv_offset(slot, l);
      if (kv_elem() == 2)
        for (std::size_t i = 0; i < row; i++) staging[i] = host_f32_to_f16(src[i]);
      Result r = kv_elem() == 4 ? device_->upload(dst, src, row * 4) : device_->upload(dst, staging.data(), row * 2);
      if (!r.ok()) return ModelResult::failure(static_cast<int>(r.status), "uploading KV rows: " + r.message);
    }
  }
  lengths_[slot] = length;
  return ModelResult::success();
}

// ---------------------------------------------------------------- info

ModelInfo GpuModel::info() {
  std::lock_guard<std::mutex> lock(mutex_);
  ModelInfo i;
  const DeviceInfo& d = device_->info();
  i.kind = kind_name(d.kind);
  i.name = d.name;
  i.arch = d.arch;
  for (const GpuLayer& L : layers_) {
    for (const GpuMatrix& m : L.matrices) i.weights_bytes += static_cast<double>(m.codes.bytes + m.scales.bytes);
    for (const DeviceBuffer& b : L.norms) i.weights_bytes += static_cast<double>(b.bytes);
  }
  i.weights_bytes += static_cast<double>(output_norm_.bytes);
  i.head_bytes = static_cast<double>(head_.bytes);
  i.embedding_bytes = static_cast<double>(embedding_.bytes);
  i.kv_bytes = static_cast<double>(keys_.bytes + values_.bytes);
  for (const DeviceBuffer* b : {&x_, &qkv_, &attn_, &gate_up_, &codes_, &ascales_, &chunk_sums_, &partial_, &head_in_, &logits_, &cand_ids_, &cand_values_,
                                &top_ids_, &top_values_, &inputs_, &rope_})
    i.scratch_bytes += static_cast<double>(b->bytes);
  i.launches_per_step = launches_per_step_;
  i.launches = static_cast<double>(device_->launches);
  i.graphs = use_graphs_;
  i.graph_replays = graph_replays_;
  return i;
}

}  // namespace halo_gpu
