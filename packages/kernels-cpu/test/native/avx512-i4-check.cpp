// avx512-i4-check.cpp: the AVX-512 int4 LM head (native/head_i4_avx512.inc) on an exact software model of its
// intrinsics (avx512_emulate.h), compared bit for bit with the scalar twin over random shapes, every token count of
// a pass (1..8 and more), row ranges and the largest hidden size with the largest codes. Built and run by
// scripts/sanitize.mjs (ASan + UBSan) on every machine, so the kernel's lane logic is checked where no CPU runs it.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "avx512_emulate.h"
#include "halo_cpu.h"

namespace {
constexpr int kPrefetchFarBytes = 8192;  // kernels_avx512vnni.cpp's, which the .inc reads
#include "head_i4_avx512.inc"

#define HALO_CHECK_SEED 20261206
#include "check_common.h"
}  // namespace

int main() {
  for (int trial = 0; trial < 40; trial++) {
    const bool extreme = trial == 39;
    const int rows = extreme ? 3 : uniform(1, 40), hidden = extreme ? HALO_HEAD_I4_MAX_HIDDEN : uniform(1, 300);
    const int n = extreme ? 2 : trial < 12 ? trial + 1 : uniform(1, 12);
    if (!head_i4_trial(head_i4, rows, hidden, n, extreme))
      fail("emulated avx512 head_i4 " + std::to_string(rows) + "x" + std::to_string(hidden) + " n=" + std::to_string(n));
  }
  std::printf("avx512 head_i4 (emulated): %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
