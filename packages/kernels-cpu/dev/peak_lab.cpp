// peak_lab.cpp: this CPU's vpdpbusd (zmm, ymm) and FMA (f32 zmm, f64 zmm and ymm) throughput on one core: 12 independent
// chains, no loads; built with -DLAB_AMX also TDPBUSD on 4 independent tiles and a 2 × 2 tile block with its tile loads.
// Build: g++ -O2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mfma dev/peak_lab.cpp -o /tmp/peak_lab   Run: /tmp/peak_lab
//        (AMX: add -DLAB_AMX -mamx-tile -mamx-int8)
#include <immintrin.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#if defined(LAB_AMX)
#include <sys/syscall.h>
#include <unistd.h>
#endif

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
  peak(
      "zmm dpbusd", 200000000L, _mm512_set1_epi32(1), _mm512_set1_epi8(1), _mm512_set1_epi8(2),
      [](__m512i a, __m512i x, __m512i y) { return _mm512_dpbusd_epi32(a, x, y); },
      [](const __m512i& a) { return static_cast<double>(_mm512_reduce_add_epi32(a)); });
  peak(
      "ymm dpbusd", 200000000L, _mm256_set1_epi32(1), _mm256_set1_epi8(1), _mm256_set1_epi8(2),
      [](__m256i a, __m256i x, __m256i y) { return _mm256_dpbusd_epi32(a, x, y); },
      [](const __m256i& a) { return static_cast<double>(_mm256_extract_epi32(a, 0)); });
  peak(
      "zmm fma_ps", 100000000L, _mm512_set1_ps(0.001f), _mm512_set1_ps(0.999f), _mm512_set1_ps(0.0001f),
      [](__m512 a, __m512 x, __m512 y) { return _mm512_fmadd_ps(a, x, y); }, [](const __m512& a) { return static_cast<double>(_mm512_reduce_add_ps(a)); });
  peak(
      "zmm fma_pd", 100000000L, _mm512_set1_pd(0.001), _mm512_set1_pd(0.999), _mm512_set1_pd(0.0001),
      [](__m512d a, __m512d x, __m512d y) { return _mm512_fmadd_pd(a, x, y); }, [](const __m512d& a) { return _mm512_reduce_add_pd(a); });
  peak(
      "ymm fma_pd", 100000000L, _mm256_set1_pd(0.001), _mm256_set1_pd(0.999), _mm256_set1_pd(0.0001),
      [](__m256d a, __m256d x, __m256d y) { return _mm256_fmadd_pd(a, x, y); }, [](const __m256d& a) { return a[0] + a[1] + a[2] + a[3]; });
#if defined(LAB_AMX)
  // Linux hands out tile state only after ARCH_REQ_XCOMP_PERM (0x1023) for XTILEDATA (18).
  if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
    std::printf("no AMX permission\n");
    return 0;
  }
  struct alignas(64) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
  } config;
  std::memset(&config, 0, sizeof config);
  config.palette = 1;
  for (int t = 0; t < 8; t++) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
  alignas(64) static uint8_t a[32 * 2048], b[32 * 2048];
  std::memset(a, 1, sizeof a);
  std::memset(b, 1, sizeof b);
  const long n = 20000000;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a + 1024, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b + 1024, 64);
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n / 4; i++) {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%.2f ns per TDPBUSD, 4 tiles, no loads\n", s / n * 1e9);
  t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n / 4; i++) {
    const size_t o = static_cast<size_t>(i & 31) * 2048;  // 64 KB of A and of B: L1 and L2
    _tile_loadd(4, a + o, 64);
    _tile_loadd(6, b + o, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_loadd(7, b + o + 1024, 64);
    _tile_dpbusd(1, 4, 7);
    _tile_loadd(5, a + o + 1024, 64);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  alignas(64) int32_t c[256];
  _tile_stored(0, c, 64);
  _tile_release();
  std::printf("%.2f ns per TDPBUSD, 2 x 2 block with its 4 tile loads (%d)\n", s / n * 1e9, c[0]);
#endif
}
