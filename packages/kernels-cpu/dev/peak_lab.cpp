// peak_lab.cpp: this CPU's vpdpbusd (zmm, ymm) and FMA (f32, f64 zmm) throughput on one core: 12 independent chains, no loads.
// Build: g++ -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma dev/peak_lab.cpp -o /tmp/peak_lab   Run: /tmp/peak_lab
#include <immintrin.h>
#include <chrono>
#include <cstdio>

// Runs `op` on 12 independent accumulators `n` times and prints instructions per second. `x` is laundered through an
// empty asm each round so the compiler cannot hoist or fold the chain; every accumulator is summed so none is dead.
template <typename V, typename Op, typename Sum>
void peak(const char* name, long n, V init, V x, V y, Op op, Sum sum) {
  V acc[12];
  for (auto& a : acc) a = init;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
    for (auto& a : acc) a = op(a, x, y);
    __asm__ volatile("" : "+v"(x));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (const auto& a : acc) total += sum(a);
  std::printf("%.2f G %s/s (%g)\n", n * 12 / s / 1e9, name, total);
}

int main() {
  peak("zmm dpbusd", 200000000L, _mm512_set1_epi32(1), _mm512_set1_epi8(1), _mm512_set1_epi8(2),
       [](__m512i a, __m512i x, __m512i y) { return _mm512_dpbusd_epi32(a, x, y); },
       [](const __m512i& a) { return static_cast<double>(_mm512_reduce_add_epi32(a)); });
  peak("ymm dpbusd", 200000000L, _mm256_set1_epi32(1), _mm256_set1_epi8(1), _mm256_set1_epi8(2),
       [](__m256i a, __m256i x, __m256i y) { return _mm256_dpbusd_epi32(a, x, y); },
       [](const __m256i& a) { return static_cast<double>(_mm256_extract_epi32(a, 0)); });
  peak("zmm fma_ps", 100000000L, _mm512_set1_ps(0.001f), _mm512_set1_ps(0.999f), _mm512_set1_ps(0.0001f),
       [](__m512 a, __m512 x, __m512 y) { return _mm512_fmadd_ps(a, x, y); },
       [](const __m512& a) { return static_cast<double>(_mm512_reduce_add_ps(a)); });
  peak("zmm fma_pd", 100000000L, _mm512_set1_pd(0.001), _mm512_set1_pd(0.999), _mm512_set1_pd(0.0001),
       [](__m512d a, __m512d x, __m512d y) { return _mm512_fmadd_pd(a, x, y); },
       [](const __m512d& a) { return _mm512_reduce_add_pd(a); });
}
