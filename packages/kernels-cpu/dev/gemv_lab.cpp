// gemv_lab.cpp: kernel lab for the ternary GEMV/GEMM and f16 head: bandwidth of each ISA path over a 2B-sized stream.
// Build: g++ -O3 -std=c++17 -fopenmp dev/gemv_lab.cpp native/kernels_ref.cpp native/kernels_avx2.cpp native/kernels_avx512vnni.cpp \
//   native/kernels_amx.cpp -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mamx-tile -mamx-int8 -Inative \
//   -o /tmp/gemv_lab   (lab only: not the shipped flags; the AMX row runs first where the OS grants tile state)
// Run:   /tmp/gemv_lab [threads] [tokens]
#include <omp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "halo_cpu.h"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  const int n = argc > 2 ? atoi(argv[2]) : 1;
  const bool huge = argc > 3 ? atoi(argv[3]) != 0 : true;
  // 30 layers of the 2B-4T matrices as one stream: rows × K.
  const int K = 2560, nb = K / 256;
  const size_t rows = 30ull * (3840 + 2560 + 13824) + 30ull * 2560 * 27 / 10;  // ≈ the 521 MB of ternary weights
  const size_t bytes = rows * nb * 64;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (huge) madvise(mem, bytes, MADV_HUGEPAGE);
  auto* w = static_cast<halo_block_i2*>(mem);
  memset(w, 0x5a, bytes);
  std::vector<int8_t> x(static_cast<size_t>(n) * K, 3);
  std::vector<int32_t> y(rows * n);
  // AMX: Linux hands out tile state only after ARCH_REQ_XCOMP_PERM (0x1023) for XTILEDATA (18).
  const bool amx = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  const halo_kernels* kernels[] = {amx ? halo_kernels_amx() : &halo_kernels_ref, &halo_kernels_avx512vnni, &halo_kernels_avx2, &halo_kernels_ref};
  for (const halo_kernels* k : kernels) {
    if (k == &halo_kernels_ref && (n > 1 || k == kernels[0])) continue;
    double best = 1e9;
    for (int rep = 0; rep < (k == &halo_kernels_ref ? 1 : 5); rep++) {
      auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      {
        const int i = omp_get_thread_num();
        const int r0 = static_cast<int>(rows * i / threads), r1 = static_cast<int>(rows * (i + 1) / threads);
        k->gemm_i2(w, nb, r0, r1, x.data(), K, n, y.data() + r0, static_cast<int>(rows), nullptr);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s < best) best = s;
    }
    printf("%-11s threads=%d tokens=%d huge=%d: %.1f ms per pass, %.2f GB/s of weights, %.1f tokens/s\n", k->name, threads, n, huge, best * 1e3,
           bytes / best / 1e9, n / best);
  }
  // The f16 head: 128256 × 2560.
  const size_t vocab = 128256, hidden = 2560, hbytes = vocab * hidden * 2;
  void* hm = mmap(nullptr, hbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (huge) madvise(hm, hbytes, MADV_HUGEPAGE);
  memset(hm, 0x3c, hbytes);
  std::vector<float> hx(hidden * n, 0.5f), logits(vocab * n);
  for (const halo_kernels* k : {&halo_kernels_avx512vnni, &halo_kernels_avx2}) {
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
      auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      {
        const int i = omp_get_thread_num();
        const int r0 = static_cast<int>(vocab * i / threads), r1 = static_cast<int>(vocab * (i + 1) / threads);
        k->head_f16(static_cast<const uint16_t*>(hm), hidden, r0, r1, hx.data(), n, logits.data() + r0, vocab);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s < best) best = s;
    }
    printf("head f16 %-11s tokens=%d: %.1f ms, %.2f GB/s\n", k->name, n, best * 1e3, hbytes / best / 1e9);
  }
  return 0;
}
