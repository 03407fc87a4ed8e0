// attn_lab.cpp: one attn_tile call (128 positions, head_dim 128, key/value row stride 640) timed on one core, f32 and f16 rows.
// Build: g++ -O3 -std=c++17 dev/attn_lab.cpp native/kernels_ref.cpp native/kernels_avx2.cpp native/kernels_avx512vnni.cpp -mavx2 -mfma -mf16c \
//   -mavx512f -mavx512bw -mavx512vl -mavx512vnni -Inative -o /tmp/attn_lab   Run: /tmp/attn_lab [query heads per call]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "halo_cpu.h"
int main(int argc, char** argv) {
  const int group = argc > 1 ? atoi(argv[1]) : 4, span = 128, hd = 128, stride = 640;
  std::vector<float> q(group * hd, 0.1f), kf(span * stride), vf(span * stride);
  for (size_t i = 0; i < kf.size(); i++) {
    kf[i] = (i % 13) * 0.01f;
    vf[i] = (i % 7) * 0.02f;
  }
  std::vector<uint16_t> k16(kf.size()), v16(vf.size());
  halo_kernels_ref.f32_to_f16(k16.data(), kf.data(), kf.size());
  halo_kernels_ref.f32_to_f16(v16.data(), vf.data(), vf.size());
  std::vector<double> scratch(HALO_ATTN_SCRATCH(group, hd, span)), out(group * (hd + 2));
  const halo_kernels* k = &halo_kernels_avx512vnni;
  for (int f16 = 0; f16 < 2; f16++) {
    const void* kp = f16 ? (const void*)k16.data() : kf.data();
    const void* vp = f16 ? (const void*)v16.data() : vf.data();
    const int N = 20000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < N; i++) k->attn_tile(q.data(), group, hd, kp, vp, f16, stride, span, nullptr, nullptr, 0, 0.088, scratch.data(), out.data());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double macs = 2.0 * group * span * hd;
    printf("group %d f16 %d: %.2f us/call, %.2f GMAC/s\n", group, f16, s / N * 1e6, macs * N / s / 1e9);
  }
}
