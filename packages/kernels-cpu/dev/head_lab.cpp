// head_lab.cpp: the AVX-512 f16 LM head on one core for n logit rows (the batched decode's head), against a bare loop of
// the same shape (one f16 weight vector converted, n FMAs on n inputs from L1) that bounds what the kernel's loop can do.
// Build: g++ -O3 -std=c++17 dev/head_lab.cpp native/kernels_ref.cpp native/kernels_avx2.cpp native/kernels_avx512vnni.cpp \
//   -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -Inative -o /tmp/head_lab
// Run:   /tmp/head_lab [rows, default 8] [vocab rows, default 128256; 128 keeps the head in L2]
#include <immintrin.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "halo_cpu.h"

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 8;
  const size_t vocab = argc > 2 ? strtoul(argv[2], nullptr, 10) : 128256, hidden = 2560, bytes = vocab * hidden * 2;
  void* head = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (head == MAP_FAILED) return 1;
  madvise(head, bytes, MADV_HUGEPAGE);
  std::memset(head, 0x3c, bytes);
  std::vector<float> x(hidden * n, 0.5f), y(vocab * n);
  double best = 1e9;
  for (int rep = 0; rep < 5; rep++) {
    const auto t0 = std::chrono::steady_clock::now();
    halo_kernels_avx512vnni.head_f16(static_cast<const uint16_t*>(head), static_cast<int>(hidden), 0, static_cast<int>(vocab), x.data(), n, y.data(),
                                     static_cast<int>(vocab));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  std::printf("head_f16 rows=%d vocab=%zu: %.2f ms, %.2f G zmm FMAs/s\n", n, vocab, best * 1e3, vocab * hidden * n / 16.0 / best / 1e9);
  // The bare loop: 16 weight rows × 256 columns of f16 (L1), 8 inputs of 256 floats (L1), 8 accumulators.
  alignas(64) static float xs[8][256];
  alignas(64) static uint16_t ws[16][256];
  for (auto& row : xs)
    for (float& v : row) v = 0.5f;
  for (auto& row : ws)
    for (uint16_t& v : row) v = 0x3c00;
  __m512 acc[8];
#pragma GCC unroll 8
  for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
  const long reps = 200000;
  const auto t0 = std::chrono::steady_clock::now();
  for (long rep = 0; rep < reps; rep++)
    for (int r = 0; r < 16; r++)
      for (int h = 0; h < 256; h += 16) {
        const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&ws[r][h])));
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_load_ps(&xs[t][h]), acc[t]);
      }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Summed with constant indices: a range-for over acc takes its address, and GCC then stores every accumulator to
  // the stack on each iteration (2.4 instead of 3.5–3.7 G FMAs/s).
  const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])),
                                                       _mm512_add_ps(_mm512_add_ps(acc[4], acc[5]), _mm512_add_ps(acc[6], acc[7]))));
  std::printf("bare loop: %.2f G zmm FMAs/s (%g)\n", reps * 16.0 * 16 * 8 / s / 1e9, sum);
  return 0;
}
