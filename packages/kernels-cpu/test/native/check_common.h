// check_common.h: what the native check drivers share: a failure counter that stops after 25 reports, a seeded
// random source and (after halo_cpu.h) the int4 head trial. Each driver includes it once, inside its own anonymous namespace, after defining HALO_CHECK_SEED.
#ifndef HALO_CHECK_COMMON_H
#define HALO_CHECK_COMMON_H

#ifndef HALO_CHECK_SEED
#error "define HALO_CHECK_SEED (the driver's random seed) before including check_common.h"
#endif

int failures = 0;
std::mt19937_64 rng(HALO_CHECK_SEED);

void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  if (++failures > 25) std::exit(1);
}

int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(rng); }

#ifdef HALO_CPU_H
// One int4 LM head trial: rows × hidden weights through halo_head_i4_row (every 4th row 1000× smaller), n token rows
// through halo_head_i8_activations, head_i4 (any callable with the table entry's signature) on a random row range
// into a padded y, compared bit for bit with the scalar twin. `extreme`: every weight ±1 (row 1 negative) and token
// 1 all −1, so every code is ±7, every sub-scale 255 and every activation ±127 — the int32 lane bound at the largest
// hidden — and the twin must give ±(127·7·255·hidden)·scale/s exactly. Returns false on a mismatch.
template <typename HeadI4>
bool head_i4_trial(HeadI4 head_i4, int rows, int hidden, int n, bool extreme) {
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
  if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0) return false;
  if (extreme)
    for (int t = 0; t < n; t++)
      for (int r = r0; r < r1; r++) {
        const double sign = (r == 1 ? -1.0 : 1.0) * (t == 1 ? -1.0 : 1.0);
        if (want[static_cast<size_t>(t) * y_stride + (r - r0)] != static_cast<float>(sign * 127.0 * 7 * 255 * hidden * scales[r] / xs[t])) return false;
      }
  return true;
}
#endif

#endif
