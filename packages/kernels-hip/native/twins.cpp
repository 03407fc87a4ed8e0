// twins.cpp: the scalar twins of the GPU kernels (see twins.h). Each function mirrors its kernel's loops: where the
// kernel has lanes, the twin has an array of 32 values per wave and applies the butterfly exactly as halo_wave_sum_f32
// does (lane l adds lane l ^ mask's value to its own, masks 16 … 1), so rounding happens at the same points.
#include "twins.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../kernels/halo_exp_f64.h"
#include "../kernels/halo_ff.h"

namespace {

constexpr int kWave = 32;
constexpr int kRowWaves = HALO_ROW_THREADS / kWave;

float bits_f32(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

uint32_t f32_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

const float kInf = bits_f32(0x7f800000u);
const float kFltMax = bits_f32(0x7f7fffffu);

/** halo_wave_sum_f32 / _i32 over the 32 lane values `v`, in place: afterwards v[l] is what lane l holds. */
template <typename T>
void butterfly_sum(T* v) {
  for (int mask = kWave / 2; mask > 0; mask >>= 1) {
    T next[kWave];
    for (int l = 0; l < kWave; l++) next[l] = v[l] + v[l ^ mask];
    std::memcpy(v, next, sizeof next);
  }
}

/** halo_wave_max_f32 / _f64 in place (`other > value ? other : value`, not symmetric under NaN: lanes can differ). */
template <typename T>
void butterfly_max(T* v) {
  for (int mask = kWave / 2; mask > 0; mask >>= 1) {
    T next[kWave];
    for (int l = 0; l < kWave; l++) next[l] = v[l ^ mask] > v[l] ? v[l ^ mask] : v[l];
    std::memcpy(v, next, sizeof next);
  }
}

/** halo_block_sum_f64 over the HALO_ROW_THREADS per-thread values: lane 0 of each wave, waves added in order. */
double block_sum_f64(const double* threads) {
  double lane0[kRowWaves];
  for (int w = 0; w < kRowWaves; w++) {
    double lanes[kWave];
    std::memcpy(lanes, threads + w * kWave, sizeof lanes);
    butterfly_sum(lanes);
    lane0[w] = lanes[0];
  }
  double total = lane0[0];
  for (int w = 1; w < kRowWaves; w++) total += lane0[w];
  return total;
}

float block_max(const float* threads) {
  float lane0[kRowWaves];
  for (int w = 0; w < kRowWaves; w++) {
    float lanes[kWave];
    std::memcpy(lanes, threads + w * kWave, sizeof lanes);
    butterfly_max(lanes);
    lane0[w] = lanes[0];
  }
  float best = lane0[0];
  for (int w = 1; w < kRowWaves; w++) best = lane0[w] > best ? lane0[w] : best;
  return best;
}

float widen(const void* table, int64_t index, int32_t dtype) {
  if (dtype == HALO_GPU_F16) return halo_twin_f16_to_f32(static_cast<const uint16_t*>(table)[index]);
  if (dtype == HALO_GPU_BF16) return bits_f32(static_cast<uint32_t>(static_cast<const uint16_t*>(table)[index]) << 16);
  return static_cast<const float*>(table)[index];
}

/** The reference's gatedActivation: act(gate) · up in float64 (V8's exp), rounded once to f32. */
float gated(float gate, float up, int32_t mode) {
  if (mode == HALO_NORM_RELU2) {
    const double g = gate > 0.0f ? static_cast<double>(gate) : 0.0;
    return static_cast<float>(g * g * static_cast<double>(up));
  }
  const double g = gate;
  return static_cast<float>(g / (1.0 + halo_exp_f64(-g)) * static_cast<double>(up));
}

/** The reference's per-token code: the float64 product (exact) rounded half to even, clamped; NaN → 0. The kernel gets
 * the same integer from f32 and one FMA (halo_quantize_code); this is the definition it is checked against. */
int32_t quantize_code(float x, float scale) {
  const double r = std::nearbyint(static_cast<double>(x) * static_cast<double>(scale));
  if (std::isnan(r)) return 0;
  return static_cast<int32_t>(r > 127.0 ? 127.0 : r < -128.0 ? -128.0 : r);
}

/** Σ c·a over one chunk, decoding each weight's code straight from the halo-g2 byte layout (not the kernel's words). */
int32_t chunk_dot(const uint8_t* chunk, const int8_t* activations) {
  int32_t sum = 0;
  for (int k = 0; k < HALO_G2_CHUNK; k++) {
    const int i = k / 16, j = (k % 16) / 4, b = k % 4;
    const int code = (chunk[4 * i + b] >> (2 * j)) & 3;
    sum += code * activations[k];
  }
  return sum;
}

void kv_store(void* cache, int64_t index, int32_t dtype, float value) {
  if (dtype == HALO_GPU_F16) static_cast<uint16_t*>(cache)[index] = halo_twin_f32_to_f16(value);
  else static_cast<float*>(cache)[index] = value;
}

float kv_load(const void* cache, int64_t index, int32_t dtype) {
  if (dtype == HALO_GPU_F16) return halo_twin_f16_to_f32(static_cast<const uint16_t*>(cache)[index]);
  return static_cast<const float*>(cache)[index];
}

/** The kernels' ranking (topk.kern.h halo_topk_better): id −1 last, then numbers by min(v, FLT_MAX), NaN, lower id. */
bool topk_better(float a, int32_t ia, float b, int32_t ib) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  const bool nan_a = std::isnan(a), nan_b = std::isnan(b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a) {
    const float ka = a > kFltMax ? kFltMax : a;
    const float kb = b > kFltMax ? kFltMax : b;
    if (ka != kb) return ka > kb;
  }
  return ia < ib;
}

int32_t topk_rounds(int32_t k, int32_t argmax) { return argmax != 0 ? 1 : k < 1 ? 1 : k > HALO_TOPK_MAX ? HALO_TOPK_MAX : k; }

struct Candidate {
  float value;
  int32_t id;
};

/** Sorts `c` best first and writes the first k (padding with id −1, value −inf). */
void write_best(std::vector<Candidate>& c, int32_t k, int32_t* ids, float* values) {
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) { return topk_better(a.value, a.id, b.value, b.id); });
  for (int32_t r = 0; r < k; r++) {
    const bool have = r < static_cast<int32_t>(c.size());
    ids[r] = have ? c[r].id : -1;
    values[r] = have ? c[r].value : -kInf;
  }
}

}  // namespace

float halo_twin_f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return bits_f32(sign | 0x7f800000u | (mantissa != 0 ? 0x400000u | (mantissa << 13) : 0u));
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // exact: 10 bits times a power of two
    return bits_f32(sign | f32_bits(magnitude));
  }
  return bits_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t halo_twin_f32_to_f16(float value) {
  const uint32_t bits = f32_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));  // NaN, quiet
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to inf (and inf)
  if (magnitude < 0x38800000u) {
    // Below 2^−14: a subnormal half (or zero) of 2^−24 units; scaling by 2^24 is exact, nearbyint rounds to even.
    const float units = std::nearbyint(bits_f32(magnitude) * 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));
  }
  uint32_t half = ((magnitude >> 23) - 112) << 10 | ((magnitude >> 13) & 0x3ffu);
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u) != 0)) half++;  // a carry into the exponent is right
  return static_cast<uint16_t>(sign | half);
}

void halo_embed_twin(const halo_embed_args& args) {
  for (int32_t t = 0; t < args.n; t++) {
    const int32_t token = args.tokens[t];
    const bool valid = token >= 0 && token < args.vocab;
    for (int32_t i = 0; i < args.hidden; i++)
      args.x[static_cast<int64_t>(t) * args.hidden + i] = valid ? widen(args.table, static_cast<int64_t>(token) * args.hidden + i, args.dtype) : 0.0f;
  }
}

void halo_norm_quant_twin(const halo_norm_quant_args& args) {
  const int32_t width = args.width, mode = args.mode;
  double squares[HALO_ROW_THREADS];
  float partial[HALO_ROW_THREADS];
  for (int32_t t = 0; t < args.n; t++) {
    const int32_t row = args.row_index != nullptr ? args.row_index[t] : t;
    float* in = args.in + static_cast<int64_t>(row) * args.in_stride;
    for (int th = 0; th < HALO_ROW_THREADS; th++) {
      double sum = 0.0;
      for (int32_t i = th; i < width; i += HALO_ROW_THREADS) {
        if (mode != HALO_NORM_PLAIN) in[i] = gated(in[i], in[width + i], mode);
        const double v = in[i];
        sum += v * v;  // the kernel's fma: v·v is exact in float64
      }
      squares[th] = sum;
    }
    const double inv = 1.0 / std::sqrt(block_sum_f64(squares) / static_cast<double>(width) + args.eps);
    auto normed_at = [&](int32_t i) { return static_cast<float>(static_cast<double>(in[i]) * inv * static_cast<double>(args.weight[i])); };
    for (int th = 0; th < HALO_ROW_THREADS; th++) {
      float absmax = 0.0f;
      for (int32_t i = th; i < width; i += HALO_ROW_THREADS) {
        const float normed = normed_at(i);
        if (args.normed_out != nullptr) args.normed_out[static_cast<int64_t>(t) * width + i] = normed;
        const float magnitude = std::fabs(normed);
        absmax = magnitude > absmax ? magnitude : absmax;
      }
      partial[th] = absmax;
    }
    if (args.codes == nullptr) continue;
    const float absmax = block_max(partial);
    const float scale = 127.0f / (absmax > HALO_ABSMAX_FLOOR ? absmax : HALO_ABSMAX_FLOOR);
    args.scales[t] = scale;
    const int32_t chunks = args.padded / HALO_G2_CHUNK;
    for (int32_t c = 0; c < chunks; c++) {
      int32_t sum = 0;  // exact, so the kernel's lane order does not matter
      for (int32_t i = c * HALO_G2_CHUNK; i < (c + 1) * HALO_G2_CHUNK; i++) {
        const int32_t code = i < width ? quantize_code(normed_at(i), scale) : 0;
        args.codes[static_cast<int64_t>(t) * args.padded + i] = static_cast<int8_t>(code);
        sum += code;
      }
      args.chunk_sums[static_cast<int64_t>(t) * chunks + c] = sum;
    }
  }
}

// The reference's scaling (ternary-matmul.ts) as it is written: per row, (dot · ws) / s; per block, Σ_b dot_b · ws_b in
// block order in float64 (zero dots skipped), then / s; rounded once to f32. The kernel's integer block path equals it
// by its exactness argument (matmul.kern.h), which this checks.
void halo_matmul_twin(const halo_matmul_args& args) {
  const int32_t chunks = args.chunks;
  for (int32_t row = 0; row < args.rows; row++) {
    const uint8_t* weights = reinterpret_cast<const uint8_t*>(args.weights) + static_cast<int64_t>(row) * chunks * HALO_G2_CHUNK_BYTES;
    for (int32_t t = 0; t < args.n; t++) {
      const int8_t* codes = args.codes + static_cast<int64_t>(t) * chunks * HALO_G2_CHUNK;
      const int32_t* sums = args.chunk_sums + static_cast<int64_t>(t) * chunks;
      auto dot_of = [&](int32_t c0, int32_t c1) {
        int32_t dot = 0;
        for (int32_t c = c0; c < c1; c++) dot += chunk_dot(weights + c * HALO_G2_CHUNK_BYTES, codes + c * HALO_G2_CHUNK) - sums[c];
        return dot;
      };
      double value;
      if (args.block_chunks <= 0) {
        value = static_cast<double>(dot_of(0, chunks)) * static_cast<double>(args.wscales[row]) / static_cast<double>(args.ascales[t]);
      } else {
        const int32_t blocks = chunks / args.block_chunks;
        double total = 0.0;
        for (int32_t b = 0; b < blocks; b++) {
          const int32_t dot = dot_of(b * args.block_chunks, (b + 1) * args.block_chunks);
          if (dot != 0) total += static_cast<double>(dot) * static_cast<double>(args.wscales[static_cast<int64_t>(row) * blocks + b]);
        }
        value = total / static_cast<double>(args.ascales[t]);
      }
      float* y = args.y + static_cast<int64_t>(t) * args.y_stride + row;
      *y = args.accumulate != 0 ? *y + static_cast<float>(value) : static_cast<float>(value);
    }
  }
}

void halo_rope_kv_twin(const halo_rope_kv_args& args) {
  for (int32_t t = 0; t < args.n; t++) {
    const int32_t position = args.positions[t], slot = args.slots[t];
    if (position < 0 || position >= args.context || slot < 0) continue;
    const int32_t head_dim = args.head_dim, half = head_dim / 2;
    const int32_t q_dim = args.heads * head_dim, kv_dim = args.kv_heads * head_dim;
    float* row = args.qkv + static_cast<int64_t>(t) * args.qkv_stride;
    const double* rope = args.rope + static_cast<int64_t>(position) * half * 2;
    const int64_t cache = ((static_cast<int64_t>(slot) * args.layers + args.layer) * args.context + position) * kv_dim;
    for (int32_t p = 0; p < (args.heads + args.kv_heads) * half; p++) {
      const int32_t head = p / half, i = p - head * half;
      const int32_t at = head * head_dim + i;
      const double cos = rope[2 * i], sin = rope[2 * i + 1];
      const double x1 = row[at], x2 = row[at + half];
      const float y1 = static_cast<float>(x1 * cos - x2 * sin);
      const float y2 = static_cast<float>(x1 * sin + x2 * cos);
      row[at] = y1;
      row[at + half] = y2;
      if (at >= q_dim) {
        kv_store(args.keys, cache + (at - q_dim), args.kv_dtype, y1);
        kv_store(args.keys, cache + (at - q_dim) + half, args.kv_dtype, y2);
      }
    }
    for (int32_t e = 0; e < kv_dim; e++) kv_store(args.values, cache + e, args.kv_dtype, row[q_dim + kv_dim + e]);
  }
}

// The kernel's order (attention.kern.h): per chunk of 32 positions, a lane per position for the float-float dot over d in
// order, the butterfly max and sum in float64, a lane per element for the float-float weighted sum. Lanes are
// simulated (m and l per lane, as the kernel holds them: they agree unless a NaN payload differs).
void halo_attention_twin(const halo_attention_args& args) {
  constexpr int kPerLane = HALO_MAX_HEAD_DIM / kWave;
  const int32_t head_dim = args.head_dim;
  const double inf = static_cast<double>(kInf);
  for (int32_t bx = 0; bx < args.n * args.heads; bx++) {
    const int32_t t = bx / args.heads, h = bx - t * args.heads;
    for (int32_t split = 0; split < args.splits; split++) {
      double* out = args.partial + (static_cast<int64_t>(bx) * args.splits + split) * (head_dim + 2);
      const int32_t last = args.positions[t], slot = args.slots[t];
      const bool valid = last >= 0 && last < args.context && slot >= 0 && head_dim <= HALO_MAX_HEAD_DIM;
      const int32_t start = split * args.tile;
      const int32_t end = valid ? std::min(start + args.tile, last + 1) : start;
      if (end <= start) {  // empty: m and l only, as the kernel (its o is never read)
        out[0] = -inf;
        out[1] = 0.0;
        continue;
      }
      const int32_t kv_dim = args.kv_heads * head_dim;
      const int32_t kv_head = h / (args.heads / args.kv_heads);
      const int64_t base =
          (static_cast<int64_t>(valid ? slot : 0) * args.layers + args.layer) * args.context * kv_dim + static_cast<int64_t>(kv_head) * head_dim;
      const float* q = args.q + static_cast<int64_t>(t) * args.q_stride + static_cast<int64_t>(h) * head_dim;
      halo_ff o[kWave][kPerLane];
      double m[kWave], l[kWave];
      for (int lane = 0; lane < kWave; lane++) {
        for (int j = 0; j < kPerLane; j++) o[lane][j].hi = o[lane][j].lo = 0.0f;
        m[lane] = -inf;
        l[lane] = 0.0;
      }
      for (int32_t c0 = start; c0 < end; c0 += kWave) {
        const int32_t count = std::min(kWave, end - c0);
        double s[kWave], grown_to[kWave], w[kWave];
        for (int lane = 0; lane < kWave; lane++) {
          s[lane] = -inf;
          if (lane >= count) continue;
          halo_ff dot{0.0f, 0.0f};
          const int64_t row = base + static_cast<int64_t>(c0 + lane) * kv_dim;
          for (int32_t d = 0; d < head_dim; d++) dot = halo_ff_mac(dot, q[d], 0.0f, kv_load(args.keys, row + d, args.kv_dtype));
          s[lane] = (static_cast<double>(dot.hi) + static_cast<double>(dot.lo)) * args.scale;
        }
        std::memcpy(grown_to, s, sizeof s);
        butterfly_max(grown_to);
        for (int lane = 0; lane < kWave; lane++) {
          const double grown = grown_to[lane] > m[lane] ? grown_to[lane] : m[lane];
          if (grown > m[lane] && m[lane] > -inf) {
            const double alpha = halo_exp_f64(m[lane] - grown);
            l[lane] *= alpha;
            const halo_ff a = halo_ff_of(alpha);
            for (int j = 0; j < kPerLane; j++) o[lane][j] = halo_ff_scale(o[lane][j], a.hi, a.lo);
          }
          m[lane] = grown;
          w[lane] = lane < count ? halo_exp_f64(s[lane] - m[lane]) : 0.0;
        }
        double sums[kWave];
        std::memcpy(sums, w, sizeof w);
        butterfly_sum(sums);
        for (int lane = 0; lane < kWave; lane++) l[lane] += sums[lane];
        for (int32_t u = 0; u < count; u++) {
          const halo_ff weight = halo_ff_of(w[u]);
          const int64_t at = base + static_cast<int64_t>(c0 + u) * kv_dim;
          for (int lane = 0; lane < kWave; lane++)
            for (int j = 0; j < kPerLane; j++) {
              const int32_t d = lane + kWave * j;
              if (d < head_dim) o[lane][j] = halo_ff_mac(o[lane][j], weight.hi, weight.lo, kv_load(args.values, at + d, args.kv_dtype));
            }
        }
      }
      out[0] = m[0];
      out[1] = l[0];
      for (int lane = 0; lane < kWave; lane++)
        for (int j = 0; j < kPerLane; j++) {
          const int32_t d = lane + kWave * j;
          if (d < head_dim) out[2 + d] = static_cast<double>(o[lane][j].hi) + static_cast<double>(o[lane][j].lo);
        }
    }
  }
}

void halo_attention_merge_twin(const halo_attention_merge_args& args) {
  if (args.head_dim > HALO_MAX_HEAD_DIM) return;
  const int32_t head_dim = args.head_dim, stride = head_dim + 2;
  const double inf = static_cast<double>(kInf);
  std::vector<double> num(head_dim);
  for (int32_t bx = 0; bx < args.n * args.heads; bx++) {
    const int32_t t = bx / args.heads, h = bx - t * args.heads;
    const double* partial = args.partial + static_cast<int64_t>(bx) * args.splits * stride;
    float* out = args.out + static_cast<int64_t>(t) * args.out_stride + static_cast<int64_t>(h) * head_dim;
    double top[kWave], den[kWave];
    for (int lane = 0; lane < kWave; lane++) {
      top[lane] = -inf;
      for (int32_t s = lane; s < args.splits; s += kWave) {
        const double ms = partial[static_cast<int64_t>(s) * stride];
        top[lane] = ms > top[lane] ? ms : top[lane];
      }
      den[lane] = 0.0;
    }
    butterfly_max(top);
    std::fill(num.begin(), num.end(), 0.0);
    // Lanes agree on top unless a NaN payload differs; the kernel's elements d use lane d % 32's; `any` is a ballot.
    bool any = false;
    for (int lane = 0; lane < kWave; lane++) any = any || top[lane] > -inf;
    if (any) {
      for (int32_t c0 = 0; c0 < args.splits; c0 += kWave) {
        const int32_t count = std::min(kWave, args.splits - c0);
        double w[kWave];
        for (int lane = 0; lane < kWave; lane++) {
          w[lane] = 0.0;
          if (lane < count) {
            const double* split = partial + static_cast<int64_t>(c0 + lane) * stride;
            w[lane] = halo_exp_f64(split[0] - top[lane]);
            den[lane] += w[lane] * split[1];
          }
        }
        for (int32_t u = 0; u < count; u++) {
          const double* split = partial + static_cast<int64_t>(c0 + u) * stride;
          if (split[0] == -inf) continue;  // empty: o unwritten, its term was +0
          for (int32_t d = 0; d < head_dim; d++) num[d] += w[u] * split[2 + d];
        }
      }
    }
    butterfly_sum(den);
    for (int32_t d = 0; d < head_dim; d++) out[d] = any ? static_cast<float>(num[d] / den[d % kWave]) : 0.0f;
  }
}

void halo_lm_head_twin(const halo_lm_head_args& args) {
  const int32_t hidden = args.hidden;
  const int32_t group = args.dtype == HALO_GPU_F16 || args.dtype == HALO_GPU_BF16 ? 8 : 4;
  const int32_t groups = (hidden + group - 1) / group;
  for (int32_t v = 0; v < args.vocab; v++) {
    for (int32_t t = 0; t < args.n; t++) {
      const float* x = args.x + static_cast<int64_t>(t) * hidden;
      float lanes[kWave];
      for (int lane = 0; lane < kWave; lane++) {
        float acc = 0.0f;
        for (int32_t g = lane; g < groups; g += kWave)
          for (int32_t h = g * group; h < std::min(g * group + group, hidden); h++)
            acc += widen(args.head, static_cast<int64_t>(v) * hidden + h, args.dtype) * x[h];
        lanes[lane] = acc;
      }
      butterfly_sum(lanes);
      args.logits[static_cast<int64_t>(t) * args.vocab + v] = lanes[0];
    }
  }
}

void halo_topk_twin(const halo_topk_args& args) {
  const int32_t k = topk_rounds(args.k, args.argmax);
  std::vector<Candidate> c;
  for (int32_t row = 0; row < args.n; row++) {
    const float* logits = args.logits + static_cast<int64_t>(row) * args.vocab;
    for (int32_t block = 0; block < args.blocks; block++) {
      c.clear();
      const int32_t begin = block * HALO_TOPK_SPAN, end = std::min(begin + HALO_TOPK_SPAN, args.vocab);
      for (int32_t id = begin; id < end; id++)
        if (args.argmax == 0 || logits[id] > -kInf) c.push_back({logits[id], id});
      const int64_t out = (static_cast<int64_t>(row) * args.blocks + block) * k;
      write_best(c, k, args.cand_ids + out, args.cand_values + out);
    }
  }
}

void halo_topk_merge_twin(const halo_topk_merge_args& args) {
  const int32_t k = topk_rounds(args.k, args.argmax);
  const int32_t blocks = std::min(args.blocks, HALO_TOPK_THREADS * 4);  // HALO_TOPK_LISTS lists per thread
  std::vector<Candidate> c;
  for (int32_t row = 0; row < args.n; row++) {
    c.clear();
    for (int32_t i = 0; i < blocks * k; i++) {
      const int64_t at = static_cast<int64_t>(row) * args.blocks * k + i;
      if (args.cand_ids[at] >= 0) c.push_back({args.cand_values[at], args.cand_ids[at]});
    }
    write_best(c, k, args.ids + static_cast<int64_t>(row) * k, args.values + static_cast<int64_t>(row) * k);
  }
}

void halo_topk_rows_definition(const float* logits, int32_t rows, int32_t vocab, int32_t k, int32_t argmax, int32_t* ids, float* values) {
  for (int32_t r = 0; r < rows; r++) {
    const float* row = logits + static_cast<int64_t>(r) * vocab;
    if (argmax != 0) {  // argmaxRows, line by line
      int32_t best = -1;
      double best_value = -INFINITY;
      for (int32_t i = 0; i < vocab; i++) {
        const double v = row[i] > kFltMax ? static_cast<double>(kFltMax) : static_cast<double>(row[i]);
        if (v > best_value) {
          best_value = v;
          best = i;
        }
      }
      ids[r] = best;
      values[r] = best >= 0 ? row[best] : -kInf;
      continue;
    }
    // topKRows: key = NaN ? −inf : min(v, FLT_MAX), descending; on equal keys numbers before NaN; then lower id.
    std::vector<int32_t> order(vocab);
    for (int32_t i = 0; i < vocab; i++) order[i] = i;
    auto key = [&](int32_t i) { return std::isnan(row[i]) ? -INFINITY : std::min(static_cast<double>(row[i]), static_cast<double>(kFltMax)); };
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {  // ids are distinct: a strict total order
      if (key(a) != key(b)) return key(a) > key(b);
      if (std::isnan(row[a]) != std::isnan(row[b])) return !std::isnan(row[a]);
      return a < b;
    });
    for (int32_t j = 0; j < k; j++) {
      ids[static_cast<int64_t>(r) * k + j] = order[j];
      values[static_cast<int64_t>(r) * k + j] = row[order[j]];
    }
  }
}
