// avx512-i4-check.cpp: the AVX-512 int4 LM head (native/head_i4_avx512.inc) on an exact software model of its
// intrinsics (avx512_emulate.h), compared bit for bit with the scalar twin over random shapes, every token count of
// a pass (1..8 and more), row ranges and the largest hidden size with the largest codes. Built and run by
// scripts/sanitize.mjs (ASan + UBSan) on every machine, so the kernel's lane logic is checked where no CPU runs it.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "halo_cpu.h"
#include "avx512_emulate.h"

namespace {
#include "head_i4_avx512.inc"
}  // namespace

namespace {
std::mt19937 rng(20261206);
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(rng); }
int failures = 0;
void fail(const std::string& what) {
  if (failures++ < 10) std::fprintf(stderr, "FAIL %s\n", what.c_str());
}
}  // namespace

int main() {
  for (int trial = 0; trial < 40; trial++) {
    const bool extreme = trial == 39;
    const int rows = extreme ? 3 : uniform(1, 40), hidden = extreme ? HALO_HEAD_I4_MAX_HIDDEN : uniform(1, 300);
    const int n = extreme ? 2 : trial < 12 ? trial % 12 + 1 : uniform(1, 12);
    const int stride = HALO_HEAD_I8_STRIDE(hidden), groups = stride / HALO_HEAD_I4_GROUP;
    std::vector<float> x(static_cast<size_t>(n) * hidden), w(hidden), scales(rows);
    for (auto& v : x) v = extreme ? 1.0f : normal();
    if (extreme)
      for (int h = 0; h < hidden; h++) x[hidden + h] = -1.0f;
    std::vector<uint8_t> codes(static_cast<size_t>(rows) * stride / 2), sub(static_cast<size_t>(rows) * groups);
    std::vector<int32_t> sums(rows);
    for (int r = 0; r < rows; r++) {
      for (int h = 0; h < hidden; h++) w[h] = extreme ? (r == 1 ? -1.0f : 1.0f) : normal() * (r % 4 == 0 ? 1e-3f : 1.0f);
      halo_head_i4_row(w.data(), hidden, codes.data() + static_cast<size_t>(r) * stride / 2, sub.data() + static_cast<size_t>(r) * groups, &scales[r], &sums[r]);
    }
    std::vector<int8_t> xq(static_cast<size_t>(n) * stride);
    std::vector<double> xs(n);
    halo_head_i8_activations(x.data(), n, hidden, stride, xq.data(), xs.data());
    const int r0 = uniform(0, rows - 1), r1 = uniform(r0 + 1, rows), span = r1 - r0, y_stride = span + uniform(0, 3);
    std::vector<float> got(static_cast<size_t>(n) * y_stride, -7.0f), want(got.size(), -7.0f);
    head_i4(codes.data(), sub.data(), scales.data(), sums.data(), hidden, r0, r1, xq.data(), xs.data(), stride, n, got.data(), y_stride);
    halo_kernels_ref.head_i4(codes.data(), sub.data(), scales.data(), sums.data(), hidden, r0, r1, xq.data(), xs.data(), stride, n, want.data(), y_stride);
    if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0)
      fail("emulated avx512 head_i4 " + std::to_string(rows) + "x" + std::to_string(hidden) + " n=" + std::to_string(n));
  }
  std::printf("avx512 head_i4 (emulated): %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
