// sparse_lab.cpp: kernel lab for the activation-sparse GEMV (the "sparse down" lane) against the dense GEMV on the
// 2B-4T down projection (2560 × 6912, 30 layers, 132.7 MB of codes each way): ms per token and GB/s for each zero share.
// Build: g++ -O3 -std=c++17 -fopenmp dev/sparse_lab.cpp native/kernels_ref.cpp native/kernels_avx2.cpp native/kernels_avx512vnni.cpp \
//   -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -Inative -o /tmp/sparse_lab   (lab only: not the shipped flags)
// Run:   /tmp/sparse_lab [threads] [isa: avx512vnni | avx2]
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

static void* big(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 2;
  const bool avx2 = argc > 2 && std::strcmp(argv[2], "avx2") == 0;
  const halo_kernels* k = avx2 ? &halo_kernels_avx2 : &halo_kernels_avx512vnni;
  const int rows = 2560, cols = 6912, nb = cols / 256, layers = 30, tiles = rows / HALO_SPARSE_TILE;
  const size_t layer_codes = static_cast<size_t>(rows) * nb, layer_masks = static_cast<size_t>(tiles) * cols * 64;
  auto* w = static_cast<halo_block_i2*>(big(layers * layer_codes * 64));
  auto* masks = static_cast<uint8_t*>(big(layers * layer_masks));
  std::mt19937 rng(1);
  // Random ternary codes (0..2), a third each.
  auto* bytes = reinterpret_cast<uint8_t*>(w);
  for (size_t i = 0; i < layers * layer_codes * 64; i++) {
    uint8_t b = 0;
    for (int s = 0; s < 4; s++) b |= static_cast<uint8_t>((rng() % 3) << (2 * s));
    bytes[i] = b;
  }
  auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) schedule(dynamic)
  for (int i = 0; i < layers * tiles; i++)
    halo_sparse_masks(w + (i / tiles) * layer_codes, nb, rows, cols, i % tiles, i % tiles + 1, masks + (i / tiles) * layer_masks);
  std::printf("%s, %d threads; masks built in %.0f ms (%.1f MB)\n", k->name, threads,
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), layers * layer_masks / 1e6);
  std::vector<int8_t> x(cols);
  std::vector<int32_t> nz(cols), dense(rows), sparse(rows), ref(rows);
  for (double zero : {0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9}) {
    int n_nz = 0;
    int32_t sum = 0;
    for (int j = 0; j < cols; j++) {
      const bool z = std::uniform_real_distribution<double>(0, 1)(rng) < zero;
      x[j] = z ? 0 : static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      if (x[j] == 0) continue;
      nz[n_nz++] = j;
      sum += x[j];
    }
    // Correctness on layer 0: dense raw dot − Σx == sparse == scalar sparse.
    k->gemm_i2(w, nb, 0, rows, x.data(), cols, 1, dense.data(), rows, nullptr);
    k->gemv_i2_sparse(masks, tiles, 0, tiles, x.data(), nz.data(), n_nz, sparse.data());
    halo_kernels_ref.gemv_i2_sparse(masks, tiles, 0, tiles, x.data(), nz.data(), n_nz, ref.data());
    for (int r = 0; r < rows; r++)
      if (dense[r] - sum != sparse[r] || sparse[r] != ref[r]) {
        std::printf("MISMATCH row %d: dense %d sparse %d ref %d\n", r, dense[r] - sum, sparse[r], ref[r]);
        return 1;
      }
    double best_dense = 1e9, best_sparse = 1e9;
    for (int rep = 0; rep < 5; rep++) {
      auto a = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      {
        std::vector<int32_t> y(rows);
        const int t = omp_get_thread_num(), per = (rows / 16 + threads - 1) / threads * 16;
        for (int l = 0; l < layers; l++) {
          const int r0 = std::min(rows, t * per), r1 = std::min(rows, r0 + per);
          if (r0 < r1) k->gemm_i2(w + l * layer_codes, nb, r0, r1, x.data(), cols, 1, y.data(), rows, nullptr);
#pragma omp barrier
        }
      }
      auto b = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
      {
        // Each thread takes its share of the listed columns over every row tile; the partial sums are added after.
        std::vector<int32_t> y(rows);
        const int t = omp_get_thread_num(), per = (n_nz + threads - 1) / threads;
        const int i0 = std::min(n_nz, t * per), i1 = std::min(n_nz, i0 + per);
        for (int l = 0; l < layers; l++) {
          k->gemv_i2_sparse(masks + l * layer_masks, tiles, 0, tiles, x.data(), nz.data() + i0, i1 - i0, y.data());
#pragma omp barrier
        }
      }
      auto c = std::chrono::steady_clock::now();
      best_dense = std::min(best_dense, std::chrono::duration<double, std::milli>(b - a).count());
      best_sparse = std::min(best_sparse, std::chrono::duration<double, std::milli>(c - b).count());
    }
    const double read = layers * layer_masks * (static_cast<double>(n_nz) / cols) / 1e6;
    std::printf("zeros %2.0f %%: dense %.2f ms (%.1f GB/s)  sparse %.2f ms (%.1f MB read, %.1f GB/s)  sparse/dense %.2f\n", zero * 100, best_dense,
                layers * layer_codes * 64 / best_dense / 1e6, best_sparse, read, read / best_sparse, best_sparse / best_dense);
  }
  return 0;
}
