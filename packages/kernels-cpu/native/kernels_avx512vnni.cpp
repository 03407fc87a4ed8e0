// kernels_avx512vnni.cpp: AVX-512 (F, BW, VL) + VNNI kernels; compiled alone with those flags, called only when the CPU has them.
#include <immintrin.h>
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

double dot_f32(const float* a, const float* b, int n) {
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 av = _mm512_maskz_loadu_ps(m, a + i), bv = _mm512_maskz_loadu_ps(m, b + i);
    acc0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(av)), _mm512_cvtps_pd(_mm512_castps512_ps256(bv)), acc0);
    acc1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(av), 1))),
                           _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bv), 1))), acc1);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

double dot_f16(const float* a, const uint16_t* b, int n) {
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 av = _mm512_maskz_loadu_ps(m, a + i);
    const __m512 bv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, b + i));
    acc0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(av)), _mm512_cvtps_pd(_mm512_castps512_ps256(bv)), acc0);
    acc1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(av), 1))),
                           _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bv), 1))), acc1);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

void axpy_f32(double* y, double a, const float* x, int n) {
  const __m512d av = _mm512_set1_pd(a);
  for (int i = 0; i < n; i += 8) {
    const __mmask8 m = tail8(n - i);
    const __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
    _mm512_mask_storeu_pd(y + i, m, _mm512_fmadd_pd(av, xv, _mm512_maskz_loadu_pd(m, y + i)));
  }
}

void axpy_f16(double* y, double a, const uint16_t* x, int n) {
  const __m512d av = _mm512_set1_pd(a);
  for (int i = 0; i < n; i += 8) {
    const __mmask8 m = tail8(n - i);
    const __m512d xv = _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, x + i)));
    _mm512_mask_storeu_pd(y + i, m, _mm512_fmadd_pd(av, xv, _mm512_maskz_loadu_pd(m, y + i)));
  }
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
    "avx512vnni", gemm_i2,  gemm_i2_blocks, head_f16,   head_f32,   head_i8, dot_f32,
    dot_f16,      axpy_f32, axpy_f16,       f32_to_f16, f16_to_f32,
};
