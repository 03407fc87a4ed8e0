// kernels_ref.cpp: the scalar `_ref` twin of every SIMD kernel (baseline ISA, the definition the SIMD variants match).
#include <cmath>
#include <cstring>
#include <vector>
#include "halo_cpu.h"

extern "C" uint16_t halo_f32_to_f16_ref(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 rounds to infinity
  if (absx < 0x38800000u) {
    // Subnormal half (or zero): value / 2^-24, rounded half to even.
    float f;
    std::memcpy(&f, &absx, 4);
    const float scaled = f * 16777216.0f;  // exact: power-of-two scaling of a value < 2^-14
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  uint32_t mantissa = absx & 0x7fffffu;
  const uint32_t exponent = (absx >> 23) - 127 + 15;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half += 1;  // may carry into the exponent: correct
  return static_cast<uint16_t>(sign | half);
}

extern "C" float halo_f16_to_f32_ref(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    const float f = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

extern "C" void halo_attn_tile_ref(const float* q, int group, int hd, const void* keys, const void* values, int kv, int stride, int span,
                                   const float* key_scales, const float* value_scales, int scale_stride, double scale, double* scratch, double* out) {
  auto at = [&](const void* base, const float* scales, int p, int d) -> double {
    const size_t i = static_cast<size_t>(p) * stride + d;
    switch (kv) {
      case HALO_KV_F16: return halo_f16_to_f32_ref(static_cast<const uint16_t*>(base)[i]);
      case HALO_KV_I8: return static_cast<float>(static_cast<const int8_t*>(base)[i]) * scales[static_cast<size_t>(p) * scale_stride];
      default: return static_cast<const float*>(base)[i];
    }
  };
  double* s = scratch;  // [group][span]
  for (int g = 0; g < group; g++) {
    for (int p = 0; p < span; p++) {
      double sum = 0;
      for (int d = 0; d < hd; d++) sum += static_cast<double>(q[g * hd + d]) * at(keys, key_scales, p, d);
      s[g * span + p] = sum * scale;
    }
  }
  for (int g = 0; g < group; g++) {
    double* o = out + static_cast<size_t>(g) * (hd + 2);
    double m = -INFINITY, l = 0;
    for (int p = 0; p < span; p++) m = s[g * span + p] > m ? s[g * span + p] : m;
    for (int d = 0; d < hd; d++) o[2 + d] = 0;
    for (int p = 0; p < span; p++) {
      const double w = std::exp(s[g * span + p] - m);
      l += w;
      for (int d = 0; d < hd; d++) o[2 + d] += w * at(values, value_scales, p, d);
    }
    o[0] = m;
    o[1] = l;
  }
}

extern "C" void halo_silu_mul_ref(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; i++) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * static_cast<double>(up[i]));
  }
}

extern "C" void halo_kv_i8_row(const float* x, int n, int8_t* codes, float* scale) {
  float absmax = 0;
  for (int i = 0; i < n; i++) absmax = std::fabs(x[i]) > absmax ? std::fabs(x[i]) : absmax;  // NaN never compares greater
  const float s = static_cast<float>(static_cast<double>(absmax) / 127.0);
  if (!(s > 0 && std::isfinite(s))) {
    std::memset(codes, 0, static_cast<size_t>(n));
    *scale = 0;
    return;
  }
  for (int i = 0; i < n; i++) {
    // nearbyint rounds half to even in the default mode; the clamp comes first, so the cast is always defined.
    const double r = std::nearbyint(static_cast<double>(x[i]) / static_cast<double>(s));
    codes[i] = static_cast<int8_t>(r > 127 ? 127 : r < -127 ? -127 : r == r ? static_cast<int>(r) : 0);
  }
  *scale = s;
}

extern "C" void halo_head_i8_activations(const float* x, int n, int hidden, int stride, int8_t* q, double* s) {
  for (int t = 0; t < n; t++) {
    const float* xr = x + static_cast<size_t>(t) * hidden;
    float absmax = 0;
    for (int h = 0; h < hidden; h++) absmax = std::fabs(xr[h]) > absmax ? std::fabs(xr[h]) : absmax;
    const float scale = static_cast<float>(127.0 / (static_cast<double>(absmax) > 1e-5 ? static_cast<double>(absmax) : 1e-5));
    s[t] = scale;
    int8_t* qt = q + static_cast<size_t>(t) * stride;
    for (int h = 0; h < hidden; h++) {
      const double v = std::nearbyint(static_cast<double>(xr[h]) * scale);
      qt[h] = static_cast<int8_t>(v > 127 ? 127 : v < -127 ? -127 : v == v ? static_cast<int>(v) : 0);
    }
    for (int h = hidden; h < stride; h++) qt[h] = 0;
  }
}

extern "C" void halo_head_i4_row(const float* x, int hidden, uint8_t* codes, uint8_t* sub, float* scale, int32_t* sum) {
  const int stride = HALO_HEAD_I8_STRIDE(hidden), groups = stride / HALO_HEAD_I4_GROUP;
  std::vector<double> ideal(static_cast<size_t>(groups), 0.0);
  double top = 0;
  for (int g = 0; g < groups; g++) {
    const int h0 = g * HALO_HEAD_I4_GROUP, h1 = hidden < h0 + HALO_HEAD_I4_GROUP ? hidden : h0 + HALO_HEAD_I4_GROUP;
    float absmax = 0;
    for (int h = h0; h < h1; h++) absmax = std::fabs(x[h]) > absmax ? std::fabs(x[h]) : absmax;  // NaN compares false: ignored
    // The clipping that minimises the group's squared error among scales absmax/7 × {1, 0.95, …, 0.75} (only chooses
    // the scale, so float arithmetic and magic-number rounding — exact here, |v| ≤ 10 — are fine; NaN is skipped).
    double best = static_cast<double>(absmax) / 7.0;
    float best_err = -1;
    for (int m = 0; m < 6 && absmax > 0 && std::isfinite(absmax); m++) {
      const float d = absmax / 7.0f * (1.0f - 0.05f * static_cast<float>(m)), inv = 1.0f / d;
      float err = 0;
      for (int h = h0; h < h1; h++) {
        const float v = x[h] == x[h] ? x[h] : 0.0f;
        float c = (v * inv + 12582912.0f) - 12582912.0f;  // round half to even (1.5·2^23)
        c = c > 7.0f ? 7.0f : c < -7.0f ? -7.0f : c;
        err += (v - c * d) * (v - c * d);
      }
      if (best_err < 0 || err < best_err) best_err = err, best = static_cast<double>(d);
    }
    ideal[g] = best;
    top = ideal[g] > top ? ideal[g] : top;
  }
  const float s = static_cast<float>(top / 255.0);
  const bool usable = top > 0 && std::isfinite(top) && s > 0;
  int32_t total = 0;
  for (int g = 0; g < groups; g++) {
    // nearbyint rounds half to even in the default mode; every value is clamped before a cast.
    const double r = usable ? std::nearbyint(ideal[g] / static_cast<double>(s)) : 0.0;
    const int sg = r > 255 ? 255 : r < 0 ? 0 : static_cast<int>(r);
    sub[g] = static_cast<uint8_t>(sg);
    const double step = static_cast<double>(sg) * static_cast<double>(s);
    int group_sum = 0;
    for (int j = 0; j < HALO_HEAD_I4_GROUP / 2; j++) {
      int c[2] = {0, 0};
      for (int half = 0; half < 2; half++) {
        const int h = g * HALO_HEAD_I4_GROUP + half * (HALO_HEAD_I4_GROUP / 2) + j;
        if (h >= hidden || step == 0) continue;
        const double v = std::nearbyint(static_cast<double>(x[h]) / step);
        c[half] = v > 7 ? 7 : v < -7 ? -7 : v == v ? static_cast<int>(v) : 0;
      }
      codes[g * (HALO_HEAD_I4_GROUP / 2) + j] = static_cast<uint8_t>((c[0] + 8) | ((c[1] + 8) << 4));
      group_sum += c[0] + c[1];
    }
    total += sg * group_sum;
  }
  *scale = usable ? s : 0.0f;
  *sum = total;
}

extern "C" int32_t halo_quantize_i8_ref(const float* x, int n, double s, int8_t* q) {
  int32_t sum = 0;
  for (int i = 0; i < n; i++) {
    // nearbyint rounds half to even in the default mode; the clamp comes first, so the cast is always defined.
    const double v = std::nearbyint(static_cast<double>(x[i]) * s);
    const int code = v > 127 ? 127 : v < -128 ? -128 : v == v ? static_cast<int>(v) : 0;
    q[i] = static_cast<int8_t>(code);
    sum += code;
  }
  return sum;
}

namespace {

void gemm_i2_ref(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride, const void*) {
  for (int t = 0; t < n; t++) {
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    for (int r = r0; r < r1; r++) {
      const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
      int32_t sum = 0;
      for (int b = 0; b < nb; b++) {
        for (int p = 0; p < 64; p++) {
          const int byte = row[b].qs[p];
          for (int j = 0; j < 4; j++) sum += ((byte >> (2 * j)) & 3) * xt[b * 256 + 64 * j + p];
        }
      }
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = sum;
    }
  }
}

void gemm_i2_blocks_ref(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    for (int r = r0; r < r1; r++) {
      const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
      for (int b = 0; b < nb; b++) {
        int32_t sum = 0;
        for (int p = 0; p < 64; p++) {
          const int byte = row[b].qs[p];
          for (int j = 0; j < 4; j++) sum += ((byte >> (2 * j)) & 3) * xt[b * 256 + 64 * j + p];
        }
        y[static_cast<size_t>(t) * y_stride + static_cast<size_t>(r - r0) * nb + b] = sum;
      }
    }
  }
}

void head_f16_ref(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    for (int r = r0; r < r1; r++) {
      const uint16_t* row = w + static_cast<size_t>(r) * hidden;
      float sum = 0;
      for (int h = 0; h < hidden; h++) sum += halo_f16_to_f32_ref(row[h]) * x[static_cast<size_t>(t) * hidden + h];
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = sum;
    }
  }
}

void head_bf16_ref(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    for (int r = r0; r < r1; r++) {
      const uint16_t* row = w + static_cast<size_t>(r) * hidden;
      float sum = 0;
      for (int h = 0; h < hidden; h++) sum += halo_bf16_to_f32(row[h]) * x[static_cast<size_t>(t) * hidden + h];
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = sum;
    }
  }
}

void head_f32_ref(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    for (int r = r0; r < r1; r++) {
      const float* row = w + static_cast<size_t>(r) * hidden;
      double sum = 0;
      for (int h = 0; h < hidden; h++) sum += static_cast<double>(row[h]) * x[static_cast<size_t>(t) * hidden + h];
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = static_cast<float>(sum);
    }
  }
}

void head_i8_ref(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const int8_t* q, const double* s, int stride, int n, float* y,
                 int y_stride) {
  for (int t = 0; t < n; t++) {
    for (int r = r0; r < r1; r++) {
      const int8_t* row = w + static_cast<size_t>(r) * hidden;
      int32_t dot = 0;
      for (int h = 0; h < hidden; h++) dot += static_cast<int32_t>(q[static_cast<size_t>(t) * stride + h]) * row[h];
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = static_cast<float>(static_cast<double>(dot) * row_scale[r] / s[t]);
    }
  }
}

void head_i4_ref(const uint8_t* w, const uint8_t* sub, const float* row_scale, const int32_t* /*row_sum*/, int /*hidden*/, int r0, int r1, const int8_t* q,
                 const double* s, int stride, int n, float* y, int y_stride) {
  const int groups = stride / HALO_HEAD_I4_GROUP;
  const size_t row_bytes = static_cast<size_t>(stride) / 2;
  for (int t = 0; t < n; t++) {
    const int8_t* qt = q + static_cast<size_t>(t) * stride;
    for (int r = r0; r < r1; r++) {
      const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
      int64_t total = 0;
      for (int g = 0; g < groups; g++) {
        int32_t dot = 0;
        for (int j = 0; j < HALO_HEAD_I4_GROUP / 2; j++) {
          const uint8_t byte = row[g * (HALO_HEAD_I4_GROUP / 2) + j];
          dot += static_cast<int32_t>(qt[g * HALO_HEAD_I4_GROUP + j]) * ((byte & 15) - 8) +
                 static_cast<int32_t>(qt[g * HALO_HEAD_I4_GROUP + HALO_HEAD_I4_GROUP / 2 + j]) * ((byte >> 4) - 8);
        }
        total += static_cast<int64_t>(sub[static_cast<size_t>(r) * groups + g]) * dot;
      }
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = static_cast<float>(static_cast<double>(total) * row_scale[r] / s[t]);
    }
  }
}

void f32_to_f16_ref(uint16_t* dst, const float* src, int n) {
  for (int i = 0; i < n; i++) dst[i] = halo_f32_to_f16_ref(src[i]);
}

void f16_to_f32_ref(float* dst, const uint16_t* src, int n) {
  for (int i = 0; i < n; i++) dst[i] = halo_f16_to_f32_ref(src[i]);
}

}  // namespace

void halo_scale_dots_ref(const int32_t* raw, int count, int n, const int32_t* correction, const float* act_scale, const float* row_scale, float* y,
                         int y_stride) {
  for (int t = 0; t < n; t++) {
    const double s = act_scale[t];
    for (int r = 0; r < count; r++) {
      const int32_t dot = raw[static_cast<size_t>(t) * count + r] - correction[t];
      y[static_cast<size_t>(t) * y_stride + r] = static_cast<float>(static_cast<double>(dot) * row_scale[r] / s);
    }
  }
}

void halo_gemv_i2_sparse_ref(const uint8_t* masks, int tiles, int g0, int g1, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y) {
  for (int g = g0; g < g1; g++) {
    int32_t* yt = y + static_cast<size_t>(g - g0) * HALO_SPARSE_TILE;
    for (int i = 0; i < HALO_SPARSE_TILE; i++) yt[i] = 0;
    for (int c = 0; c < n_nz; c++) {
      const uint8_t* line = masks + (static_cast<size_t>(nz[c]) * tiles + g) * 64;
      const int32_t v = x[nz[c]];
      for (int i = 0; i < HALO_SPARSE_TILE; i++) {
        const int bit = 1 << (i & 7);
        if (line[i >> 3] & bit) yt[i] += v;
        if (line[32 + (i >> 3)] & bit) yt[i] -= v;
      }
    }
  }
}

void halo_sparse_masks(const halo_block_i2* w, int nb, int rows, int cols, int g0, int g1, uint8_t* masks) {
  // Eight rows at a time: byte p of a block for the 8 rows is one u64 (row i in byte i); each 2-bit field's "is 2" and
  // "is 0" flags land in bit 0 of each byte and one multiply gathers the 8 flags into the mask byte (bit i = row i).
  constexpr uint64_t kLow = 0x0101010101010101ull, kGather = 0x0102040810204080ull;
  const int tiles = HALO_SPARSE_TILES(rows);
  for (int g = g0; g < g1; g++) {
    for (int r8 = 0; r8 < HALO_SPARSE_TILE / 8; r8++) {
      const int r0 = g * HALO_SPARSE_TILE + r8 * 8;
      const halo_block_i2* row[8];
      for (int i = 0; i < 8; i++) row[i] = r0 + i < rows ? w + static_cast<size_t>(r0 + i) * nb : nullptr;
      for (int b = 0; b < nb; b++) {
        for (int p = 0; p < 64; p++) {
          uint64_t q = 0;
          for (int i = 0; i < 8; i++) q |= static_cast<uint64_t>(row[i] != nullptr ? row[i][b].qs[p] : 0x55) << (8 * i);
          for (int s = 0; s < 4; s++) {
            const int j = b * 256 + 64 * s + p;
            if (j >= cols) continue;
            const uint64_t c = q >> (2 * s);
            const uint64_t two = (c >> 1) & ~c & kLow;   // code 2: w = +1
            const uint64_t zero = ~(c | (c >> 1)) & kLow;  // code 0: w = −1
            uint8_t* line = masks + (static_cast<size_t>(j) * tiles + g) * 64;
            line[r8] = static_cast<uint8_t>((two * kGather) >> 56);
            line[32 + r8] = static_cast<uint8_t>((zero * kGather) >> 56);
          }
        }
      }
    }
  }
}

extern "C" const halo_kernels halo_kernels_ref = {
    "scalar",       gemm_i2_ref,    gemm_i2_blocks_ref, head_f16_ref,        head_f32_ref,
    head_bf16_ref,  head_i8_ref,    head_i4_ref,        halo_attn_tile_ref,  halo_quantize_i8_ref,
    f32_to_f16_ref, f16_to_f32_ref, halo_silu_mul_ref,  halo_scale_dots_ref, halo_gemv_i2_sparse_ref,
};
