// kernels_avx2.cpp: AVX2 + FMA + F16C kernels; compiled alone with those flags, called only when the CPU has them.
#include <immintrin.h>
#include <cstring>
#include "halo_cpu.h"

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

template <int T>
void gemm_i2_tile(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int32_t* y,
                  int y_stride, const char* end, const char* next) {
  for (int r = r0; r < r1; r++) {
    const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
    __m256i acc[T];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
    for (int b = 0; b < nb; b++) {
      prefetch_stream(reinterpret_cast<const char*>(row + b) + kPrefetchBytes, end, next);
      block_dot<T>(row + b, x, x_stride, b, acc);
    }
    for (int t = 0; t < T; t++) y[static_cast<size_t>(t) * y_stride + (r - r0)] = hsum_i32(acc[t]);
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

void gemm_i2_blocks(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y,
                    int y_stride) {
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

template <typename Load, typename Scalar>
void head_generic(int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride, Load load, Scalar scalar) {
  for (int t0 = 0; t0 < n; t0 += 4) {
    const int tn = n - t0 < 4 ? n - t0 : 4;
    for (int r = r0; r < r1; r++) {
      __m256 acc[4][2];
      for (int t = 0; t < 4; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
      int h = 0;
      int parity = 0;
      for (; h + 8 <= hidden; h += 8, parity ^= 1) {
        const __m256 wv = load(r, h);
        for (int t = 0; t < tn; t++)
          acc[t][parity] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + static_cast<size_t>(t0 + t) * hidden + h), acc[t][parity]);
      }
      for (int t = 0; t < tn; t++) {
        float sum = hsum_ps(_mm256_add_ps(acc[t][0], acc[t][1]));
        for (int k = h; k < hidden; k++) sum += scalar(r, k) * x[static_cast<size_t>(t0 + t) * hidden + k];
        y[static_cast<size_t>(t0 + t) * y_stride + (r - r0)] = sum;
      }
    }
  }
}

void head_f16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
        _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      },
      [&](int r, int k) { return halo_f16_to_f32_ref(w[static_cast<size_t>(r) * hidden + k]); });
}

void head_f32(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const float* p = w + static_cast<size_t>(r) * hidden + h;
        _mm_prefetch(reinterpret_cast<const char*>(p) + 2048, _MM_HINT_T0);
        return _mm256_loadu_ps(p);
      },
      [&](int r, int k) { return w[static_cast<size_t>(r) * hidden + k]; });
}

void head_i8(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const float* x, int n, float* y,
             int y_stride) {
  head_generic(
      hidden, r0, r1, x, n, y, y_stride,
      [&](int r, int h) {
        const int8_t* p = w + static_cast<size_t>(r) * hidden + h;
        _mm_prefetch(reinterpret_cast<const char*>(p) + 1024, _MM_HINT_T0);
        int64_t bits;
        std::memcpy(&bits, p, 8);
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
      },
      [&](int r, int k) { return static_cast<float>(w[static_cast<size_t>(r) * hidden + k]); });
  for (int t = 0; t < n; t++)
    for (int r = r0; r < r1; r++) y[static_cast<size_t>(t) * y_stride + (r - r0)] *= row_scale[r];
}

inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

double dot_f32(const float* a, const float* b, int n) {
  __m256d acc = _mm256_setzero_pd();
  int i = 0;
  for (; i + 4 <= n; i += 4) acc = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)), _mm256_cvtps_pd(_mm_loadu_ps(b + i)), acc);
  double sum = hsum_pd(acc);
  for (; i < n; i++) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

double dot_f16(const float* a, const uint16_t* b, int n) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 bv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)), _mm256_cvtps_pd(_mm256_castps256_ps128(bv)), acc0);
    acc1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)), _mm256_cvtps_pd(_mm256_extractf128_ps(bv, 1)), acc1);
  }
  double sum = hsum_pd(_mm256_add_pd(acc0, acc1));
  for (; i < n; i++) sum += static_cast<double>(a[i]) * halo_f16_to_f32_ref(b[i]);
  return sum;
}

void axpy_f32(double* y, double a, const float* x, int n) {
  const __m256d av = _mm256_set1_pd(a);
  int i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, _mm256_fmadd_pd(av, _mm256_cvtps_pd(_mm_loadu_ps(x + i)), _mm256_loadu_pd(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

void axpy_f16(double* y, double a, const uint16_t* x, int n) {
  const __m256d av = _mm256_set1_pd(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_pd(y + i, _mm256_fmadd_pd(av, _mm256_cvtps_pd(_mm256_castps256_ps128(xv)), _mm256_loadu_pd(y + i)));
    _mm256_storeu_pd(y + i + 4, _mm256_fmadd_pd(av, _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)), _mm256_loadu_pd(y + i + 4)));
  }
  for (; i < n; i++) y[i] += a * halo_f16_to_f32_ref(x[i]);
}

void f32_to_f16(uint16_t* dst, const float* src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) dst[i] = halo_f32_to_f16_ref(src[i]);
}

void f16_to_f32(float* dst, const uint16_t* src, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; i++) dst[i] = halo_f16_to_f32_ref(src[i]);
}

}  // namespace

extern "C" const halo_kernels halo_kernels_avx2 = {
    "avx2",  gemm_i2,  gemm_i2_blocks, head_f16,   head_f32,   head_i8, dot_f32,
    dot_f16, axpy_f32, axpy_f16,       f32_to_f16, f16_to_f32,
};
