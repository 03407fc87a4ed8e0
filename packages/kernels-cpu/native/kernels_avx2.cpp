// kernels_avx2.cpp: AVX2 + FMA + F16C kernels; compiled alone with those flags, called only when the CPU has them.
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>
#include "attn_dispatch.h"
#include "exp_poly.h"
#include "halo_cpu.h"
#include "head_tiles.h"

namespace {

constexpr int kPrefetchBytes = 1536;

inline void prefetch_stream(const char* at, const char* end, const char* next) {
  if (at < end) {
    _mm_prefetch(at, _MM_HINT_T0);
  } else if (next != nullptr) {
    _mm_prefetch(next + (at - end), _MM_HINT_T0);
  }
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Raw code·activation dot of one 256-block for T tokens, accumulated as s16 (≤ 8 × 512, no
// saturation: codes ≤ 2, |x| ≤ 128) and widened once per block with vpmaddwd.
template <int T>
inline void block_dot(const halo_block_i2* blk, const int8_t* x, int x_stride, int b, __m256i* acc) {
  const __m256i mask = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32));
  __m256i s16[T];
  for (int t = 0; t < T; t++) s16[t] = _mm256_setzero_si256();
  for (int j = 0; j < 4; j++) {
    const __m256i cl = _mm256_and_si256(_mm256_srli_epi16(lo, 2 * j), mask);
    const __m256i ch = _mm256_and_si256(_mm256_srli_epi16(hi, 2 * j), mask);
    for (int t = 0; t < T; t++) {
      const int8_t* xb = x + static_cast<size_t>(t) * x_stride + b * 256 + 64 * j;
      s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(cl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb))));
      s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(ch, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32))));
    }
  }
  for (int t = 0; t < T; t++) acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16[t], ones));
}

// T tokens × one row at a time: each block's 8 code vectors decoded once into registers, then per token 8 vpmaddubsw
// summed as s16 (≤ 8 × 512, no saturation: codes ≤ 2, |x| ≤ 128) and widened once with vpmaddwd. Tokens outer, codes
// inner: the old codes-outer order let GCC hoist all 8·T products and spill them (75 → 91 G MAC/s at 64 tokens on
// one Zen 3 core, interleaved lab runs).
template <int T>
void gemm_i2_tile(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int32_t* y, int y_stride, const char* end, const char* next) {
  const __m256i mask = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  for (int r = r0; r < r1; r++) {
    const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
    __m256i acc[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
    for (int b = 0; b < nb; b++) {
      prefetch_stream(reinterpret_cast<const char*>(row + b) + kPrefetchBytes, end, next);
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[b].qs));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[b].qs + 32));
      __m256i c[8];  // c[2j] codes of k = 64j + 0..31, c[2j + 1] of 64j + 32..63
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        c[2 * j] = _mm256_and_si256(_mm256_srli_epi16(lo, 2 * j), mask);
        c[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(hi, 2 * j), mask);
      }
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const int8_t* xb = x + static_cast<size_t>(t) * x_stride + b * 256;
        __m256i s16 = _mm256_maddubs_epi16(c[0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
#pragma GCC unroll 8
        for (int i = 1; i < 8; i++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c[i], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32 * i))));
        acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16, ones));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) y[static_cast<size_t>(t) * y_stride + (r - r0)] = hsum_i32(acc[t]);
  }
}

void gemm_i2(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride, const void* prefetch_next) {
  const char* end = reinterpret_cast<const char*>(w + static_cast<size_t>(r1) * nb);
  const char* next = static_cast<const char*>(prefetch_next);
  if (n == 1) {
    gemm_i2_tile<1>(w, nb, r0, r1, x, x_stride, y, y_stride, end, next);
    return;
  }
  constexpr int kRowTile = 64;
  for (int rt = r0; rt < r1; rt += kRowTile) {
    const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;
    int t = 0;
    for (; t + 4 <= n; t += 4)
      gemm_i2_tile<4>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, end, next);
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    int32_t* yt = y + static_cast<size_t>(t) * y_stride + (rt - r0);
    switch (n - t) {
      case 3: gemm_i2_tile<3>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 2: gemm_i2_tile<2>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 1: gemm_i2_tile<1>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      default: break;
    }
  }
}

void gemm_i2_blocks(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    for (int r = r0; r < r1; r++) {
      const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
      for (int b = 0; b < nb; b++) {
        __m256i acc = _mm256_setzero_si256();
        block_dot<1>(row + b, xt, x_stride, b, &acc);
        y[static_cast<size_t>(t) * y_stride + static_cast<size_t>(r - r0) * nb + b] = hsum_i32(acc);
      }
    }
  }
}

// R rows × T tokens of the float head at once: R·T independent FMA chains (a single row and token would be one chain,
// bound by the FMA latency, not by memory), each weight vector loaded and converted once for the T tokens.
template <int R, int T, typename Load, typename Scalar>
void head_block(int hidden, int r, int t0, const float* x, float* y, int y_stride, int r0, Load& load, Scalar& scalar) {
  __m256 acc[T][R];
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) acc[t][i] = _mm256_setzero_ps();
  int h = 0;
  for (; h + 8 <= hidden; h += 8) {
    __m256 wv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) wv[i] = load(r + i, h);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const __m256 xv = _mm256_loadu_ps(x + static_cast<size_t>(t0 + t) * hidden + h);
#pragma GCC unroll 8
      for (int i = 0; i < R; i++) acc[t][i] = _mm256_fmadd_ps(wv[i], xv, acc[t][i]);
    }
  }
  for (int t = 0; t < T; t++)
    for (int i = 0; i < R; i++) {
      float sum = hsum_ps(acc[t][i]);
      for (int k = h; k < hidden; k++) sum += scalar(r + i, k) * x[static_cast<size_t>(t0 + t) * hidden + k];
      y[static_cast<size_t>(t0 + t) * y_stride + (r + i - r0)] = sum;
    }
}

// Rows in tiles of 16; within a tile, token pairs as 4 rows × 2 tokens (8 accumulators, 4 weight vectors, in 16
// registers) and a last single token as 8 rows per block. The tile keeps a step's weights streaming from DRAM once:
// with token pairs outermost, 8 logit rows streamed the whole head 4 times (batch-8 head 116 ms per step).
template <typename Load, typename Scalar>
void head_generic(int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride, Load load, Scalar scalar) {
  constexpr int kRowTile = 16;
  for (int rt = r0; rt < r1; rt += kRowTile) {
    const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;
    int t0 = 0;
    for (; t0 + 2 <= n; t0 += 2) {
      int r = rt;
      for (; r + 4 <= re; r += 4) head_block<4, 2>(hidden, r, t0, x, y, y_stride, r0, load, scalar);
      for (; r < re; r++) head_block<1, 2>(hidden, r, t0, x, y, y_stride, r0, load, scalar);
    }
    if (t0 < n) {
      int r = rt;
      for (; r + 8 <= re; r += 8) head_block<8, 1>(hidden, r, t0, x, y, y_stride, r0, load, scalar);
      for (; r < re; r++) head_block<1, 1>(hidden, r, t0, x, y, y_stride, r0, load, scalar);
    }
  }
}

void head_f16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
        if ((h & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);  // once per 64 bytes
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      },
      [&](int r, int k) { return halo_f16_to_f32_ref(w[static_cast<size_t>(r) * hidden + k]); });
}

void head_bf16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
        if ((h & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);  // once per 64 bytes
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
      },
      [&](int r, int k) { return halo_bf16_to_f32(w[static_cast<size_t>(r) * hidden + k]); });
}

void head_f32(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const float* p = w + static_cast<size_t>(r) * hidden + h;
        if ((h & 15) == 0) _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);  // once per 64 bytes
        return _mm256_loadu_ps(p);
      },
      [&](int r, int k) { return w[static_cast<size_t>(r) * hidden + k]; });
}

// Int8 activations × int8 weights, 4 tokens per pass: |w| (u8) × sign(w)·q (s8) with vpmaddubsw, no pair saturates
// because |q|, |w| ≤ 127; pairs widened to s32 with vpmaddwd.
void head_i8(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const int8_t* q, const double* s, int stride, int n, float* y, int y_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  halo::for_head_rows(r0, r1, n, 4, [&](int r, int t0, int tn) {
    const int8_t* row = w + static_cast<size_t>(r) * hidden;
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    int h = 0;
    for (; h + 32 <= hidden; h += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(row + h) + 1024, _MM_HINT_T0);
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + h));
      const __m256i aw = _mm256_abs_epi8(wv);
      for (int t = 0; t < tn; t++) {
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + static_cast<size_t>(t0 + t) * stride + h));
        acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(qv, wv)), ones));
      }
    }
    for (int t = 0; t < tn; t++) {
      int32_t dot = hsum_i32(acc[t]);
      for (int k = h; k < hidden; k++) dot += static_cast<int32_t>(q[static_cast<size_t>(t0 + t) * stride + k]) * row[k];
      y[static_cast<size_t>(t0 + t) * y_stride + (r - r0)] = static_cast<float>(static_cast<double>(dot) * row_scale[r] / s[t0 + t]);
    }
  });
}

// Int4 head, 4 tokens per pass: per 64-weight group the low and high nibbles of 32 bytes as signed codes (c = nibble −
// 8), vpmaddubsw of the biased activations (q + 128, u8) with them (|pair| ≤ 2·255·7: no saturation), vpmaddwd by the
// group's sub-scale into s32 lanes, the two halves in separate accumulators (≤ 2·3570·255 per group and lane: exact
// below HALO_HEAD_I4_MAX_HIDDEN); summed in int64, then 128·row_sum removes the bias.
void head_i4(const uint8_t* w, const uint8_t* sub, const float* row_scale, const int32_t* row_sum, int /*hidden*/, int r0, int r1, const int8_t* q,
             const double* s, int stride, int n, float* y, int y_stride) {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
  const int groups = stride / HALO_HEAD_I4_GROUP;
  const size_t row_bytes = static_cast<size_t>(stride) / 2;
  halo::for_head_rows(r0, r1, n, 4, [&](int r, int t0, int tn) {
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    const uint8_t* sg = sub + static_cast<size_t>(r) * groups;
    __m256i acc_lo[4], acc_hi[4];
    for (int t = 0; t < 4; t++) acc_lo[t] = acc_hi[t] = _mm256_setzero_si256();
    for (int g = 0; g < groups; g++) {
      _mm_prefetch(reinterpret_cast<const char*>(row + 32 * g) + 1024, _MM_HINT_T0);
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * g));
      const __m256i c_lo = _mm256_sub_epi8(_mm256_and_si256(raw, low), eight);
      const __m256i c_hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low), eight);
      const __m256i sv = _mm256_set1_epi16(static_cast<short>(sg[g]));
      for (int t = 0; t < tn; t++) {
        const int8_t* qg = q + static_cast<size_t>(t0 + t) * stride + HALO_HEAD_I4_GROUP * g;
        const __m256i a_lo = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qg)), bias);
        const __m256i a_hi = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qg + 32)), bias);
        acc_lo[t] = _mm256_add_epi32(acc_lo[t], _mm256_madd_epi16(_mm256_maddubs_epi16(a_lo, c_lo), sv));
        acc_hi[t] = _mm256_add_epi32(acc_hi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(a_hi, c_hi), sv));
      }
    }
    const int64_t correction = 128 * static_cast<int64_t>(row_sum[r]);
    for (int t = 0; t < tn; t++) {
      const __m256i wide = _mm256_add_epi64(
          _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc_lo[t])), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc_lo[t], 1))),
          _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc_hi[t])), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc_hi[t], 1))));
      alignas(32) int64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), wide);
      const int64_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3] - correction;
      y[static_cast<size_t>(t0 + t) * y_stride + (r - r0)] = static_cast<float>(static_cast<double>(total) * row_scale[r] / s[t0 + t]);
    }
  });
}

// exp(x) for x ≤ 0 in float64 to ~1 ulp: x = k·ln2 + r, degree-13 Taylor polynomial of e^r, then ·2^k built in the
// exponent field. Below −708 (where 2^k would need a subnormal) the result is 0: attention adds it to a sum ≥ 1.
inline __m256d exp_pd(__m256d x) {
  const __m256d tiny = _mm256_cmp_pd(x, _mm256_set1_pd(-708.0), _CMP_LT_OQ);
  x = _mm256_max_pd(x, _mm256_set1_pd(-708.0));
  const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(halo_exp::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(halo_exp::kLn2Hi), x);
  r = _mm256_fnmadd_pd(k, _mm256_set1_pd(halo_exp::kLn2Lo), r);
  __m256d p = _mm256_set1_pd(halo_exp::kInvFactorial[halo_exp::kDegree]);
  for (int i = halo_exp::kDegree - 1; i >= 0; i--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(halo_exp::kInvFactorial[i]));
  const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023)), 52);
  return _mm256_andnot_pd(tiny, _mm256_mul_pd(p, _mm256_castsi256_pd(bits)));
}

// 4 elements of a key/value row (KV a halo_kv_dtype; int8 rows read as f32(code · row_scale), one f32 rounding as in
// the scalar twin) widened to float64. Unless Full, only `left` (< 4: a row's tail) are read and the other lanes are 0.
// KV and Full are template arguments so the loops that call this carry no per-element branches.
template <int KV, bool Full>
inline __m256d widen4(const void* base, size_t offset, float row_scale, int left) {
  if (Full || left >= 4) {
    __m128 v;
    if (KV == HALO_KV_F16) {
      v = _mm256_castps256_ps128(_mm256_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + offset))));
    } else if (KV == HALO_KV_I8) {
      int32_t four;
      std::memcpy(&four, static_cast<const int8_t*>(base) + offset, 4);
      v = _mm_mul_ps(_mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(four))), _mm_set1_ps(row_scale));
    } else {
      v = _mm_loadu_ps(static_cast<const float*>(base) + offset);
    }
    return _mm256_cvtps_pd(v);
  }
  alignas(32) double lanes[4] = {0, 0, 0, 0};
  for (int i = 0; i < left; i++) {
    if (KV == HALO_KV_F16) lanes[i] = halo_f16_to_f32_ref(static_cast<const uint16_t*>(base)[offset + i]);
    else if (KV == HALO_KV_I8) lanes[i] = static_cast<float>(static_cast<const int8_t*>(base)[offset + i]) * row_scale;
    else lanes[i] = static_cast<const float*>(base)[offset + i];
  }
  return _mm256_load_pd(lanes);
}

// Prefetches one key/value row (hd elements of `kv`) into L1: at long contexts the rows stream from DRAM a whole KV
// width apart, which the hardware prefetchers follow poorly.
inline void prefetch_row(const void* base, size_t offset, int kv, int hd) {
  const size_t elem = kv == HALO_KV_F32 ? 4 : kv == HALO_KV_F16 ? 2 : 1;
  const char* p = static_cast<const char*>(base) + offset * elem;
  for (size_t b = 0; b < static_cast<size_t>(hd) * elem; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// Scores of G query heads (qd: [G][hdp] float64, zero past hd) against 2 key rows at a time, the keys widened in
// registers once for the G heads (no float64 copy of the tile: writing and re-reading it cost more than converting).
// 2·G ≤ 8 independent FMA chains.
template <int G, int KV, bool Full>
void attn_scores(const double* qd, int hdp, int hd, const void* keys, int stride, const float* scales, int scale_stride, int span, double scale, double* s,
                 int sp) {
  for (int p0 = 0; p0 < span; p0 += 2) {
    __m256d acc[G][2];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) acc[g][0] = acc[g][1] = _mm256_setzero_pd();
    const int p1 = p0 + 1 < span ? p0 + 1 : p0;
    const size_t rows[2] = {static_cast<size_t>(p0) * stride, static_cast<size_t>(p1) * stride};
    const float row_scales[2] = {KV == HALO_KV_I8 ? scales[static_cast<size_t>(p0) * scale_stride] : 0.0f,
                                 KV == HALO_KV_I8 ? scales[static_cast<size_t>(p1) * scale_stride] : 0.0f};
    constexpr int kAhead = 8;  // rows
    for (int j = 0; j < 2; j++)
      if (p0 + kAhead + j < span) prefetch_row(keys, static_cast<size_t>(p0 + kAhead + j) * stride, KV, hd);
    for (int d = 0; d < hdp; d += 4) {
      const __m256d k0 = widen4<KV, Full>(keys, rows[0] + d, row_scales[0], hd - d), k1 = widen4<KV, Full>(keys, rows[1] + d, row_scales[1], hd - d);
#pragma GCC unroll 4
      for (int g = 0; g < G; g++) {
        const __m256d qv = _mm256_loadu_pd(qd + static_cast<size_t>(g) * hdp + d);
        acc[g][0] = _mm256_fmadd_pd(k0, qv, acc[g][0]);
        acc[g][1] = _mm256_fmadd_pd(k1, qv, acc[g][1]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
      // Lanes 0|1 of h = (Σ acc[g][0], Σ acc[g][1]) after the horizontal adds.
      const __m256d h = _mm256_hadd_pd(acc[g][0], acc[g][1]);
      const __m128d two = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
      double pair[2];
      _mm_storeu_pd(pair, _mm_mul_pd(two, _mm_set1_pd(scale)));
      s[static_cast<size_t>(g) * sp + p0] = pair[0];
      if (p0 + 1 < span) s[static_cast<size_t>(g) * sp + p0 + 1] = pair[1];
    }
  }
}

// Weighted sums of value rows for G heads (weights w: [G][sp]), 4·C dimensions (C register accumulators per head) at a
// time, each value chunk widened once for the G heads; G·C = 8 independent FMA chains.
template <int G, int C, int KV, bool Full>
void attn_values(const double* w, int sp, int hd, int hdp, const void* values, int stride, const float* scales, int scale_stride, int span, double* out) {
  for (int d0 = 0; d0 < hdp; d0 += 4 * C) {
    const int chunks = (hdp - d0) / 4 < C ? (hdp - d0) / 4 : C;
    __m256d acc[G][C];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
      for (int c = 0; c < C; c++) acc[g][c] = _mm256_setzero_pd();
    for (int p = 0; p < span; p++) {
      if (d0 == 0 && p + 8 < span) prefetch_row(values, static_cast<size_t>(p + 8) * stride, KV, hd);
      const float row_scale = KV == HALO_KV_I8 ? scales[static_cast<size_t>(p) * scale_stride] : 0.0f;
      __m256d v[C];
#pragma GCC unroll 8
      for (int c = 0; c < C; c++)
        v[c] = c < chunks ? widen4<KV, Full>(values, static_cast<size_t>(p) * stride + d0 + 4 * c, row_scale, hd - d0 - 4 * c) : _mm256_setzero_pd();
#pragma GCC unroll 4
      for (int g = 0; g < G; g++) {
        const __m256d wv = _mm256_broadcast_sd(w + static_cast<size_t>(g) * sp + p);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) acc[g][c] = _mm256_fmadd_pd(wv, v[c], acc[g][c]);
      }
    }
    // Stored with constant indices once the loop is done: indexing acc by the run-time chunk count here made GCC keep
    // a stack copy of every accumulator, written on each position (8 stores per 8 FMAs, ~3× slower).
    alignas(32) double lanes[G][4 * C];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 8
      for (int c = 0; c < C; c++) _mm256_store_pd(lanes[g] + 4 * c, acc[g][c]);
    for (int g = 0; g < G; g++)
      for (int i = 0; i < 4 * chunks && d0 + i < hd; i++) out[static_cast<size_t>(g) * (hd + 2) + 2 + d0 + i] = lanes[g][i];
  }
}

// Softmax weights of `group` query heads in place (scores s: [group][sp]); out[g] gets m = the max score and l = Σ weights.
void attn_softmax(double* s, int sp, int span, int group, int hd, double* out) {
  for (int g = 0; g < group; g++) {
    double* sg = s + static_cast<size_t>(g) * sp;
    double m = -INFINITY;
    for (int p = 0; p < span; p++) m = sg[p] > m ? sg[p] : m;
    for (int p = span; p < span + 4; p++) sg[p] = -INFINITY;  // lanes past the span weigh 0
    const __m256d m_v = _mm256_set1_pd(m);
    __m256d lv = _mm256_setzero_pd();
    for (int p = 0; p < span; p += 4) {
      const __m256d w = exp_pd(_mm256_sub_pd(_mm256_loadu_pd(sg + p), m_v));
      _mm256_storeu_pd(sg + p, w);
      lv = _mm256_add_pd(lv, w);
    }
    double* o = out + static_cast<size_t>(g) * (hd + 2);
    o[0] = m;
    __m128d l2 = _mm_add_pd(_mm256_castpd256_pd128(lv), _mm256_extractf128_pd(lv, 1));
    o[1] = _mm_cvtsd_f64(_mm_add_sd(l2, _mm_unpackhi_pd(l2, l2)));
  }
}

void attn_tile(const float* q, int group, int hd, const void* keys, const void* values, int kv, int stride, int span, const float* key_scales,
               const float* value_scales, int scale_stride, double scale, double* scratch, double* out) {
  const int hdp = (hd + 7) / 8 * 8;
  double* qd = scratch;                               // [group][hdp] queries widened to float64, zero past hd
  double* s = qd + static_cast<size_t>(group) * hdp;  // [group][span + 8] scores, then weights
  const int sp = span + 8;
  for (int g = 0; g < group; g++) {
    int d = 0;
    for (; d < hd; d++) qd[static_cast<size_t>(g) * hdp + d] = q[static_cast<size_t>(g) * hd + d];
    for (; d < hdp; d++) qd[static_cast<size_t>(g) * hdp + d] = 0;
  }
  // Full: hd is a multiple of 8, so every 4-element chunk is whole.
  halo::attn_dispatch(kv, hd == hdp, [&](auto kv_tag, auto full_tag) {
    constexpr int KV = decltype(kv_tag)::value;
    constexpr bool Full = decltype(full_tag)::value;
    // Scores, 4 query heads at a time.
    halo::for_head_passes(group, [&](auto heads, int g) {
      attn_scores<decltype(heads)::value, KV, Full>(qd + static_cast<size_t>(g) * hdp, hdp, hd, keys, stride, key_scales, scale_stride, span, scale,
                                                    s + static_cast<size_t>(g) * sp, sp);
    });
    attn_softmax(s, sp, span, group, hd, out);
    // Weighted sums of values, 4 heads × 8 dimensions (or fewer heads × more dimensions) at a time.
    halo::for_head_passes(group, [&](auto heads, int g) {
      constexpr int G = decltype(heads)::value;
      attn_values<G, G >= 3 ? 2 : 8 / G, KV, Full>(s + static_cast<size_t>(g) * sp, sp, hd, hdp, values, stride, value_scales, scale_stride, span,
                                                   out + static_cast<size_t>(g) * (hd + 2));
    });
  });
}

// exp_pd's 2^k is built in the exponent field, valid for k ≤ 1023: −g above 709 is clamped there (e^709 ≈ 8e307, so
// g / (1 + e^709) is ~1e-306 instead of 0, and both round to a signed zero in float32).
void silu_mul(const float* gate, const float* up, int n, float* out) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(gate + i));
    const __m256d e = exp_pd(_mm256_min_pd(_mm256_sub_pd(_mm256_setzero_pd(), g), _mm256_set1_pd(709.0)));
    const __m256d v = _mm256_mul_pd(_mm256_div_pd(g, _mm256_add_pd(_mm256_set1_pd(1.0), e)), _mm256_cvtps_pd(_mm_loadu_ps(up + i)));
    _mm_storeu_ps(out + i, _mm256_cvtpd_ps(v));
  }
  if (i < n) halo_silu_mul_ref(gate + i, up + i, n - i, out + i);
}

int32_t quantize_i8(const float* x, int n, double s, int8_t* q) {
  const __m256d sv = _mm256_set1_pd(s), lo = _mm256_set1_pd(-128.0), hi = _mm256_set1_pd(127.0);
  __m128i sum = _mm_setzero_si128();
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    // max/min return the second operand for NaN: a NaN activation becomes −128 here and 0 in the scalar twin, so
    // NaN is cleared first (both give 0).
    __m256d v = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), sv);
    v = _mm256_and_pd(v, _mm256_cmp_pd(v, v, _CMP_ORD_Q));
    v = _mm256_min_pd(_mm256_max_pd(_mm256_round_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
    const __m128i c = _mm256_cvtpd_epi32(v);
    sum = _mm_add_epi32(sum, c);
    const __m128i packed = _mm_packs_epi16(_mm_packs_epi32(c, c), _mm_setzero_si128());
    const int32_t bytes = _mm_cvtsi128_si32(packed);
    std::memcpy(q + i, &bytes, 4);
  }
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4e));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xb1));
  int32_t total = _mm_cvtsi128_si32(sum);
  return total + halo_quantize_i8_ref(x + i, n - i, s, q + i);  // the scalar twin for the tail
}

void f32_to_f16(uint16_t* dst, const float* src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) dst[i] = halo_f32_to_f16_ref(src[i]);
}

void f16_to_f32(float* dst, const uint16_t* src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; i++) dst[i] = halo_f16_to_f32_ref(src[i]);
}

void scale_dots(const int32_t* raw, int count, int n, const int32_t* correction, const float* act_scale, const float* row_scale, float* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    const int32_t* rt = raw + static_cast<size_t>(t) * count;
    float* yt = y + static_cast<size_t>(t) * y_stride;
    const __m128i c = _mm_set1_epi32(correction[t]);
    const __m256d s = _mm256_set1_pd(act_scale[t]);
    int r = 0;
    for (; r + 4 <= count; r += 4) {
      const __m256d dot = _mm256_cvtepi32_pd(_mm_sub_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rt + r)), c));
      const __m256d v = _mm256_div_pd(_mm256_mul_pd(dot, _mm256_cvtps_pd(_mm_loadu_ps(row_scale + r))), s);
      _mm_storeu_ps(yt + r, _mm256_cvtpd_ps(v));
    }
    if (r < count) halo_scale_dots_ref(rt + r, count - r, 1, correction + t, act_scale + t, row_scale + r, yt + r, 0);
  }
}

// Columns a tile's int16 sums take before they are widened: 255 · 128 < 2^15 whatever the signs.
constexpr int kSparseFlush = 255;
// Columns ahead whose mask line is prefetched (the listed columns are scattered, so the hardware prefetcher misses them).
constexpr int kSparsePrefetch = 8;

// AVX2 has no mask registers: each 16-bit half of a mask is broadcast and compared against one bit per lane, and the
// activation added or subtracted under the lane masks. A tile goes in two passes of 128 rows (8 × 16 int16 sums in
// registers); the second pass reads the lines the first brought into cache.
void gemv_i2_sparse(const uint8_t* masks, int tiles, int g0, int g1, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y) {
  const size_t stride = static_cast<size_t>(tiles) * 64;
  const __m256i bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, static_cast<int16_t>(0x8000));
  for (int g = g0; g < g1; g++) {
    const uint8_t* tile = masks + static_cast<size_t>(g) * 64;
    int32_t* yt = y + static_cast<size_t>(g - g0) * HALO_SPARSE_TILE;
    for (int half = 0; half < 2; half++) {
      __m256i wide[16];
#pragma GCC unroll 16
      for (int a = 0; a < 16; a++) wide[a] = _mm256_setzero_si256();
      for (int c0 = 0; c0 < n_nz; c0 += kSparseFlush) {
        const int c1 = std::min(n_nz, c0 + kSparseFlush);
        __m256i acc[8];
#pragma GCC unroll 8
        for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_si256();
        for (int c = c0; c < c1; c++) {
          if (c + kSparsePrefetch < n_nz)
            _mm_prefetch(reinterpret_cast<const char*>(tile) + static_cast<size_t>(nz[c + kSparsePrefetch]) * stride, _MM_HINT_T0);
          const uint8_t* line = tile + static_cast<size_t>(nz[c]) * stride + 16 * half;
          const __m256i v = _mm256_set1_epi16(x[nz[c]]);
#pragma GCC unroll 8
          for (int a = 0; a < 8; a++) {
            uint16_t p, m;
            std::memcpy(&p, line + 2 * a, 2);
            std::memcpy(&m, line + 32 + 2 * a, 2);
            const __m256i plus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(static_cast<int16_t>(p)), bit), bit);
            const __m256i minus = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(static_cast<int16_t>(m)), bit), bit);
            acc[a] = _mm256_sub_epi16(_mm256_add_epi16(acc[a], _mm256_and_si256(plus, v)), _mm256_and_si256(minus, v));
          }
        }
#pragma GCC unroll 8
        for (int a = 0; a < 8; a++) {
          wide[2 * a] = _mm256_add_epi32(wide[2 * a], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[a])));
          wide[2 * a + 1] = _mm256_add_epi32(wide[2 * a + 1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[a], 1)));
        }
      }
#pragma GCC unroll 16
      for (int a = 0; a < 16; a++) _mm256_storeu_si256(reinterpret_cast<__m256i*>(yt + 128 * half + 8 * a), wide[a]);
    }
  }
}

}  // namespace

extern "C" const halo_kernels halo_kernels_avx2 = {
    "avx2",    gemm_i2,     gemm_i2_blocks, head_f16,   head_f32, head_bf16,  head_i8,        head_i4,
    attn_tile, quantize_i8, f32_to_f16,     f16_to_f32, silu_mul, scale_dots, gemv_i2_sparse,
};
