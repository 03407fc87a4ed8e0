// amx-check.cpp: checks the AMX GEMM's logic on CPUs without AMX. Linked with kernels_amx.cpp built with
// -DHALO_AMX_EMULATE (its tile steps run on the software model in amx_emulate.h) plus the scalar and AVX-512 VNNI
// tables, it compares halo_kernels_amx()->gemm_i2 with gemm_i2_ref exactly over row tails, token tails, strides and
// offsets, checks the model itself against a direct TDPBUSD, and fails on any tile fault. Built and run under
// ASan + UBSan by scripts/sanitize.mjs; buffers are heap vectors of exactly the size a kernel may touch.
// What it cannot show: that real AMX hardware agrees with the model, or how fast the kernel is there; on a CPU without
// AMX it prints `SKIP amx-check real tiles: …` for that part (scripts/sanitize.mjs lists it). Without AVX-512 VNNI
// nothing here can run: it prints `SKIP amx-check: …` and exits 77, which sanitize counts as skipped, not clean.
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "amx_emulate.h"
#include "halo_cpu.h"

namespace {

#define HALO_CHECK_SEED 20260611
#include "check_common.h"

// ---------------------------------------------------------------- the tile model against a direct TDPBUSD

struct alignas(64) Config {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(Config) == 64, "LDTILECFG operand");

void check_model() {
  namespace emu = halo_amx_emu;
  const int faults_before = emu::faults();
  for (int trial = 0; trial < 300; trial++) {
    const int m = uniform(1, 16), k = uniform(1, 16), nn = uniform(1, 16);  // C m × nn dwords, A m × k dwords
    Config cfg;
    cfg.rows[0] = static_cast<uint8_t>(m), cfg.colsb[0] = static_cast<uint16_t>(4 * nn);  // C
    cfg.rows[1] = static_cast<uint8_t>(m), cfg.colsb[1] = static_cast<uint16_t>(4 * k);   // A
    cfg.rows[2] = static_cast<uint8_t>(k), cfg.colsb[2] = static_cast<uint16_t>(4 * nn);  // B
    emu::loadconfig(&cfg);
    const long stride = 64 + uniform(0, 3) * 4;
    std::vector<uint8_t> a(16 * stride), b(16 * stride), c(16 * stride), out(16 * stride, 0xcd);
    for (auto& v : a) v = static_cast<uint8_t>(uniform(0, 255));
    for (auto& v : b) v = static_cast<uint8_t>(uniform(0, 255));
    // Accumulators near the int32 limits half the time, so the sum has to wrap.
    const bool edge = trial % 2 == 1;
    for (int r = 0; r < 16; r++) {
      for (int d = 0; d < stride / 4; d++) {
        const uint32_t v = edge ? (uniform(0, 1) ? 0x7fffff00u + static_cast<uint32_t>(uniform(0, 255)) : 0x80000000u + static_cast<uint32_t>(uniform(0, 255)))
                                : static_cast<uint32_t>(uniform(-100000, 100000));
        std::memcpy(&c[r * stride + 4 * d], &v, 4);
      }
    }
    emu::loadd(0, c.data(), stride);
    emu::loadd(1, a.data(), stride);
    emu::loadd(2, b.data(), stride);
    emu::dpbusd(0, 1, 2);
    emu::stored(0, out.data(), stride);
    for (int r = 0; r < 16; r++) {
      for (int col = 0; col < stride; col++) {
        const bool inside = r < m && col < 4 * nn;
        if (!inside) {
          if (out[r * stride + col] != 0xcd) fail("model: tilestored wrote past rows/colsb");
          continue;
        }
        if (col % 4 != 0) continue;
        const int n = col / 4;
        int64_t want;
        int32_t c0;
        std::memcpy(&c0, &c[r * stride + col], 4);
        want = c0;
        for (int kk = 0; kk < 4 * k; kk++) want += static_cast<int64_t>(a[r * stride + kk]) * static_cast<int8_t>(b[(kk / 4) * stride + 4 * n + kk % 4]);
        const uint32_t wrapped = static_cast<uint32_t>(static_cast<uint64_t>(want));
        uint32_t got;
        std::memcpy(&got, &out[r * stride + col], 4);
        if (got != wrapped)
          fail("model: tdpbusd " + std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(nn) + " at " + std::to_string(r) + "," +
               std::to_string(n));
      }
    }
    emu::release();
  }
  if (emu::faults() != faults_before) fail("model: a valid sequence faulted");

  // What the hardware refuses the model must count: use before LDTILECFG, mismatched shapes, a bad config.
  uint8_t buffer[1024] = {};
  int before = emu::faults();
  emu::loadd(0, buffer, 64);
  if (emu::faults() != before + 1) fail("model: tileloadd before ldtilecfg did not fault");
  Config cfg;
  for (int t = 0; t < 3; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  cfg.rows[2] = 8;  // B with 8 rows against A's 16 dwords
  emu::loadconfig(&cfg);
  before = emu::faults();
  emu::dpbusd(0, 1, 2);
  if (emu::faults() != before + 1) fail("model: tdpbusd with B.rows != A.colsb/4 did not fault");
  Config bad;
  bad.rows[9] = 1, bad.colsb[9] = 4;  // tile 9 does not exist in palette 1
  before = emu::faults();
  emu::loadconfig(&bad);
  if (emu::faults() != before + 1) fail("model: ldtilecfg of tile 9 did not fault");
  emu::release();
  before = emu::faults();
  emu::zero(0);
  if (emu::faults() != before + 1) fail("model: tilezero after tilerelease did not fault");
  emu::fault_count.store(faults_before);  // the faults above were the point; the GEMM checks start from here
}

// ---------------------------------------------------------------- the GEMM against the scalar twin

struct Case {
  int rows, nb, n, r0, x_pad, y_pad;
  bool extreme;
};

std::string describe(const Case& c) {
  return "amx gemm_i2 rows=" + std::to_string(c.rows) + " nb=" + std::to_string(c.nb) + " n=" + std::to_string(c.n) + " r0=" + std::to_string(c.r0) +
         " x_pad=" + std::to_string(c.x_pad) + " y_pad=" + std::to_string(c.y_pad) + (c.extreme ? " extreme" : "");
}

constexpr int32_t kSentinel = 0x5a5a5a5a;

void check_case(const halo_kernels* amx, const Case& c) {
  const int r1 = c.r0 + c.rows;
  const int x_stride = c.nb * 256 + c.x_pad, y_stride = c.rows + c.y_pad;
  // Exactly the blocks of rows [0, r1) and the bytes up to the last token's nb·256: a read past either is an ASan report.
  std::vector<halo_block_i2> w(static_cast<size_t>(r1) * c.nb);
  for (auto& blk : w)
    for (auto& byte : blk.qs) byte = static_cast<uint8_t>(c.extreme ? 0xaa : uniform(0, 255));  // codes 0..3 (0xaa: all 2)
  std::vector<int8_t> x(static_cast<size_t>(c.n - 1) * x_stride + c.nb * 256);
  for (int t = 0; t < c.n; t++) {
    int8_t* xt = x.data() + static_cast<size_t>(t) * x_stride;
    for (int k = 0; k < c.nb * 256; k++) xt[k] = static_cast<int8_t>(c.extreme ? -128 : uniform(-128, 127));
    if (t + 1 < c.n)
      for (int k = c.nb * 256; k < x_stride; k++) xt[k] = 127;  // the gap between tokens is not activations
  }
  const size_t y_size = static_cast<size_t>(c.n - 1) * y_stride + c.rows;
  std::vector<int32_t> want(y_size, kSentinel), got(y_size, kSentinel);
  halo_kernels_ref.gemm_i2(w.data(), c.nb, c.r0, r1, x.data(), x_stride, c.n, want.data(), y_stride, nullptr);
  const long dp_before = halo_amx_emu::dpbusd_count.load();
  amx->gemm_i2(w.data(), c.nb, c.r0, r1, x.data(), x_stride, c.n, got.data(), y_stride, nullptr);
  const long dp = halo_amx_emu::dpbusd_count.load() - dp_before;
  for (size_t i = 0; i < y_size; i++) {
    if (got[i] != want[i]) {
      const bool gap = static_cast<int>(i % y_stride) >= c.rows;
      fail(describe(c) + (gap ? " wrote into the y stride gap" : " differs") + " at token " + std::to_string(i / y_stride) + " row " +
           std::to_string(i % y_stride) + ": " + std::to_string(got[i]) + " vs " + std::to_string(want[i]));
      return;
    }
  }
  // The tile path must have run (and only) where it is meant to, and left the tiles released.
  const long tiles_r = (c.rows + 15) / 16, tiles_t = (c.n + 15) / 16;
  const long expected = c.n < 4 ? 0 : tiles_r * tiles_t * c.nb * 4;  // kMinTokens = 4
  if (dp != expected) fail(describe(c) + ": " + std::to_string(dp) + " TDPBUSDs, expected " + std::to_string(expected));
  if (halo_amx_emu::state.configured) fail(describe(c) + ": tiles still configured after the call (no TILERELEASE)");
}

void check_gemm(const halo_kernels* amx) {
  int cases = 0;
  // Every row tail against every token tail around the 16-wide tiles and the 2 × 2 blocks.
  const int rows_list[] = {1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 79, 80};
  const int n_list[] = {1, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 70};
  for (int rows : rows_list) {
    for (int n : n_list) {
      // K only repeats the same chunk loop, so short rows keep this sweep quick; the random shapes below take nb to 12.
      check_case(amx, {rows, uniform(1, 4), n, uniform(0, 5), uniform(0, 1) * uniform(1, 100), uniform(0, 1) * uniform(1, 9), false});
      cases++;
    }
  }
  // Random shapes over the whole range.
  for (int i = 0; i < 120; i++, cases++)
    check_case(amx, {uniform(1, 80), uniform(1, 12), uniform(1, 70), uniform(0, 40), uniform(0, 130), uniform(0, 9), false});
  // Largest magnitudes (codes 2, activations -128), and token counts past one 256-token block.
  check_case(amx, {33, 12, 40, 3, 64, 5, true});
  check_case(amx, {80, 12, 70, 0, 0, 0, true});
  check_case(amx, {20, 2, 300, 7, 32, 3, false});
  check_case(amx, {17, 1, 513, 1, 0, 1, false});
  cases += 4;

  // Threads configure their own tiles: two workers on disjoint row ranges of one call's inputs at the same time.
  const int nb = 5, n = 37, rows = 90;
  std::vector<halo_block_i2> w(static_cast<size_t>(rows) * nb);
  for (auto& blk : w)
    for (auto& byte : blk.qs) byte = static_cast<uint8_t>(uniform(0, 255));
  std::vector<int8_t> x(static_cast<size_t>(n) * nb * 256);
  for (auto& v : x) v = static_cast<int8_t>(uniform(-128, 127));
  std::vector<int32_t> want(static_cast<size_t>(n) * rows), got(want.size(), kSentinel);
  halo_kernels_ref.gemm_i2(w.data(), nb, 0, rows, x.data(), nb * 256, n, want.data(), rows, nullptr);
  auto worker = [&](int r0, int r1) { amx->gemm_i2(w.data(), nb, r0, r1, x.data(), nb * 256, n, got.data() + r0, rows, nullptr); };
  std::thread first(worker, 0, 41), second(worker, 41, rows);
  first.join();
  second.join();
  if (got != want) fail("amx gemm_i2 from two threads at once differs from the scalar twin");
  std::printf("amx (emulated tiles): %d gemm shapes + 2 threads, %ld TDPBUSDs\n", cases + 1, halo_amx_emu::dpbusd_count.load());
}

/** Exit status of a check that cannot run on this CPU (scripts/sanitize.mjs counts it as skipped, with the SKIP line). */
constexpr int kSkipStatus = 77;

#if defined(__x86_64__)
/** CPUID says AMX-TILE and AMX-INT8 (leaf 7, EDX bits 24 and 25); whether the OS grants the tile state is model.cpp's question. */
bool cpu_has_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return (d & (1u << 24)) != 0 && (d & (1u << 25)) != 0;
}
#endif

}  // namespace

int main() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl") ||
      !__builtin_cpu_supports("avx512vnni")) {
    // The kernel around the tiles (unpacking, layout, write-back) is AVX-512: it cannot run on this CPU, emulated or not.
    std::printf("SKIP amx-check: this CPU lacks AVX-512 VNNI, which the AMX kernel's non-tile code needs (neither real nor emulated tiles can run)\n");
    return kSkipStatus;
  }
  // The tile model runs below in any case; what it cannot show is that real tiles agree with it (kernels-amx.test.ts
  // does, on an AMX CPU).
  if (!cpu_has_amx()) std::printf("SKIP amx-check real tiles: this CPU has no AMX-INT8; the AMX kernel ran on the tile model instead\n");
#endif
  check_model();
  const halo_kernels* amx = halo_kernels_amx();
  if (std::strcmp(amx->name, "amx") != 0) fail("halo_kernels_amx() is named " + std::string(amx->name));
  check_gemm(amx);
  if (halo_amx_emu::faults() != 0) {
    const char* last = halo_amx_emu::last_fault_message();
    fail(std::to_string(halo_amx_emu::faults()) + " tile fault(s), the last: " + (last != nullptr ? last : "?"));
  }
  std::printf("amx: %s\n", failures == 0 ? "ok" : "FAILED");
  if (failures != 0) {
    std::fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  return 0;
}
