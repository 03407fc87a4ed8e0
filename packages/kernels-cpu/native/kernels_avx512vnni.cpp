// kernels_avx512vnni.cpp: AVX-512 (F, BW, VL) + VNNI kernels; compiled alone with those flags, called only when the CPU has them.
#include <immintrin.h>
#include <cmath>
#include <cstring>
#include "halo_cpu.h"

namespace {

// Software prefetch distance in bytes (performance notes in README: 1-2 KB ahead was the probe's best).
constexpr int kPrefetchBytes = 1536;

inline void prefetch_stream(const char* at, const char* end, const char* next) {
  if (at < end) {
    _mm_prefetch(at, _MM_HINT_T0);
  } else if (next != nullptr) {
    _mm_prefetch(next + (at - end), _MM_HINT_T0);
  }
}

// T tokens per pass over a row; A independent accumulators per token hide vpdpbusd latency.
template <int T>
void gemm_i2_tile(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int32_t* y,
                  int y_stride, const char* end, const char* next) {
  constexpr int A = T == 1 ? 4 : (T == 2 ? 2 : 1);
  const __m512i mask = _mm512_set1_epi8(3);
  for (int r = r0; r < r1; r++) {
    const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
    __m512i acc[T][A];
    for (int t = 0; t < T; t++)
      for (int a = 0; a < A; a++) acc[t][a] = _mm512_setzero_si512();
    for (int b = 0; b < nb; b++) {
      prefetch_stream(reinterpret_cast<const char*>(row + b) + kPrefetchBytes, end, next);
      const __m512i v = _mm512_loadu_si512(row[b].qs);
      const __m512i c0 = _mm512_and_si512(v, mask);
      const __m512i c1 = _mm512_and_si512(_mm512_srli_epi16(v, 2), mask);
      const __m512i c2 = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      const __m512i c3 = _mm512_and_si512(_mm512_srli_epi16(v, 6), mask);
      for (int t = 0; t < T; t++) {
        const int8_t* xb = x + static_cast<size_t>(t) * x_stride + b * 256;
        acc[t][0 % A] = _mm512_dpbusd_epi32(acc[t][0 % A], c0, _mm512_loadu_si512(xb));
        acc[t][1 % A] = _mm512_dpbusd_epi32(acc[t][1 % A], c1, _mm512_loadu_si512(xb + 64));
        acc[t][2 % A] = _mm512_dpbusd_epi32(acc[t][2 % A], c2, _mm512_loadu_si512(xb + 128));
        acc[t][3 % A] = _mm512_dpbusd_epi32(acc[t][3 % A], c3, _mm512_loadu_si512(xb + 192));
      }
    }
    for (int t = 0; t < T; t++) {
      __m512i s = acc[t][0];
      for (int a = 1; a < A; a++) s = _mm512_add_epi32(s, acc[t][a]);
      y[static_cast<size_t>(t) * y_stride + (r - r0)] = _mm512_reduce_add_epi32(s);
    }
  }
}

void gemm_i2(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y,
             int y_stride, const void* prefetch_next) {
  const char* end = reinterpret_cast<const char*>(w + static_cast<size_t>(r1) * nb);
  const char* next = static_cast<const char*>(prefetch_next);
  if (n == 1) {
    gemm_i2_tile<1>(w, nb, r0, r1, x, x_stride, y, y_stride, end, next);
    return;
  }
  // Rows in tiles that stay in L2 while every token group passes over them.
  constexpr int kRowTile = 64;
  for (int rt = r0; rt < r1; rt += kRowTile) {
    const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;
    int t = 0;
    for (; t + 8 <= n; t += 8)
      gemm_i2_tile<8>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, end, next);
    const int left = n - t;
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    int32_t* yt = y + static_cast<size_t>(t) * y_stride + (rt - r0);
    switch (left) {
      case 7: gemm_i2_tile<7>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 6: gemm_i2_tile<6>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 5: gemm_i2_tile<5>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 4: gemm_i2_tile<4>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 3: gemm_i2_tile<3>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 2: gemm_i2_tile<2>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      case 1: gemm_i2_tile<1>(w, nb, rt, re, xt, x_stride, yt, y_stride, end, next); break;
      default: break;
    }
  }
}

void gemm_i2_blocks(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y,
                    int y_stride) {
  const __m512i mask = _mm512_set1_epi8(3);
  for (int t = 0; t < n; t++) {
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    for (int r = r0; r < r1; r++) {
      const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
      for (int b = 0; b < nb; b++) {
        const __m512i v = _mm512_loadu_si512(row[b].qs);
        const int8_t* xb = xt + b * 256;
        __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(v, mask), _mm512_loadu_si512(xb));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 2), mask), _mm512_loadu_si512(xb + 64));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), _mm512_loadu_si512(xb + 128));
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 6), mask), _mm512_loadu_si512(xb + 192));
        y[static_cast<size_t>(t) * y_stride + static_cast<size_t>(r - r0) * nb + b] = _mm512_reduce_add_epi32(acc);
      }
    }
  }
}

inline __mmask16 tail_mask(int left) { return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u); }

// Up to 4 tokens per pass over the head rows, so each weight row is read once per 4 logit rows.
template <typename Load>
void head_generic(int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride, Load load) {
  for (int t0 = 0; t0 < n; t0 += 4) {
    const int tn = n - t0 < 4 ? n - t0 : 4;
    for (int r = r0; r < r1; r++) {
      __m512 acc[4][2];
      for (int t = 0; t < 4; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
      int h = 0;
      int parity = 0;
      for (; h < hidden; h += 16, parity ^= 1) {
        const __mmask16 m = tail_mask(hidden - h);
        const __m512 wv = load(r, h, m);
        for (int t = 0; t < tn; t++) {
          const __m512 xv = _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(t0 + t) * hidden + h);
          acc[t][parity] = _mm512_fmadd_ps(wv, xv, acc[t][parity]);
        }
      }
      for (int t = 0; t < tn; t++)
        y[static_cast<size_t>(t0 + t) * y_stride + (r - r0)] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
    }
  }
}

void head_f16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m) {
    const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
    if ((h & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);  // once per 64-byte line
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  });
}

void head_f32(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m) {
    const float* p = w + static_cast<size_t>(r) * hidden + h;
    _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);
    return _mm512_maskz_loadu_ps(m, p);
  });
}

void head_i8(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const float* x, int n, float* y,
             int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m) {
    const int8_t* p = w + static_cast<size_t>(r) * hidden + h;
    _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
  });
  for (int t = 0; t < n; t++)
    for (int r = r0; r < r1; r++) y[static_cast<size_t>(t) * y_stride + (r - r0)] *= row_scale[r];
}

inline __mmask8 tail8(int left) { return left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u); }

// exp(x) for x ≤ 0 in float64 to ~1 ulp: x = k·ln2 + r, |r| ≤ ln2/2, degree-13 Taylor polynomial of e^r, then ·2^k
// (scalef). Below −745 the result is 0, as the exact exp rounds there.
inline __m512d exp_pd(__m512d x) {
  x = _mm512_max_pd(x, _mm512_set1_pd(-746.0));
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), x);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);
  static constexpr double kInvFactorial[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
                                               1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
  __m512d p = _mm512_set1_pd(kInvFactorial[13]);
  for (int i = 12; i >= 0; i--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFactorial[i]));
  return _mm512_scalef_pd(p, k);
}

// Lane j = Σ lanes of a[j] (8 vectors to one).
inline __m512d reduce8(const __m512d* a) {
  const __m512d t0 = _mm512_add_pd(_mm512_unpacklo_pd(a[0], a[1]), _mm512_unpackhi_pd(a[0], a[1]));
  const __m512d t1 = _mm512_add_pd(_mm512_unpacklo_pd(a[2], a[3]), _mm512_unpackhi_pd(a[2], a[3]));
  const __m512d t2 = _mm512_add_pd(_mm512_unpacklo_pd(a[4], a[5]), _mm512_unpackhi_pd(a[4], a[5]));
  const __m512d t3 = _mm512_add_pd(_mm512_unpacklo_pd(a[6], a[7]), _mm512_unpackhi_pd(a[6], a[7]));
  const __m512d u0 = _mm512_add_pd(_mm512_shuffle_f64x2(t0, t1, 0x88), _mm512_shuffle_f64x2(t0, t1, 0xdd));
  const __m512d u1 = _mm512_add_pd(_mm512_shuffle_f64x2(t2, t3, 0x88), _mm512_shuffle_f64x2(t2, t3, 0xdd));
  return _mm512_add_pd(_mm512_shuffle_f64x2(u0, u1, 0x88), _mm512_shuffle_f64x2(u0, u1, 0xdd));
}

void attn_tile(const float* q, int group, int hd, const void* keys, const void* values, int f16, int stride, int span,
               double scale, double* scratch, double* out) {
  const int hdp = (hd + 7) / 8 * 8;
  double* kd = scratch;                                   // [span][hdp] keys widened to float64
  double* vd = kd + static_cast<size_t>(span) * hdp;      // [span][hdp] values
  double* qd = vd + static_cast<size_t>(span) * hdp;      // [group][hdp] queries
  double* s = qd + static_cast<size_t>(group) * hdp;      // [group][span + 8] scores, then weights
  const int sp = span + 8;
  auto widen = [&](const void* base, size_t offset, double* dst) {
    for (int d = 0; d < hdp; d += 8) {
      const __mmask8 m = tail8(hd - d);
      const __m256 v = f16 ? _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + offset + d))
                           : _mm256_maskz_loadu_ps(m, static_cast<const float*>(base) + offset + d);
      _mm512_storeu_pd(dst + d, _mm512_maskz_cvtps_pd(m, v));
    }
  };
  for (int p = 0; p < span; p++) {
    widen(keys, static_cast<size_t>(p) * stride, kd + static_cast<size_t>(p) * hdp);
    widen(values, static_cast<size_t>(p) * stride, vd + static_cast<size_t>(p) * hdp);
  }
  for (int g = 0; g < group; g++)
    for (int d = 0; d < hdp; d += 8) {
      const __mmask8 m = tail8(hd - d);
      _mm512_storeu_pd(qd + static_cast<size_t>(g) * hdp + d, _mm512_maskz_cvtps_pd(m, _mm256_maskz_loadu_ps(m, q + static_cast<size_t>(g) * hd + d)));
    }
  const __m512d scale_v = _mm512_set1_pd(scale);
  for (int g = 0; g < group; g++) {
    const double* qg = qd + static_cast<size_t>(g) * hdp;
    double* sg = s + static_cast<size_t>(g) * sp;
    // Scores, 8 positions at a time; positions past the span read row 0 again (their lanes are never used).
    for (int p0 = 0; p0 < span; p0 += 8) {
      __m512d acc[8];
      const double* rows[8];
      for (int j = 0; j < 8; j++) {
        acc[j] = _mm512_setzero_pd();
        rows[j] = kd + static_cast<size_t>(p0 + j < span ? p0 + j : 0) * hdp;
      }
      for (int d = 0; d < hdp; d += 8) {
        const __m512d qv = _mm512_loadu_pd(qg + d);
        for (int j = 0; j < 8; j++) acc[j] = _mm512_fmadd_pd(_mm512_loadu_pd(rows[j] + d), qv, acc[j]);
      }
      _mm512_storeu_pd(sg + p0, _mm512_mul_pd(reduce8(acc), scale_v));
    }
    // Softmax weights.
    __m512d mv = _mm512_set1_pd(-INFINITY);
    for (int p = 0; p < span; p += 8) mv = _mm512_max_pd(mv, _mm512_mask_loadu_pd(_mm512_set1_pd(-INFINITY), tail8(span - p), sg + p));
    const double m = _mm512_reduce_max_pd(mv);
    const __m512d m_v = _mm512_set1_pd(m);
    __m512d lv = _mm512_setzero_pd();
    for (int p = 0; p < span; p += 8) {
      const __mmask8 mk = tail8(span - p);
      const __m512d w = _mm512_maskz_mov_pd(mk, exp_pd(_mm512_sub_pd(_mm512_loadu_pd(sg + p), m_v)));
      _mm512_storeu_pd(sg + p, w);
      lv = _mm512_add_pd(lv, w);
    }
    double* o = out + static_cast<size_t>(g) * (hd + 2);
    o[0] = m;
    o[1] = _mm512_reduce_add_pd(lv);
    // Weighted sum of values: 32 dimensions (4 register accumulators) at a time, then 8 at a time.
    int d0 = 0;
    for (; d0 + 32 <= hdp; d0 += 32) {
      __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
      for (int p = 0; p < span; p++) {
        const __m512d wv = _mm512_set1_pd(sg[p]);
        const double* row = vd + static_cast<size_t>(p) * hdp + d0;
        a0 = _mm512_fmadd_pd(wv, _mm512_loadu_pd(row), a0);
        a1 = _mm512_fmadd_pd(wv, _mm512_loadu_pd(row + 8), a1);
        a2 = _mm512_fmadd_pd(wv, _mm512_loadu_pd(row + 16), a2);
        a3 = _mm512_fmadd_pd(wv, _mm512_loadu_pd(row + 24), a3);
      }
      _mm512_mask_storeu_pd(o + 2 + d0, tail8(hd - d0), a0);
      _mm512_mask_storeu_pd(o + 2 + d0 + 8, tail8(hd - d0 - 8), a1);
      _mm512_mask_storeu_pd(o + 2 + d0 + 16, tail8(hd - d0 - 16), a2);
      _mm512_mask_storeu_pd(o + 2 + d0 + 24, tail8(hd - d0 - 24), a3);
    }
    for (; d0 < hdp; d0 += 8) {
      __m512d a0 = _mm512_setzero_pd();
      for (int p = 0; p < span; p++) a0 = _mm512_fmadd_pd(_mm512_set1_pd(sg[p]), _mm512_loadu_pd(vd + static_cast<size_t>(p) * hdp + d0), a0);
      _mm512_mask_storeu_pd(o + 2 + d0, tail8(hd - d0), a0);
    }
  }
}

int32_t quantize_i8(const float* x, int n, double s, int8_t* q) {
  const __m512d sv = _mm512_set1_pd(s), lo = _mm512_set1_pd(-128.0), hi = _mm512_set1_pd(127.0);
  __m512i sum = _mm512_setzero_si512();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    __m512d a = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)), sv);
    __m512d b = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))), sv);
    // NaN lanes are cleared first (the scalar twin maps NaN to 0; max/min would make it −128).
    a = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(a, a, _CMP_ORD_Q), a);
    b = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(b, b, _CMP_ORD_Q), b);
    a = _mm512_min_pd(_mm512_max_pd(_mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
    b = _mm512_min_pd(_mm512_max_pd(_mm512_roundscale_pd(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
    const __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(a)), _mm512_cvtpd_epi32(b), 1);
    sum = _mm512_add_epi32(sum, c);
    _mm_mask_storeu_epi8(q + i, m, _mm512_cvtsepi32_epi8(c));
  }
  return _mm512_reduce_add_epi32(sum);
}

void f32_to_f16(uint16_t* dst, const float* src, int n) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

void f16_to_f32(float* dst, const uint16_t* src, int n) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
  }
}

}  // namespace

extern "C" const halo_kernels halo_kernels_avx512vnni = {
    "avx512vnni", gemm_i2,     gemm_i2_blocks, head_f16,   head_f32, head_i8, attn_tile,
    quantize_i8,  f32_to_f16,  f16_to_f32,
};
