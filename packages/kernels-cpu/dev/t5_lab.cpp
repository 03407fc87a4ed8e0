// t5_lab.cpp: kernel lab for a 1.6-bit ternary packing (5 trits per byte, as GGUF TQ1_0 stores them) against the 2-bit
// halo_block_i2 GEMV on the 2B-4T stream (521 MB at 2 bits, 417 MB at 1.6): ms per token, GB/s of packed bytes, and
// whether decoding base-3 bytes costs more than the bytes it saves.
// Packing: 320 weights of a row in 64 bytes, byte p holds the codes c = w + 1 of k = p + 64·i (i = 0..4) as Σ c_i·3^i.
// Decode (AVX-512 VBMI): trit i of 64 bytes is two 128-entry table lookups (vpermi2b) blended on the byte's top bit.
// Build: g++ -O3 -std=c++17 -fopenmp dev/t5_lab.cpp native/kernels_ref.cpp native/kernels_avx2.cpp native/kernels_avx512vnni.cpp \
//   -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -Inative -o /tmp/t5_lab   (lab only)
// Run:   /tmp/t5_lab [threads]
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include "halo_cpu.h"

namespace {
alignas(64) uint8_t tables[5][256];  // tables[i][v] = base-3 digit i of v (v ≥ 243: 1, a zero weight)

void gemv_t5(const uint8_t* w, int chunks, int r0, int r1, const int8_t* x, int32_t* y) {
  __m512i lo[5], hi[5], lo2[5], hi2[5];
  for (int i = 0; i < 5; i++) {
    lo[i] = _mm512_load_si512(tables[i]);
    hi[i] = _mm512_load_si512(tables[i] + 64);
    lo2[i] = _mm512_load_si512(tables[i] + 128);
    hi2[i] = _mm512_load_si512(tables[i] + 192);
  }
  for (int r = r0; r < r1; r++) {
    const uint8_t* row = w + static_cast<size_t>(r) * chunks * 64;
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int b = 0; b < chunks; b++) {
      _mm_prefetch(reinterpret_cast<const char*>(row + b * 64) + 1536, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(row + b * 64) + 1536 + 8192, _MM_HINT_T1);
      const __m512i v = _mm512_loadu_si512(row + b * 64);
      const __mmask64 top = _mm512_movepi8_mask(v);
#pragma GCC unroll 5
      for (int i = 0; i < 5; i++) {
        const __m512i low = _mm512_permutex2var_epi8(lo[i], v, hi[i]);
        const __m512i high = _mm512_permutex2var_epi8(lo2[i], v, hi2[i]);
        const __m512i c = _mm512_mask_blend_epi8(top, low, high);
        acc[i & 3] = _mm512_dpbusd_epi32(acc[i & 3], c, _mm512_loadu_si512(x + b * 320 + 64 * i));
      }
    }
    y[r - r0] = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3])));
  }
}

void* big(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  for (int v = 0; v < 256; v++)
    for (int i = 0, n = v; i < 5; i++, n /= 3) tables[i][v] = v < 243 ? static_cast<uint8_t>(n % 3) : 1;
  const int K = 2560, nb = K / 256, chunks = K / 320;
  const size_t rows = 30ull * (3840 + 2560 + 13824) + 30ull * 2560 * 27 / 10;  // ≈ the 2B ternary weights as K = 2560 rows
  std::mt19937 rng(3);
  auto* w2 = static_cast<halo_block_i2*>(big(rows * nb * 64));
  auto* w5 = static_cast<uint8_t*>(big(rows * chunks * 64));
  std::vector<int8_t> trits(K);
  for (size_t r = 0; r < rows; r++) {
    for (auto& t : trits) t = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
    if (r < 4096 || r % 97 == 0) {  // pack a sample of rows properly (the rest: random bytes of the right range)
      for (int b = 0; b < nb; b++)
        for (int p = 0; p < 64; p++) {
          uint8_t q = 0;
          for (int j = 0; j < 4; j++) q |= static_cast<uint8_t>((trits[b * 256 + p + 64 * j] + 1) << (2 * j));
          w2[r * nb + b].qs[p] = q;
        }
      for (int b = 0; b < chunks; b++)
        for (int p = 0; p < 64; p++) {
          int v = 0;
          for (int i = 4; i >= 0; i--) v = v * 3 + trits[b * 320 + p + 64 * i] + 1;
          w5[(r * chunks + b) * 64 + p] = static_cast<uint8_t>(v);
        }
    } else {
      for (int b = 0; b < nb; b++)
        for (int p = 0; p < 64; p++) w2[r * nb + b].qs[p] = static_cast<uint8_t>(rng() & 0xaa);
      for (int b = 0; b < chunks * 64; b++) w5[r * chunks * 64 + b] = static_cast<uint8_t>(rng() % 243);
    }
  }
  std::vector<int8_t> x(K);
  int32_t sx = 0;
  for (auto& v : x) sx += v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  // Correctness on the properly packed rows: the 1.6-bit dot equals the 2-bit one.
  std::vector<int32_t> a(4096), b(4096);
  halo_kernels_avx512vnni.gemm_i2(w2, nb, 0, 4096, x.data(), K, 1, a.data(), 4096, nullptr);
  gemv_t5(w5, chunks, 0, 4096, x.data(), b.data());
  for (int r = 0; r < 4096; r++)
    if (a[r] != b[r]) {
      std::printf("MISMATCH row %d: %d vs %d\n", r, a[r], b[r]);
      return 1;
    }
  std::printf("%d threads, %zu rows of %d: 2-bit %.1f MB, 1.6-bit %.1f MB; dots agree\n", threads, rows, K, rows * nb * 64 / 1e6, rows * chunks * 64 / 1e6);
  for (int round = 0; round < 3; round++) {
    double best2 = 1e9, best5 = 1e9;
    for (int rep = 0; rep < 5; rep++) {
      for (int kind = 0; kind < 2; kind++) {
        auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
        {
          std::vector<int32_t> y(rows);
          const size_t per = (rows + threads - 1) / threads, r0 = std::min(rows, omp_get_thread_num() * per), r1 = std::min(rows, r0 + per);
          if (kind == 0) halo_kernels_avx512vnni.gemm_i2(w2, nb, static_cast<int>(r0), static_cast<int>(r1), x.data(), K, 1, y.data(), rows, nullptr);
          else gemv_t5(w5, chunks, static_cast<int>(r0), static_cast<int>(r1), x.data(), y.data());
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        (kind == 0 ? best2 : best5) = std::min(kind == 0 ? best2 : best5, ms);
      }
    }
    std::printf("2-bit %.2f ms (%.1f GB/s)   1.6-bit %.2f ms (%.1f GB/s)   1.6/2 time %.2f\n", best2, rows * nb * 64 / best2 / 1e6, best5,
                rows * chunks * 64 / best5 / 1e6, best5 / best2);
  }
  return 0;
}
