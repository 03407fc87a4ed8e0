// kernels_avx512vnni.cpp: AVX-512 (F, BW, VL) + VNNI kernels; compiled alone with those flags, called only when the CPU has them.
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "attn_dispatch.h"
#include "exp_poly.h"
#include "halo_cpu.h"

namespace {

// Software prefetch distances in bytes (performance notes in README): into L1 1.5 KB ahead, and into L2 a further
// 8 KB ahead — the second stream took the one-token GEMV from 27–28.6 to 31–32 GB/s on the AMX Xeon.
constexpr int kPrefetchBytes = 1536;
constexpr int kPrefetchFarBytes = 8192;

// Prefetches `at` (into L1: Hint _MM_HINT_T0, or L2: _MM_HINT_T1), running from this matrix (ending at `end`) into the next.
template <int Hint = _MM_HINT_T0>
inline void prefetch_stream(const char* at, const char* end, const char* next) {
  if (at < end) {
    _mm_prefetch(at, static_cast<_mm_hint>(Hint));
  } else if (next != nullptr) {
    _mm_prefetch(next + (at - end), static_cast<_mm_hint>(Hint));
  }
}

// T tokens per pass over a row; A independent accumulators per token hide vpdpbusd latency.
template <int T>
void gemm_i2_tile(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int32_t* y, int y_stride, const char* end, const char* next) {
  constexpr int A = T == 1 ? 4 : (T == 2 ? 2 : 1);
  const __m512i mask = _mm512_set1_epi8(3);
  for (int r = r0; r < r1; r++) {
    const halo_block_i2* row = w + static_cast<size_t>(r) * nb;
    __m512i acc[T][A];
    for (int t = 0; t < T; t++)
      for (int a = 0; a < A; a++) acc[t][a] = _mm512_setzero_si512();
    for (int b = 0; b < nb; b++) {
      prefetch_stream(reinterpret_cast<const char*>(row + b) + kPrefetchBytes, end, next);
      prefetch_stream<_MM_HINT_T1>(reinterpret_cast<const char*>(row + b) + kPrefetchBytes + kPrefetchFarBytes, end, next);
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

// R rows × T tokens of raw dots, all R·T sums in registers: per 64-byte block each row's codes are unpacked once
// per quarter and used for T tokens, each token's activations loaded once and used for R rows.
template <int R, int T>
inline void gemm_i2_micro(const halo_block_i2* w, int nb, int r, const int8_t* x, int x_stride, int32_t* y, int y_stride, size_t prefetch_ahead) {
  const __m512i mask = _mm512_set1_epi8(3);
  __m512i acc[R][T];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++)
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_si512();
  const halo_block_i2* rows[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) rows[i] = w + static_cast<size_t>(r + i) * nb;
  for (int b = 0; b < nb; b++) {
    __m512i v[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      // The first token tile over a row tile pulls the next row tile in (prefetch_ahead bytes on); later ones pass 0.
      if (prefetch_ahead != 0) _mm_prefetch(reinterpret_cast<const char*>(rows[i][b].qs) + prefetch_ahead, _MM_HINT_T0);
      v[i] = _mm512_loadu_si512(rows[i][b].qs);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      __m512i c[R];
#pragma GCC unroll 8
      for (int i = 0; i < R; i++) c[i] = _mm512_and_si512(j == 0 ? v[i] : _mm512_srli_epi16(v[i], 2 * j), mask);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(t) * x_stride + b * 256 + 64 * j);
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) acc[i][t] = _mm512_dpbusd_epi32(acc[i][t], c[i], xv);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) y[static_cast<size_t>(t) * y_stride + i] = _mm512_reduce_add_epi32(acc[i][t]);
}

#ifndef HALO_GEMM_R
#define HALO_GEMM_R 4  // rows per micro tile (kernel lab: 4 rows × 6 tokens reached ~85 % of vpdpbusd peak)
#endif

// Tokens [0, T) of rows [r0, r1): R-row micro tiles, then single rows.
template <int T>
void gemm_i2_tokens(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int32_t* y, int y_stride, size_t prefetch_ahead) {
  constexpr int R = HALO_GEMM_R;
  int r = r0;
  for (; r + R <= r1; r += R) gemm_i2_micro<R, T>(w, nb, r, x, x_stride, y + (r - r0), y_stride, prefetch_ahead);
  for (; r < r1; r++) gemm_i2_micro<1, T>(w, nb, r, x, x_stride, y + (r - r0), y_stride, prefetch_ahead);
}

void gemm_i2(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride, const void* prefetch_next) {
  const char* end = reinterpret_cast<const char*>(w + static_cast<size_t>(r1) * nb);
  const char* next = static_cast<const char*>(prefetch_next);
  if (n == 1) {
    gemm_i2_tile<1>(w, nb, r0, r1, x, x_stride, y, y_stride, end, next);
    return;
  }
  // Rows in tiles that stay in L2 while every token group passes over them; each token group's activations stay in L1.
  // Token groups of 6 for prompts (the best R × T in the kernel lab), of 4 for small batches (8 = 4 + 4).
  constexpr int kRowTile = 64;
  const size_t tile_bytes = static_cast<size_t>(kRowTile) * nb * sizeof(halo_block_i2);
  for (int rt = r0; rt < r1; rt += kRowTile) {
    const int re = rt + kRowTile < r1 ? rt + kRowTile : r1;
    // Prefetching the next row tile past r1 would touch another worker's rows (or the next matrix): harmless.
    size_t ahead = tile_bytes;
    int t = 0;
    if (n >= 12) {
      for (; t + 6 <= n; t += 6, ahead = 0)
        gemm_i2_tokens<6>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, ahead);
    }
    for (; t + 4 <= n; t += 4, ahead = 0)
      gemm_i2_tokens<4>(w, nb, rt, re, x + static_cast<size_t>(t) * x_stride, x_stride, y + static_cast<size_t>(t) * y_stride + (rt - r0), y_stride, ahead);
    const int8_t* xt = x + static_cast<size_t>(t) * x_stride;
    int32_t* yt = y + static_cast<size_t>(t) * y_stride + (rt - r0);
    switch (n - t) {
      case 3: gemm_i2_tokens<3>(w, nb, rt, re, xt, x_stride, yt, y_stride, ahead); break;
      case 2: gemm_i2_tokens<2>(w, nb, rt, re, xt, x_stride, yt, y_stride, ahead); break;
      case 1: gemm_i2_tokens<1>(w, nb, rt, re, xt, x_stride, yt, y_stride, ahead); break;
      default: break;
    }
  }
}

void gemm_i2_blocks(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride) {
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

// TN tokens per pass over the head rows [r0, r1), every accumulator in a register (two per token hide FMA latency).
template <int TN, typename Load>
void head_pass(int hidden, int r0, int r1, const float* x, float* y, int y_stride, Load load) {
  for (int r = r0; r < r1; r++) {
    __m512 acc0[TN], acc1[TN];
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++) acc0[t] = acc1[t] = _mm512_setzero_ps();
    int h = 0;
    for (; h + 32 <= hidden; h += 32) {
      const __m512 w0 = load(r, h, static_cast<__mmask16>(0xffff), 0);
      const __m512 w1 = load(r, h + 16, static_cast<__mmask16>(0xffff), 0);
#pragma GCC unroll 8
      for (int t = 0; t < TN; t++) {
        acc0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + static_cast<size_t>(t) * hidden + h), acc0[t]);
        acc1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + static_cast<size_t>(t) * hidden + h + 16), acc1[t]);
      }
    }
    for (; h < hidden; h += 16) {
      const __mmask16 m = tail_mask(hidden - h);
      const __m512 wv = load(r, h, m, 0);
#pragma GCC unroll 8
      for (int t = 0; t < TN; t++) acc0[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(t) * hidden + h), acc0[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++) y[static_cast<size_t>(t) * y_stride + (r - r0)] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
  }
}

#ifndef HALO_HEAD_ROWS
#define HALO_HEAD_ROWS 16
#endif
#ifndef HALO_HEAD_CHUNK
#define HALO_HEAD_CHUNK 256
#endif
// 4..8 tokens: rows in blocks of 16 and hidden in chunks of 256, so each chunk of the tokens' inputs (8 KB) stays in
// L1 while the block's rows pass over it; one accumulator per (row, token), kept in an L1 array between chunks.
template <int TN, typename Load>
void head_blocked(int hidden, int r0, int r1, const float* x, float* y, int y_stride, Load load) {
  constexpr int kRows = HALO_HEAD_ROWS, kChunk = HALO_HEAD_CHUNK;
  alignas(64) float acc_mem[kRows][TN][16];
  for (int rb = r0; rb < r1; rb += kRows) {
    const int re = rb + kRows < r1 ? rb + kRows : r1;
    for (int i = 0; i < re - rb; i++)
      for (int t = 0; t < TN; t++) _mm512_store_ps(acc_mem[i][t], _mm512_setzero_ps());
    for (int h0 = 0; h0 < hidden; h0 += kChunk) {
      const int h1 = h0 + kChunk < hidden ? h0 + kChunk : hidden;
      for (int r = rb; r < re; r++) {
        __m512 acc[TN];
#pragma GCC unroll 8
        for (int t = 0; t < TN; t++) acc[t] = _mm512_load_ps(acc_mem[r - rb][t]);
        int h = h0;
        for (; h + 16 <= h1; h += 16) {
          const __m512 wv = load(r, h, static_cast<__mmask16>(0xffff), kRows);
#pragma GCC unroll 8
          for (int t = 0; t < TN; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + static_cast<size_t>(t) * hidden + h), acc[t]);
        }
        if (h < h1) {
          const __mmask16 m = tail_mask(h1 - h);
          const __m512 wv = load(r, h, m, kRows);
#pragma GCC unroll 8
          for (int t = 0; t < TN; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(t) * hidden + h), acc[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < TN; t++) _mm512_store_ps(acc_mem[r - rb][t], acc[t]);
      }
    }
    for (int r = rb; r < re; r++)
      for (int t = 0; t < TN; t++) y[static_cast<size_t>(t) * y_stride + (r - r0)] = _mm512_reduce_add_ps(_mm512_load_ps(acc_mem[r - rb][t]));
  }
}

// Up to 8 tokens per pass over the head rows, so each weight row is read once per 8 logit rows (a batch of 8
// sequences streams the head once per step).
template <typename Load>
void head_generic(int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride, Load load) {
  for (int t0 = 0; t0 < n; t0 += 8) {
    const float* xt = x + static_cast<size_t>(t0) * hidden;
    float* yt = y + static_cast<size_t>(t0) * y_stride;
    switch (n - t0 < 8 ? n - t0 : 8) {
      case 8: head_blocked<8>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 7: head_blocked<7>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 6: head_blocked<6>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 5: head_blocked<5>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 4: head_blocked<4>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 3: head_pass<3>(hidden, r0, r1, xt, yt, y_stride, load); break;
      case 2: head_pass<2>(hidden, r0, r1, xt, yt, y_stride, load); break;
      default: head_pass<1>(hidden, r0, r1, xt, yt, y_stride, load); break;
    }
  }
}

// A float head row's prefetch, once per 64-byte line: one pass per row (ahead_rows 0) pulls 2 KB on in the row, the
// blocked head the same columns `ahead_rows` rows on (`rows_on`). No second, farther stream here (unlike the GEMV and
// the int8/int4 heads): these heads are usually mapped from the model file in 4 KB pages, and one 8 KB further into
// L2 made the f16 head slower (27.2 → 30.8–31.3 ms a token on the AMX Xeon, interleaved A/B).
inline void head_prefetch(const char* at, const char* rows_on, int ahead_rows) { _mm_prefetch(ahead_rows == 0 ? at + 2048 : rows_on, _MM_HINT_T0); }

void head_f16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m, int ahead_rows) {
    const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
    if ((h & 31) == 0) head_prefetch(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p + static_cast<size_t>(ahead_rows) * hidden), ahead_rows);
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  });
}

void head_bf16(const uint16_t* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m, int ahead_rows) {
    const uint16_t* p = w + static_cast<size_t>(r) * hidden + h;
    if ((h & 31) == 0) head_prefetch(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p + static_cast<size_t>(ahead_rows) * hidden), ahead_rows);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  });
}

void head_f32(const float* w, int hidden, int r0, int r1, const float* x, int n, float* y, int y_stride) {
  head_generic(hidden, r0, r1, x, n, y, y_stride, [&](int r, int h, __mmask16 m, int ahead_rows) {
    const float* p = w + static_cast<size_t>(r) * hidden + h;
    head_prefetch(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p + static_cast<size_t>(ahead_rows) * hidden), ahead_rows);
    return _mm512_maskz_loadu_ps(m, p);
  });
}

// TN tokens per pass over rows [r0, r1): Σ (q + 128)·w with vpdpbusd (u8 × s8), minus 128·Σ w (a dpbusd with ones).
template <int TN>
void head_i8_pass(const int8_t* w, const float* row_scale, int hidden, int stride, int r0, int r1, const int8_t* q, const double* s, float* y, int y_stride) {
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // q ^ 0x80 = q + 128 as u8
  for (int r = r0; r < r1; r++) {
    const int8_t* row = w + static_cast<size_t>(r) * hidden;
    __m512i acc[TN];
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++) acc[t] = _mm512_setzero_si512();
    __m512i sum = _mm512_setzero_si512();
    for (int h = 0; h < hidden; h += 64) {
      const int left = hidden - h;
      const __mmask64 m = left >= 64 ? ~static_cast<__mmask64>(0) : (static_cast<__mmask64>(1) << left) - 1;
      _mm_prefetch(reinterpret_cast<const char*>(row + h) + 2048, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row + h) + 2048 + kPrefetchFarBytes, _MM_HINT_T1);
      const __m512i wv = _mm512_maskz_loadu_epi8(m, row + h);
#pragma GCC unroll 8
      for (int t = 0; t < TN; t++)
        acc[t] = _mm512_dpbusd_epi32(acc[t], _mm512_xor_si512(_mm512_loadu_si512(q + static_cast<size_t>(t) * stride + h), bias), wv);
      sum = _mm512_dpbusd_epi32(sum, ones, wv);
    }
    const int32_t correction = 128 * _mm512_reduce_add_epi32(sum);
#pragma GCC unroll 8
    for (int t = 0; t < TN; t++)
      y[static_cast<size_t>(t) * y_stride + (r - r0)] =
          static_cast<float>(static_cast<double>(_mm512_reduce_add_epi32(acc[t]) - correction) * row_scale[r] / s[t]);
  }
}

void head_i8(const int8_t* w, const float* row_scale, int hidden, int r0, int r1, const int8_t* q, const double* s, int stride, int n, float* y, int y_stride) {
  for (int t0 = 0; t0 < n; t0 += 8) {
    const int8_t* xt = q + static_cast<size_t>(t0) * stride;
    float* yt = y + static_cast<size_t>(t0) * y_stride;
    switch (n - t0 < 8 ? n - t0 : 8) {
      case 8: head_i8_pass<8>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 7: head_i8_pass<7>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 6: head_i8_pass<6>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 5: head_i8_pass<5>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 4: head_i8_pass<4>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 3: head_i8_pass<3>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      case 2: head_i8_pass<2>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
      default: head_i8_pass<1>(w, row_scale, hidden, stride, r0, r1, xt, s + t0, yt, y_stride); break;
    }
  }
}

#include "head_i4_avx512.inc"

inline __mmask8 tail8(int left) { return left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u); }

// exp(x) for x ≤ 0 in float64 to ~1 ulp: x = k·ln2 + r, |r| ≤ ln2/2, degree-13 Taylor polynomial of e^r, then ·2^k
// (scalef). Below −745 the result is 0, as the exact exp rounds there.
inline __m512d exp_pd(__m512d x) {
  x = _mm512_max_pd(x, _mm512_set1_pd(-746.0));
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(halo_exp::kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(halo_exp::kLn2Hi), x);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(halo_exp::kLn2Lo), r);
  __m512d p = _mm512_set1_pd(halo_exp::kInvFactorial[halo_exp::kDegree]);
  for (int i = halo_exp::kDegree - 1; i >= 0; i--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(halo_exp::kInvFactorial[i]));
  return _mm512_scalef_pd(p, k);
}

// 8 elements of a key/value row stored as KV (int8 rows read as f32(code · row_scale)) widened to float64. Full: the
// 8 elements all lie within the row (plain loads); otherwise lanes past `m` are 0.
template <int KV, bool Full>
inline __m512d widen8(const void* base, size_t offset, float row_scale, __mmask8 m) {
  __m256 v;
  if (KV == HALO_KV_F16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
    v = _mm256_cvtph_ps(Full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)) : _mm_maskz_loadu_epi16(m, p));
  } else if (KV == HALO_KV_I8) {
    const int8_t* p = static_cast<const int8_t*>(base) + offset;
    const __m128i codes = Full ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)) : _mm_maskz_loadu_epi8(static_cast<__mmask16>(m), p);
    v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), _mm256_set1_ps(row_scale));
  } else {
    const float* p = static_cast<const float*>(base) + offset;
    v = Full ? _mm256_loadu_ps(p) : _mm256_maskz_loadu_ps(m, p);
  }
  return _mm512_cvtps_pd(v);
}

// Prefetches one key/value row (hd elements of `kv`) into L1 (`hint` _MM_HINT_T0) or L2 (_MM_HINT_T1): keys and
// values stream from DRAM at long contexts, with rows a whole KV width apart, which the hardware prefetchers follow poorly.
template <int Hint>
inline void prefetch_row(const void* base, size_t offset, int kv, int hd) {
  const size_t elem = kv == HALO_KV_F32 ? 4 : kv == HALO_KV_F16 ? 2 : 1;
  const char* p = static_cast<const char*>(base) + offset * elem;
  for (size_t b = 0; b < static_cast<size_t>(hd) * elem; b += 64) _mm_prefetch(p + b, static_cast<_mm_hint>(Hint));
}

// The four sums of a[0..3]'s lanes, in lanes 0..3 of the result (a transpose-add tree: 10 shuffles and adds where four
// separate reductions take ~28).
inline __m256d sum4(const __m512d a[4]) {
  const __m512d s01 = _mm512_add_pd(_mm512_unpacklo_pd(a[0], a[1]), _mm512_unpackhi_pd(a[0], a[1]));  // per 128-bit lane: a0, a1 pairs
  const __m512d s23 = _mm512_add_pd(_mm512_unpacklo_pd(a[2], a[3]), _mm512_unpackhi_pd(a[2], a[3]));
  // Lanes 0,2 of s01 | lanes 0,2 of s23, plus lanes 1,3 of each: (a0, a1) in 128-bit lanes 0–1, (a2, a3) in 2–3.
  const __m512d t = _mm512_add_pd(_mm512_shuffle_f64x2(s01, s23, 0x88), _mm512_shuffle_f64x2(s01, s23, 0xDD));
  // 128-bit lanes 0 and 2 | 1 and 3: (a0, a1, a2, a3) in the low 256 bits.
  const __m512d u = _mm512_add_pd(_mm512_shuffle_f64x2(t, t, 0x08), _mm512_shuffle_f64x2(t, t, 0x0D));
  return _mm512_castpd512_pd256(u);
}

// Scores of G query heads (qd: [G][hdp] float64, zero past hd) against 4 key rows at a time, the keys widened in
// registers once for the G heads (no float64 copy of the tile: its write and re-read through L2 cost more than the
// conversions). `values`, where not null, are pulled into L2 at the same pace (the first pass over the keys does it),
// so that the weighted sums after the softmax do not start on cold rows.
template <int G, int KV, bool Full>
void attn_scores(const double* qd, int hdp, int hd, const void* keys, int stride, const float* scales, int scale_stride, int span, double scale, double* s,
                 int sp, const void* values) {
  const __m256d scale_v = _mm256_set1_pd(scale);
  for (int p0 = 0; p0 < span; p0 += 4) {
    __m512d acc[G][4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) acc[g][j] = _mm512_setzero_pd();
    size_t rows[4];
    float row_scales[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const int p = p0 + j < span ? p0 + j : 0;
      rows[j] = static_cast<size_t>(p) * stride;
      row_scales[j] = KV == HALO_KV_I8 ? scales[static_cast<size_t>(p) * scale_stride] : 0.0f;
    }
    constexpr int kAhead = 8;  // rows
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      if (p0 + kAhead + j < span) prefetch_row<_MM_HINT_T0>(keys, static_cast<size_t>(p0 + kAhead + j) * stride, KV, hd);
      if (values != nullptr && p0 + j < span) prefetch_row<_MM_HINT_T1>(values, static_cast<size_t>(p0 + j) * stride, KV, hd);
    }
    for (int d = 0; d < hdp; d += 8) {
      const __mmask8 m = tail8(hd - d);
      __m512d kd[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) kd[j] = widen8<KV, Full>(keys, rows[j] + d, row_scales[j], m);
#pragma GCC unroll 4
      for (int g = 0; g < G; g++) {
        const __m512d qv = _mm512_loadu_pd(qd + static_cast<size_t>(g) * hdp + d);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[g][j] = _mm512_fmadd_pd(kd[j], qv, acc[g][j]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) _mm256_storeu_pd(s + static_cast<size_t>(g) * sp + p0, _mm256_mul_pd(sum4(acc[g]), scale_v));
  }
}

// One pass of attn_values: dimensions [d0, d0 + 8·chunks) of G heads (Whole: chunks == C, no per-chunk test in the
// position loop), the accumulators stored into lanes[G][8·C] with constant indices once the loop is done (indexing
// them by a run-time chunk count made GCC keep a stack copy of each, written at every position).
template <int G, int C, int KV, bool Full, bool Whole>
inline void values_pass(const double* w, int sp, int hd, const void* values, int stride, const float* scales, int scale_stride, int span, int d0, int chunks,
                        double (*lanes)[8 * C]) {
  __m512d acc[G][C];
#pragma GCC unroll 4
  for (int g = 0; g < G; g++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[g][c] = _mm512_setzero_pd();
  for (int p = 0; p < span; p++) {
    if (d0 == 0 && p + 8 < span) prefetch_row<_MM_HINT_T0>(values, static_cast<size_t>(p + 8) * stride, KV, hd);
    const float row_scale = KV == HALO_KV_I8 ? scales[static_cast<size_t>(p) * scale_stride] : 0.0f;
    __m512d v[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
      v[c] =
          Whole || c < chunks ? widen8<KV, Full>(values, static_cast<size_t>(p) * stride + d0 + 8 * c, row_scale, tail8(hd - d0 - 8 * c)) : _mm512_setzero_pd();
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
      const __m512d wv = _mm512_set1_pd(w[static_cast<size_t>(g) * sp + p]);
#pragma GCC unroll 8
      for (int c = 0; c < C; c++) acc[g][c] = _mm512_fmadd_pd(wv, v[c], acc[g][c]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; g++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) _mm512_store_pd(lanes[g] + 8 * c, acc[g][c]);
}

// Weighted sums of value rows for G heads (weights w: [G][sp]), 8·C dimensions (C register accumulators per head) at
// a time, each value chunk widened once for the G heads.
template <int G, int C, int KV, bool Full>
void attn_values(const double* w, int sp, int hd, int hdp, const void* values, int stride, const float* scales, int scale_stride, int span, double* out) {
  alignas(64) double lanes[G][8 * C];
  for (int d0 = 0; d0 < hdp; d0 += 8 * C) {
    const int chunks = (hdp - d0) / 8 < C ? (hdp - d0) / 8 : C;
    if (chunks == C) values_pass<G, C, KV, Full, true>(w, sp, hd, values, stride, scales, scale_stride, span, d0, chunks, lanes);
    else values_pass<G, C, KV, Full, false>(w, sp, hd, values, stride, scales, scale_stride, span, d0, chunks, lanes);
    const int width = hd - d0 < 8 * chunks ? hd - d0 : 8 * chunks;
    for (int g = 0; g < G; g++) std::memcpy(out + static_cast<size_t>(g) * (hd + 2) + 2 + d0, lanes[g], sizeof(double) * width);
  }
}

void attn_tile(const float* q, int group, int hd, const void* keys, const void* values, int kv, int stride, int span, const float* key_scales,
               const float* value_scales, int scale_stride, double scale, double* scratch, double* out) {
  const int hdp = (hd + 7) / 8 * 8;
  double* qd = scratch;                               // [group][hdp] queries widened to float64, zero past hd
  double* s = qd + static_cast<size_t>(group) * hdp;  // [group][span + 8] scores, then weights
  const int sp = span + 8;
  for (int g = 0; g < group; g++)
    for (int d = 0; d < hdp; d += 8) {
      const __mmask8 m = tail8(hd - d);
      _mm512_storeu_pd(qd + static_cast<size_t>(g) * hdp + d, _mm512_maskz_cvtps_pd(m, _mm256_maskz_loadu_ps(m, q + static_cast<size_t>(g) * hd + d)));
    }
  // Full: hd is a multiple of 8, so every 8-element chunk is whole.
  halo::attn_dispatch(kv, hd == hdp, [&](auto kv_tag, auto full_tag) {
    constexpr int KV = decltype(kv_tag)::value;
    constexpr bool Full = decltype(full_tag)::value;
    // Scores, 4 query heads at a time; the first pass also pulls the value rows into L2.
    halo::for_head_passes(group, [&](auto heads, int g) {
      attn_scores<decltype(heads)::value, KV, Full>(qd + static_cast<size_t>(g) * hdp, hdp, hd, keys, stride, key_scales, scale_stride, span, scale,
                                                    s + static_cast<size_t>(g) * sp, sp, g == 0 ? values : nullptr);
    });
    // Softmax weights.
    for (int g = 0; g < group; g++) {
      double* sg = s + static_cast<size_t>(g) * sp;
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
    }
    // Weighted sums of values: 4 heads × 32 dimensions (16 FMA chains), or fewer heads × more dimensions.
    halo::for_head_passes(group, [&](auto heads, int g) {
      constexpr int G = decltype(heads)::value;
      attn_values<G, G >= 3 ? 4 : 8, KV, Full>(s + static_cast<size_t>(g) * sp, sp, hd, hdp, values, stride, value_scales, scale_stride, span,
                                               out + static_cast<size_t>(g) * (hd + 2));
    });
  });
}

void silu_mul(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; i += 8) {
    const __mmask8 m = tail8(n - i);
    const __m512d g = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, gate + i));
    const __m512d e = exp_pd(_mm512_sub_pd(_mm512_setzero_pd(), g));  // scalef gives +inf past e^709, as std::exp
    const __m512d v = _mm512_mul_pd(_mm512_div_pd(g, _mm512_add_pd(_mm512_set1_pd(1.0), e)), _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, up + i)));
    _mm256_mask_storeu_ps(out + i, m, _mm512_cvtpd_ps(v));
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

void scale_dots(const int32_t* raw, int count, int n, const int32_t* correction, const float* act_scale, const float* row_scale, float* y, int y_stride) {
  for (int t = 0; t < n; t++) {
    const int32_t* rt = raw + static_cast<size_t>(t) * count;
    float* yt = y + static_cast<size_t>(t) * y_stride;
    const __m256i c = _mm256_set1_epi32(correction[t]);
    const __m512d s = _mm512_set1_pd(act_scale[t]);
    for (int r = 0; r < count; r += 8) {
      const __mmask8 m = tail8(count - r);
      const __m512d dot = _mm512_cvtepi32_pd(_mm256_sub_epi32(_mm256_maskz_loadu_epi32(m, rt + r), c));
      const __m512d v = _mm512_div_pd(_mm512_mul_pd(dot, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, row_scale + r))), s);
      _mm256_mask_storeu_ps(yt + r, m, _mm512_cvtpd_ps(v));
    }
  }
}

// Columns a tile's int16 sums take before they are widened: 255 · 128 < 2^15 whatever the signs.
constexpr int kSparseFlush = 255;
// Columns ahead whose mask line is prefetched (the listed columns are scattered, so the hardware prefetcher misses them).
constexpr int kSparsePrefetch = 8;

// P adjacent row tiles per pass (8·P × 32 int16 sums in registers): for each listed column its P lines (adjacent bytes)
// give one 32-bit mask per register ("+1" rows, then "−1" rows) and the column's activation is added or subtracted under
// them — 16 mask loads and 16 masked adds per column per 256 rows, every byte read belonging to a listed column.
template <int P>
void sparse_pass(const uint8_t* masks, int tiles, int g, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y) {
  const uint8_t* base = masks + static_cast<size_t>(g) * 64;
  const size_t stride = static_cast<size_t>(tiles) * 64;
  __m512i wide[16 * P];
#pragma GCC unroll 32
  for (int a = 0; a < 16 * P; a++) wide[a] = _mm512_setzero_si512();
  for (int c0 = 0; c0 < n_nz; c0 += kSparseFlush) {
    const int c1 = std::min(n_nz, c0 + kSparseFlush);
    __m512i acc[8 * P];
#pragma GCC unroll 16
    for (int a = 0; a < 8 * P; a++) acc[a] = _mm512_setzero_si512();
    for (int c = c0; c < c1; c++) {
      if (c + kSparsePrefetch < n_nz) {
        const char* ahead = reinterpret_cast<const char*>(base) + static_cast<size_t>(nz[c + kSparsePrefetch]) * stride;
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) _mm_prefetch(ahead + 64 * p, _MM_HINT_T0);
      }
      const uint8_t* line = base + static_cast<size_t>(nz[c]) * stride;
      const __m512i v = _mm512_set1_epi16(x[nz[c]]);
#pragma GCC unroll 16
      for (int a = 0; a < 8 * P; a++) {
        const uint8_t* at = line + 64 * (a / 8) + 4 * (a % 8);
        __mmask32 plus, minus;
        std::memcpy(&plus, at, 4);
        std::memcpy(&minus, at + 32, 4);
        acc[a] = _mm512_mask_add_epi16(acc[a], plus, acc[a], v);
        acc[a] = _mm512_mask_sub_epi16(acc[a], minus, acc[a], v);
      }
    }
#pragma GCC unroll 16
    for (int a = 0; a < 8 * P; a++) {
      wide[2 * a] = _mm512_add_epi32(wide[2 * a], _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc[a])));
      wide[2 * a + 1] = _mm512_add_epi32(wide[2 * a + 1], _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc[a], 1)));
    }
  }
#pragma GCC unroll 32
  for (int a = 0; a < 16 * P; a++) _mm512_storeu_si512(y + 16 * a, wide[a]);
}

void gemv_i2_sparse(const uint8_t* masks, int tiles, int g0, int g1, const int8_t* x, const int32_t* nz, int n_nz, int32_t* y) {
  int g = g0;
  for (; g + 2 <= g1; g += 2) sparse_pass<2>(masks, tiles, g, x, nz, n_nz, y + static_cast<size_t>(g - g0) * HALO_SPARSE_TILE);
  if (g < g1) sparse_pass<1>(masks, tiles, g, x, nz, n_nz, y + static_cast<size_t>(g - g0) * HALO_SPARSE_TILE);
}

}  // namespace

extern "C" const halo_kernels halo_kernels_avx512vnni = {
    "avx512vnni", gemm_i2,     gemm_i2_blocks, head_f16,   head_f32, head_bf16,  head_i8,        head_i4,
    attn_tile,    quantize_i8, f32_to_f16,     f16_to_f32, silu_mul, scale_dots, gemv_i2_sparse,
};
