// model.cpp: the BitNet b1.58 forward pass of one step (all rows, all layers) on packed weights, plus its ops.
#include "model.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // Linux uapi asm/hwcap.h: the SDOT/UDOT instructions
#endif
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>

namespace halo {

// ---------------------------------------------------------------- ISA choice and pools

#if defined(__x86_64__)
// AMX needs the CPU (CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8), the OS saving tile state (OSXSAVE, XCR0
// bits 17 TILECFG and 18 TILEDATA) and, on Linux, this process's permission to use TILEDATA (arch_prctl
// ARCH_REQ_XCOMP_PERM, Linux ≥ 5.16; without it the first tile instruction is a SIGILL). Asked once per process; a
// refusal (an older kernel, a thread's sigaltstack too small for the tile state) leaves the path unlisted.
// Compiled here, at the baseline ISA, because it runs on every x86-64 CPU.
static bool amx_usable() {
  static const bool usable = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if (((edx >> 24) & 1u) == 0 || ((edx >> 25) & 1u) == 0) return false;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || ((ecx >> 27) & 1u) == 0) return false;
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__ __volatile__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0u));
    if (((xcr0_lo >> 17) & 3u) != 3u) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // asm/prctl.h, asm/fpu/types.h
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
}
#endif

const halo_kernels* kernels_for(const std::string& isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx512vnni") && avx2;
  const bool amx = vnni && amx_usable();
  if (isa == "auto") return amx ? halo_kernels_amx() : vnni ? &halo_kernels_avx512vnni : avx2 ? &halo_kernels_avx2 : &halo_kernels_ref;
  if (isa == "amx") return amx ? halo_kernels_amx() : nullptr;
  if (isa == "avx512vnni") return vnni ? &halo_kernels_avx512vnni : nullptr;
  if (isa == "avx2") return avx2 ? &halo_kernels_avx2 : nullptr;
#elif defined(__aarch64__)
  const bool dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  if (isa == "auto") return dotprod ? &halo_kernels_neon_dotprod : &halo_kernels_neon;
  if (isa == "neondotprod") return dotprod ? &halo_kernels_neon_dotprod : nullptr;
  if (isa == "neon") return &halo_kernels_neon;
#else
  if (isa == "auto") return &halo_kernels_ref;
#endif
  if (isa == "scalar") return &halo_kernels_ref;
  return nullptr;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const char* name : {"amx", "avx512vnni", "avx2", "neondotprod", "neon", "scalar"})
    if (kernels_for(name) != nullptr) out.emplace_back(name);
  return out;
}

ThreadPool* pool_for(int threads) {
  static std::mutex mutex;
  // Never freed, map included: workers live for the process, and a map destroyed at exit would leave its pools
  // unreachable (a LeakSanitizer report) while a late step could still be using one.
  static auto* pools = new std::map<int, ThreadPool*>();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = pools->find(threads);
  if (it != pools->end()) return it->second;
  auto* pool = new ThreadPool(threads);
  pools->emplace(threads, pool);
  return pool;
}

// ---------------------------------------------------------------- memory

Region::~Region() {
  if (data != nullptr) munmap(data, bytes);
}

bool Region::allocate(size_t size, bool huge_pages) {
  constexpr size_t kHuge = 2u << 20;
  bytes = std::max<size_t>(64, (size + kHuge - 1) / kHuge * kHuge);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    data = nullptr;
    bytes = 0;
    return false;
  }
  data = p;
#ifdef MADV_HUGEPAGE
  huge = huge_pages && madvise(p, bytes, MADV_HUGEPAGE) == 0;
#endif
  return true;
}

bool Model::in_file_map(const void* p) const {
  const char* at = static_cast<const char*>(p);
  for (const auto& map : maps)
    if (at >= static_cast<const char*>(map->data) && at < static_cast<const char*>(map->data) + map->bytes) return true;
  return false;
}

void drop_pages(const void* p, size_t bytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

halo_status Model::map_file(const std::string& path, const uint8_t** out, size_t* out_bytes) {
  for (const auto& map : maps) {
    if (map->path == path) {
      *out = static_cast<const uint8_t*>(map->data);
      *out_bytes = map->bytes;
      return HALO_OK;
    }
  }
  auto map = std::make_unique<FileMap>();
  const halo_status status = file_map_open(path, *map);
  if (status != HALO_OK) return status;
  *out = static_cast<const uint8_t*>(map->data);
  *out_bytes = map->bytes;
  maps.push_back(std::move(map));
  return HALO_OK;
}

halo_status Model::check_files() {
  if (file_change.changed) return HALO_FILE_CHANGED;
  for (const auto& map : maps)
    if (file_map_changed(*map, &file_change)) return HALO_FILE_CHANGED;
  return HALO_OK;
}

FileChange Model::file_change_copy() {
  std::lock_guard<std::mutex> lock(step_mutex);
  return file_change;
}

namespace {

// True when no 2-bit code of bytes [p, p + n) is 3 (a valid halo_block_i2 row holds codes 0..2 only).
bool codes_valid(const uint8_t* p, size_t n) {
  uint64_t bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    bad |= v & (v >> 1) & 0x5555555555555555ull;
  }
  for (; i < n; i++) bad |= p[i] & (p[i] >> 1) & 0x55u;
  return bad == 0;
}

}  // namespace

halo_status place_codes(ThreadPool* pool, Matrix& m, int row0, const uint8_t* src, size_t src_bytes, int rows, bool borrow) {
  if (row0 < 0 || rows < 0 || rows > m.rows - row0 || m.arena_codes == nullptr) return HALO_BAD_ARGUMENT;
  const size_t row_bytes = static_cast<size_t>(m.nb) * sizeof(halo_block_i2);
  const size_t bytes = row_bytes * static_cast<size_t>(rows);
  if (src_bytes < bytes) return HALO_BAD_ARGUMENT;
  // Check every code on the pool (this also brings mapped pages in, in parallel).
  std::atomic<bool> ok{true};
  const int workers = pool->size();
  pool->run([&](int i) {
    size_t b, e;
    const size_t lines = (bytes + 63) / 64;
    b = lines * static_cast<size_t>(i) / workers * 64;
    e = std::min(bytes, lines * static_cast<size_t>(i + 1) / workers * 64);
    if (b < e && !codes_valid(src + b, e - b)) ok.store(false, std::memory_order_relaxed);
  });
  if (!ok.load()) return HALO_BAD_WEIGHTS;
  char* const arena_rows = reinterpret_cast<char*>(m.arena_codes);
  if (borrow && row0 == 0) {
    m.codes = reinterpret_cast<halo_block_i2*>(const_cast<uint8_t*>(src));  // read only: the kernels never write weights
    m.mapped = true;
    return HALO_OK;
  }
  if (borrow && m.mapped && reinterpret_cast<const char*>(src) == reinterpret_cast<const char*>(m.codes) + row_bytes * row0) {
    return HALO_OK;  // the next fused part lies right after the previous one in the file
  }
  if (m.mapped) {
    // Parts not adjacent in the file: fall back to the arena, copying the rows borrowed so far.
    std::memcpy(arena_rows, m.codes, row_bytes * static_cast<size_t>(row0));
    m.codes = m.arena_codes;
    m.mapped = false;
  }
  std::memcpy(arena_rows + row_bytes * static_cast<size_t>(row0), src, bytes);
  return HALO_OK;
}

float quantize_head_row(const float* row, int hidden, int8_t* dst) {
  float absmax = 0;
  for (int h = 0; h < hidden; h++) absmax = std::max(absmax, std::fabs(row[h]));
  const float scale = absmax > 0 ? absmax / 127.0f : 1.0f;
  // Clamped before the cast: a NaN or infinite weight would make the float→int8 conversion undefined.
  for (int h = 0; h < hidden; h++) dst[h] = static_cast<int8_t>(std::nearbyint(std::max(-127.0f, std::min(127.0f, row[h] / scale))));
  return scale;
}

halo_status quantize_head(ThreadPool* pool, const halo_kernels* k, FloatType type, const void* src, int vocab, int hidden, HeadType quant, bool huge_pages,
                          QuantisedHead& out) {
  if (quant != HeadType::I8 && (quant != HeadType::I4 || hidden > HALO_HEAD_I4_MAX_HIDDEN)) return HALO_BAD_ARGUMENT;
  const bool i4 = quant == HeadType::I4;
  const int groups = HALO_HEAD_I8_STRIDE(hidden) / HALO_HEAD_I4_GROUP;
  const size_t row_bytes = i4 ? static_cast<size_t>(HALO_HEAD_I8_STRIDE(hidden)) / 2 : static_cast<size_t>(hidden);
  if (!out.codes.allocate(row_bytes * vocab, huge_pages)) return HALO_OUT_OF_MEMORY;
  out.scales.assign(vocab, 0.0f);
  out.sub.assign(i4 ? static_cast<size_t>(vocab) * groups : 0, 0);
  out.sums.assign(i4 ? vocab : 0, 0);
  uint8_t* const codes = static_cast<uint8_t*>(out.codes.data);
  const int workers = pool->size();
  pool->run([&](int i) {
    int r0, r1;
    split_range(vocab, workers, i, 16, &r0, &r1);
    std::vector<float> row(hidden);
    for (int r = r0; r < r1; r++) {
      float_row(k, type, src, static_cast<size_t>(r), hidden, row.data());
      uint8_t* dst = codes + static_cast<size_t>(r) * row_bytes;
      if (i4) halo_head_i4_row(row.data(), hidden, dst, out.sub.data() + static_cast<size_t>(r) * groups, &out.scales[r], &out.sums[r]);
      else out.scales[r] = quantize_head_row(row.data(), hidden, reinterpret_cast<int8_t*>(dst));
    }
  });
  return HALO_OK;
}

// ---------------------------------------------------------------- activations

// Round half to even without SSE4.1 or a libm call: adding and subtracting 1.5·2^52 (1.5·2^23 for
// float) rounds in the default round-to-nearest-even mode; exact for |v| < 2^51 (2^22), and
// quantised values are within ±128·(1+2^-23) before the clamp. `volatile`-free: without
// -ffast-math the compiler must keep both operations.
static inline double round_even(double v) {
  const double magic = 6755399441055744.0;
  return (v + magic) - magic;
}
static inline float round_even(float v) {
  const float magic = 12582912.0f;
  return (v + magic) - magic;
}

void Activations::quantize(const halo_kernels* k, const float* x, int rows, int w, bool per_token_scheme) {
  prepare(rows, w, per_token_scheme);
  quantize_rows(k, x, 0, rows);
}

void Activations::prepare(int rows, int w, bool per_token_scheme) {
  n = rows;
  width = w;
  padded = (w + 255) / 256 * 256;
  per_token = per_token_scheme;
  const int nb = padded / 256;
  values.assign(static_cast<size_t>(rows) * padded, 0);
  block_sums.assign(static_cast<size_t>(rows) * nb, 0);
  row_sums.assign(rows, 0);
  scales.assign(per_token ? rows : static_cast<size_t>(rows) * (w / 256), 0.0f);
}

void Activations::quantize_rows(const halo_kernels* k, const float* x, int t0, int t1) {
  const int w = width;
  const int nb = padded / 256;
  const float floor_value = 1e-5f;
  for (int t = t0; t < t1; t++) {
    const float* xr = x + static_cast<size_t>(t) * w;
    int8_t* q = values.data() + static_cast<size_t>(t) * padded;
    if (per_token) {
      // Eight running maxima (the result is exact whatever the order; NaN is never selected, as before).
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int i = 0;
      for (; i + 8 <= w; i += 8)
        for (int j = 0; j < 8; j++) part[j] = std::max(part[j], std::fabs(xr[i + j]));
      for (; i < w; i++) part[0] = std::max(part[0], std::fabs(xr[i]));
      float absmax = 0;
      for (float m : part) absmax = std::max(absmax, m);
      // s = f32(127 / max(absmax, 1e-5)); x·s is exact in float64, rounded half to even (in the kernel).
      const float s = static_cast<float>(127.0 / std::max(static_cast<double>(absmax), static_cast<double>(floor_value)));
      scales[t] = s;
      int32_t total = 0;
      for (int b = 0; b < nb; b++) {
        const int span = std::min(256, w - b * 256);
        const int32_t sum = k->quantize_i8(xr + b * 256, span, static_cast<double>(s), q + b * 256);
        block_sums[static_cast<size_t>(t) * nb + b] = sum;
        total += sum;
      }
      row_sums[t] = total;
      continue;
    }
    {
      // llama.cpp Q8_K: signed max of largest magnitude (first on ties), iscale = f32(-127/max).
      for (int b = 0; b < w / 256; b++) {
        const float* xb = xr + b * 256;
        float amax = 0, maxv = 0;
        for (int j = 0; j < 256; j++) {
          const float a = std::fabs(xb[j]);
          if (a > amax) {
            amax = a;
            maxv = xb[j];
          }
        }
        if (amax == 0) continue;
        const float iscale = static_cast<float>(-127.0 / static_cast<double>(maxv));
        for (int j = 0; j < 256; j++) {
          const float v = round_even(iscale * xb[j]);
          q[b * 256 + j] = static_cast<int8_t>(v > 127 ? 127 : v);
        }
        scales[static_cast<size_t>(t) * (w / 256) + b] = static_cast<float>(1.0 / static_cast<double>(iscale));
      }
    }
    int32_t total = 0;
    for (int b = 0; b < nb; b++) {
      int32_t sum = 0;
      for (int j = 0; j < 256; j++) sum += q[b * 256 + j];
      block_sums[static_cast<size_t>(t) * nb + b] = sum;
      total += sum;
    }
    row_sums[t] = total;
  }
}

// ---------------------------------------------------------------- ternary matmul

halo_status pack_rows(Matrix& m, int row0, const int8_t* trits, int rows) {
  if (row0 < 0 || rows < 0 || rows > m.rows - row0) return HALO_BAD_ARGUMENT;  // no int overflow on huge row0
  for (int r = 0; r < rows; r++) {
    halo_block_i2* row = m.codes + static_cast<size_t>(row0 + r) * m.nb;
    std::memset(row, 0x55, static_cast<size_t>(m.nb) * sizeof(halo_block_i2));  // code 1 (w = 0) everywhere
    const int8_t* src = trits + static_cast<size_t>(r) * m.cols;
    for (int k = 0; k < m.cols; k++) {
      const int t = src[k];
      if (t < -1 || t > 1) return HALO_BAD_WEIGHTS;
      const int within = k & 255;
      const int shift = 2 * (within >> 6);
      uint8_t& byte = row[k >> 8].qs[within & 63];
      byte = static_cast<uint8_t>((byte & ~(3 << shift)) | ((t + 1) << shift));
    }
  }
  return HALO_OK;
}

namespace {

// The block code (c = w + 1) of each 2-bit stored code: 00 -> 0 (w = -1), 01 -> 1, 10 -> 2, 11 -> 1 (read as w = 0, as the
// TypeScript decoders of halo-v2 and tq2_0 do).
constexpr uint8_t kCode2[4] = {0, 1, 2, 1};

// The 4 block codes of each halo-v2 byte, one per byte lane (weights 4b .. 4b + 3 of the row).
const std::array<uint32_t, 256>& halo_v2_lut() {
  static const std::array<uint32_t, 256> lut = [] {
    std::array<uint32_t, 256> t{};
    for (int b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int j = 0; j < 4; j++) v |= static_cast<uint32_t>(kCode2[(b >> (2 * j)) & 3]) << (8 * j);
      t[b] = v;
    }
    return t;
  }();
  return lut;
}

}  // namespace

size_t packed_row_bytes(PackedSource packing, int cols) {
  switch (packing) {
    case PackedSource::HaloV2: return (static_cast<size_t>(cols) + 3) / 4;
    case PackedSource::Tq2_0: return static_cast<size_t>(cols) / 256 * 66;
    case PackedSource::Int8: return static_cast<size_t>(cols);
    case PackedSource::I2S: return static_cast<size_t>(cols) / 4;
    case PackedSource::HfPacked: return static_cast<size_t>(cols);  // per byte row, which holds four matrix rows
  }
  return 0;
}

halo_status pack_codes(ThreadPool* pool, Matrix& m, PackedSource packing, int row0, const uint8_t* src, size_t src_bytes, int rows) {
  if (row0 < 0 || rows < 0 || rows > m.rows - row0) return HALO_BAD_ARGUMENT;
  if (packing == PackedSource::Tq2_0 && m.cols % 256 != 0) return HALO_BAD_ARGUMENT;
  if (packing == PackedSource::I2S && m.cols % 128 != 0) return HALO_BAD_ARGUMENT;
  const size_t row_bytes = packed_row_bytes(packing, m.cols);
  if (packing == PackedSource::HfPacked) {
    if (rows % 4 != 0 || src_bytes / row_bytes < static_cast<size_t>(rows / 4)) return HALO_BAD_ARGUMENT;
  } else if (src_bytes / row_bytes < static_cast<size_t>(rows)) {
    return HALO_BAD_ARGUMENT;
  }
  const int quarter = rows / 4;  // HfPacked: byte rows
  const auto& lut = halo_v2_lut();
  const int padded = m.nb * HALO_I2_BLOCK;
  std::atomic<int> cursor{0};
  std::atomic<bool> bad{false};
  constexpr int kChunk = 64;
  pool->run([&](int) {
    std::vector<uint8_t> codes(static_cast<size_t>(padded) + 4);
    for (;;) {
      const int r0 = cursor.fetch_add(kChunk, std::memory_order_relaxed);
      if (r0 >= rows) break;
      const int r1 = std::min(rows, r0 + kChunk);
      for (int r = r0; r < r1; r++) {
        // One block code per weight of the row, then code 1 (w = 0) as padding.
        if (packing == PackedSource::HfPacked) {
          const uint8_t* qs = src + row_bytes * static_cast<size_t>(r % quarter);
          const int shift = 2 * (r / quarter);
          for (int k = 0; k < m.cols; k++) codes[k] = kCode2[(qs[k] >> shift) & 3];
        } else if (packing == PackedSource::HaloV2) {
          const uint8_t* in = src + row_bytes * static_cast<size_t>(r);
          for (size_t b = 0; b < row_bytes; b++) std::memcpy(&codes[4 * b], &lut[in[b]], 4);
        } else if (packing == PackedSource::Tq2_0) {
          const uint8_t* in = src + row_bytes * static_cast<size_t>(r);
          // 66-byte blocks: weight 128h + 32n + m in bits 2n of byte 32h + m, then the f16 d (ignored: scales come separately).
          for (int j = 0; j < m.nb; j++) {
            const uint8_t* qs = in + static_cast<size_t>(j) * 66;
            uint8_t* c = codes.data() + static_cast<size_t>(j) * HALO_I2_BLOCK;
            for (int h = 0; h < 2; h++)
              for (int n = 0; n < 4; n++)
                for (int i = 0; i < 32; i++) c[128 * h + 32 * n + i] = kCode2[(qs[32 * h + i] >> (2 * n)) & 3];
          }
        } else if (packing == PackedSource::I2S) {
          const uint8_t* in = src + row_bytes * static_cast<size_t>(r);
          // 32-byte blocks of 128 weights, the first quarter of the block in each byte's top bits.
          for (int b = 0; b < m.cols / 128; b++) {
            const uint8_t* qs = in + static_cast<size_t>(b) * 32;
            uint8_t* c = codes.data() + static_cast<size_t>(b) * 128;
            for (int i = 0; i < 32; i++) {
              const uint8_t v = qs[i];
              c[i] = kCode2[(v >> 6) & 3];
              c[32 + i] = kCode2[(v >> 4) & 3];
              c[64 + i] = kCode2[(v >> 2) & 3];
              c[96 + i] = kCode2[v & 3];
            }
          }
        } else {
          const uint8_t* in = src + row_bytes * static_cast<size_t>(r);
          bool ok = true;
          for (int k = 0; k < m.cols; k++) {
            const int t = static_cast<int8_t>(in[k]);
            ok &= t >= -1 && t <= 1;
            codes[k] = static_cast<uint8_t>(t + 1);
          }
          if (!ok) {
            bad.store(true, std::memory_order_relaxed);
            return;
          }
        }
        std::memset(codes.data() + m.cols, 1, static_cast<size_t>(padded - m.cols));
        halo_block_i2* out = m.codes + static_cast<size_t>(row0 + r) * m.nb;
        for (int j = 0; j < m.nb; j++) {
          const uint8_t* c = codes.data() + static_cast<size_t>(j) * HALO_I2_BLOCK;
          uint8_t* q = out[j].qs;
          for (int p = 0; p < 64; p++) q[p] = static_cast<uint8_t>(c[p] | (c[p + 64] << 2) | (c[p + 128] << 4) | (c[p + 192] << 6));
        }
      }
    }
  });
  return bad.load() ? HALO_BAD_WEIGHTS : HALO_OK;
}

namespace {

thread_local std::vector<int32_t> tl_raw;

inline double act_scale_factor(const Activations& a, int t, int k0) {
  return a.per_token ? 1.0 : static_cast<double>(a.scales[static_cast<size_t>(t) * (a.width / 256) + k0 / 256]);
}

}  // namespace

void matmul_rows(const halo_kernels* k, const Matrix& m, const Activations& a, float* y, int y_stride, const Matrix* next, int r0, int r1, bool fast,
                 bool blocked, int seg, int act_block, int spr);

namespace {
// How much of the next matrix helpers prefetch after a matmul (about the serial gap's worth at ~16 GB/s per core).
const size_t kPrefetchHintBytes = std::getenv("HALO_CPU_HINT_KB") != nullptr ? std::strtoul(std::getenv("HALO_CPU_HINT_KB"), nullptr, 10) << 10 : 256u << 10;
}  // namespace

void matmul(ThreadPool* pool, const halo_kernels* k, const Matrix& m, const Activations& a, float* y, int y_stride, const Matrix* next) {
  const int cols = m.cols;
  const int act_block = a.per_token ? cols : 256;
  const int spr = cols / m.scale_block;  // scales per row
  const bool fast = a.per_token && m.scale_block == cols;
  const int seg = std::gcd(m.scale_block, act_block);
  const bool blocked = !fast && seg % 256 == 0;
  const int workers = pool->size();
  // Rows are handed out in chunks from a shared cursor rather than one static slice per worker:
  // on a shared 2-core machine a worker whose core is busy elsewhere must not hold up the step.
  const int chunk = std::max(16, (m.rows / (workers * 8) + 15) / 16 * 16);
  std::atomic<int> cursor{0};
  // Helpers that run out of rows prefetch the start of the next matrix while the caller does the serial work.
  const size_t next_bytes = next != nullptr ? static_cast<size_t>(next->rows) * next->nb * sizeof(halo_block_i2) : 0;
  pool->run(
      [&](int) {
        for (int r0 = cursor.fetch_add(chunk); r0 < m.rows; r0 = cursor.fetch_add(chunk)) {
          const int r1 = std::min(m.rows, r0 + chunk);
          matmul_rows(k, m, a, y, y_stride, next, r0, r1, fast, blocked, seg, act_block, spr);
        }
      },
      next != nullptr ? next->codes : nullptr, std::min(next_bytes, kPrefetchHintBytes));
}

void matmul_rows(const halo_kernels* k, const Matrix& m, const Activations& a, float* y, int y_stride, const Matrix* next, int r0, int r1, bool fast,
                 bool blocked, int seg, int act_block, int spr) {
  (void)act_block;
  const int n = a.n;
  const int cols = m.cols;
  {
    const int count = r1 - r0;
    if (fast) {
      // Prefetch runs on past this chunk into the following rows, and past the matrix into the next one.
      const void* pf = r1 < m.rows       ? static_cast<const void*>(m.codes + static_cast<size_t>(r1) * m.nb)
                       : next != nullptr ? static_cast<const void*>(next->codes)
                                         : nullptr;
      tl_raw.resize(static_cast<size_t>(n) * count);
      k->gemm_i2(m.codes, m.nb, r0, r1, a.values.data(), a.padded, n, tl_raw.data(), count, pf);
      k->scale_dots(tl_raw.data(), count, n, a.row_sums.data(), a.scales.data(), m.scales.data() + r0, y + r0, y_stride);
      return;
    }
    if (blocked) {
      constexpr int kChunk = 64;
      const int nb = m.nb;
      tl_raw.resize(static_cast<size_t>(kChunk) * nb);
      for (int t = 0; t < n; t++) {
        const int32_t* bsum = a.block_sums.data() + static_cast<size_t>(t) * nb;
        for (int rc = r0; rc < r1; rc += kChunk) {
          const int re = std::min(rc + kChunk, r1);
          k->gemm_i2_blocks(m.codes, nb, rc, re, a.values.data() + static_cast<size_t>(t) * a.padded, a.padded, 1, tl_raw.data(), 0);
          for (int r = rc; r < re; r++) {
            double total = 0;
            for (int b = 0; b < nb; b++) {
              const int32_t dot = tl_raw[static_cast<size_t>(r - rc) * nb + b] - bsum[b];
              if (dot == 0) continue;
              const double ws = m.scales[static_cast<size_t>(r) * spr + (b * 256) / m.scale_block];
              total += static_cast<double>(dot) * ws * act_scale_factor(a, t, b * 256);
            }
            y[static_cast<size_t>(t) * y_stride + r] = static_cast<float>(a.per_token ? total / a.scales[t] : total);
          }
        }
      }
      return;
    }
    // Scale blocks narrower than 256 (small test models): scalar segments of gcd(weight, activation) blocks.
    for (int t = 0; t < n; t++) {
      const int8_t* xt = a.values.data() + static_cast<size_t>(t) * a.padded;
      for (int r = r0; r < r1; r++) {
        const halo_block_i2* row = m.codes + static_cast<size_t>(r) * m.nb;
        double total = 0;
        for (int k0 = 0; k0 < cols; k0 += seg) {
          int32_t dot = 0;
          for (int kk = k0; kk < k0 + seg; kk++) dot += (halo_i2_code(row, kk) - 1) * xt[kk];
          if (dot == 0) continue;
          const double ws = m.scales[static_cast<size_t>(r) * spr + k0 / m.scale_block];
          total += static_cast<double>(dot) * ws * act_scale_factor(a, t, k0);
        }
        y[static_cast<size_t>(t) * y_stride + r] = static_cast<float>(a.per_token ? total / a.scales[t] : total);
      }
    }
  }
}

halo_status build_sparse(ThreadPool* pool, Matrix& m, bool huge_pages) {
  const int tiles = HALO_SPARSE_TILES(m.rows);
  auto region = std::make_unique<Region>();
  if (!region->allocate(static_cast<size_t>(tiles) * m.cols * 64, huge_pages)) return HALO_OUT_OF_MEMORY;
  auto* masks = static_cast<uint8_t*>(region->data);
  std::atomic<int> cursor{0};
  pool->run([&](int) {
    for (int g = cursor.fetch_add(1); g < tiles; g = cursor.fetch_add(1)) halo_sparse_masks(m.codes, m.nb, m.rows, m.cols, g, g + 1, masks);
  });
  m.sparse = std::move(region);
  return HALO_OK;
}

int nonzero_columns(const Activations& a, int t, int32_t* nz) {
  const int8_t* v = a.values.data() + static_cast<size_t>(t) * a.padded;
  int count = 0;
  // Branch-free: every index is written, the count moves only past nonzero ones (~1 cycle per column).
  for (int j = 0; j < a.width; j++) {
    nz[count] = j;
    count += v[j] != 0;
  }
  return count;
}

namespace {
thread_local std::vector<int32_t> tl_sparse_sum;
// The stepping thread's [workers][tiles·256] partial sums, one row per pool worker (written by the workers it runs).
thread_local std::vector<int32_t> tl_sparse_parts;
}  // namespace

void sparse_matmul(ThreadPool* pool, const halo_kernels* k, const Matrix& m, const Activations& a, int t, const int32_t* nz, int n_nz, float* y) {
  const int tiles = HALO_SPARSE_TILES(m.rows);
  const size_t width = static_cast<size_t>(tiles) * HALO_SPARSE_TILE;
  const int workers = pool->size();
  std::vector<int32_t>& parts = tl_sparse_parts;
  if (parts.size() < width * workers) parts.resize(width * workers);
  const int8_t* x = a.values.data() + static_cast<size_t>(t) * a.padded;
  const auto* masks = static_cast<const uint8_t*>(m.sparse->data);
  const int per = (n_nz + workers - 1) / workers;
  pool->run([&](int w) {
    const int i0 = std::min(n_nz, w * per), i1 = std::min(n_nz, i0 + per);
    k->gemv_i2_sparse(masks, tiles, 0, tiles, x, nz + i0, i1 - i0, parts.data() + width * w);
  });
  std::vector<int32_t>& sum = tl_sparse_sum;
  sum.assign(parts.begin(), parts.begin() + m.rows);
  for (int w = 1; w < workers; w++) {
    const int32_t* part = parts.data() + width * w;
    for (int r = 0; r < m.rows; r++) sum[r] += part[r];
  }
  const int32_t no_correction = 0;
  k->scale_dots(sum.data(), m.rows, 1, &no_correction, a.scales.data() + t, m.scales.data(), y, 0);
}

// ---------------------------------------------------------------- small ops

void float_row(const halo_kernels* k, FloatType t, const void* base, size_t row, int n, float* out) {
  const size_t at = row * static_cast<size_t>(n);
  switch (t) {
    case FloatType::F16: k->f16_to_f32(out, static_cast<const uint16_t*>(base) + at, n); break;
    case FloatType::BF16:
      for (int i = 0; i < n; i++) out[i] = halo_bf16_to_f32(static_cast<const uint16_t*>(base)[at + i]);
      break;
    default: std::memcpy(out, static_cast<const float*>(base) + at, sizeof(float) * n); break;
  }
}

void rms_norm_rows(const float* x, const float* w, int d, int n, double eps, float* out) {
  for (int t = 0; t < n; t++) {
    const float* xr = x + static_cast<size_t>(t) * d;
    // Eight running sums (one dependency chain was bound by the add latency); float64, within the rmsNorm tolerance.
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= d; i += 8)
      for (int j = 0; j < 8; j++) part[j] += static_cast<double>(xr[i + j]) * xr[i + j];
    for (; i < d; i++) part[0] += static_cast<double>(xr[i]) * xr[i];
    const double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    const double inv = 1.0 / std::sqrt(sum / d + eps);
    float* o = out + static_cast<size_t>(t) * d;
    for (i = 0; i < d; i++) o[i] = static_cast<float>(static_cast<double>(xr[i]) * inv * w[i]);
  }
}

void rope_table(const int32_t* positions, int n, int head_dim, double theta, std::vector<double>& table) {
  const int half = head_dim / 2;
  table.resize(static_cast<size_t>(n) * head_dim);
  std::vector<double> inv(half);
  for (int i = 0; i < half; i++) inv[i] = std::pow(theta, (-2.0 * i) / head_dim);
  for (int t = 0; t < n; t++) {
    double* cs = table.data() + static_cast<size_t>(t) * head_dim;
    for (int i = 0; i < half; i++) {
      const double angle = positions[t] * inv[i];
      cs[i] = std::cos(angle);
      cs[half + i] = std::sin(angle);
    }
  }
}

void rope_rows(float* x, int stride, const int32_t* positions, int n, int heads, int head_dim, double theta) {
  std::vector<double> table;
  rope_table(positions, n, head_dim, theta, table);
  rope_apply(x, stride, table.data(), n, heads, head_dim);
}

void rope_apply(float* x, int stride, const double* table, int n, int heads, int head_dim) {
  const int half = head_dim / 2;
  for (int t = 0; t < n; t++) {
    const double* cs = table + static_cast<size_t>(t) * head_dim;
    for (int h = 0; h < heads; h++) {
      float* base = x + static_cast<size_t>(t) * stride + h * head_dim;
      for (int i = 0; i < half; i++) {
        const double a = base[i], b = base[i + half];
        base[i] = static_cast<float>(a * cs[i] - b * cs[half + i]);
        base[i + half] = static_cast<float>(a * cs[half + i] + b * cs[i]);
      }
    }
  }
}

namespace {

// Scratch reused across steps: partials belong to the calling (step) thread, tile scratch to each worker.
thread_local std::vector<double> tl_partial;
thread_local std::vector<double> tl_attn_scratch;
thread_local std::vector<int> tl_first_task, tl_tiles;

}  // namespace

void attention(ThreadPool* pool, const halo_kernels* k, const AttentionArgs& args) {
  const int group = args.heads / args.kv_heads;
  const int hd = args.head_dim;
  const int kv_width = args.kv_heads * hd;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  // Partials (m, l, o) per (row, kv head, tile) in that order. A tile is at most HALO_ATTN_TILE positions (the kernel's
  // scratch), so long rows are always split; tiles are merged by log-sum-exp in order, all in float64.
  const int max_tile = args.tile > 0 && args.tile < HALO_ATTN_TILE ? args.tile : HALO_ATTN_TILE;
  std::vector<int>& first_task = tl_first_task;
  std::vector<int>& tiles = tl_tiles;
  first_task.assign(static_cast<size_t>(args.n) + 1, 0);
  tiles.assign(args.n, 0);
  for (int t = 0; t < args.n; t++) {
    const int length = args.last[t] + 1;
    tiles[t] = (length + max_tile - 1) / max_tile;
    first_task[t + 1] = first_task[t] + args.kv_heads * tiles[t];
  }
  const int total = first_task[args.n];
  const size_t stride = static_cast<size_t>(hd) + 2;
  std::vector<double>& partial = tl_partial;
  if (partial.size() < static_cast<size_t>(total) * group * stride) partial.resize(static_cast<size_t>(total) * group * stride);
  double* const partial_data = partial.data();
  const int* const first = first_task.data();
  const int* const tile_count = tiles.data();
  const size_t elem = args.kv == HALO_KV_F32 ? 4 : args.kv == HALO_KV_F16 ? 2 : 1;
  const bool i8 = args.kv == HALO_KV_I8;
  // Work units: (run, kv head, tile), a run being up to kRowBlock consecutive rows of one sequence (a prompt). The
  // rows of a run that see a whole tile share one kernel call, so the tile's keys and values are widened once for
  // all of them; the others (the causal diagonal) get one call each. Per query the arithmetic is the same either way.
  constexpr int kRowBlock = 16;
  thread_local std::vector<int> runs, unit_first, run_tiles;
  runs.clear();
  for (int t = 0; t < args.n;) {
    runs.push_back(t);
    int e = t + 1;
    while (e < args.n && e - t < kRowBlock && args.keys[e] == args.keys[t] && args.values[e] == args.values[t]) e++;
    t = e;
  }
  runs.push_back(args.n);
  const int n_runs = static_cast<int>(runs.size()) - 1;
  unit_first.assign(static_cast<size_t>(n_runs) + 1, 0);
  run_tiles.assign(n_runs, 0);
  for (int r = 0; r < n_runs; r++) {
    for (int t = runs[r]; t < runs[r + 1]; t++) run_tiles[r] = std::max(run_tiles[r], tile_count[t]);
    unit_first[r + 1] = unit_first[r] + args.kv_heads * run_tiles[r];
  }
  const int units = unit_first[n_runs];
  // The lambdas run on pool workers: they must see this thread's tables through plain pointers (naming a
  // thread_local inside them would name the worker's own, empty, instance).
  const int* const run_start = runs.data();
  const int* const run_unit_first = unit_first.data();
  const int* const run_tile_count = run_tiles.data();
  auto slot_of = [&](int t, int kvh, int tile_index) {
    return partial_data + static_cast<size_t>(first[t] + kvh * tile_count[t] + tile_index) * group * stride;
  };
  // One-tile rows are finished here: out = o / l.
  auto finish = [&](int t, int kvh, const double* part) {
    for (int g = 0; g < group; g++) {
      const double* pg = part + static_cast<size_t>(g) * stride;
      float* out = args.out + static_cast<size_t>(t) * args.heads * hd + static_cast<size_t>(kvh * group + g) * hd;
      for (int d = 0; d < hd; d++) out[d] = static_cast<float>(pg[2 + d] / pg[1]);
    }
  };
  auto run_unit = [&](int unit) {
    const int r = static_cast<int>(std::upper_bound(run_unit_first, run_unit_first + n_runs + 1, unit) - run_unit_first) - 1;
    const int local = unit - run_unit_first[r];
    const int kvh = local / run_tile_count[r];
    const int tile_index = local % run_tile_count[r];
    const int p0 = tile_index * max_tile;
    const size_t offset = (static_cast<size_t>(p0) * kv_width + static_cast<size_t>(kvh) * hd) * elem;
    const int t_begin = run_start[r], t_end = run_start[r + 1];
    const char* keys = static_cast<const char*>(args.keys[t_begin]) + offset;
    const char* values = static_cast<const char*>(args.values[t_begin]) + offset;
    // Int8 scales of this tile's first position and KV head; row i's at i·kv_heads.
    const size_t scale_offset = static_cast<size_t>(p0) * args.kv_heads + kvh;
    const float* key_scales = i8 ? args.key_scales[t_begin] + scale_offset : nullptr;
    const float* value_scales = i8 ? args.value_scales[t_begin] + scale_offset : nullptr;
    auto query = [&](int t) { return args.q + static_cast<size_t>(t) * args.q_stride + static_cast<size_t>(kvh) * group * hd; };
    thread_local std::vector<float> qblock;
    thread_local std::vector<double> oblock;
    thread_local std::vector<int> whole;
    whole.clear();
    for (int t = t_begin; t < t_end; t++) {
      const int length = args.last[t] + 1;
      if (p0 >= length) continue;  // this tile lies past the row's last position
      const int span = std::min(length, p0 + max_tile) - p0;
      if (span == max_tile && t_end - t_begin > 1) {
        whole.push_back(t);
        continue;
      }
      const size_t need = HALO_ATTN_SCRATCH(group, hd, span);
      if (tl_attn_scratch.size() < need) tl_attn_scratch.resize(need);
      double* part = slot_of(t, kvh, tile_index);
      k->attn_tile(query(t), group, hd, keys, values, args.kv, kv_width, span, key_scales, value_scales, args.kv_heads, scale, tl_attn_scratch.data(), part);
      if (tile_count[t] == 1) finish(t, kvh, part);
    }
    if (whole.empty()) return;
    const int rows = static_cast<int>(whole.size());
    const int heads = rows * group;
    qblock.resize(static_cast<size_t>(heads) * hd);
    oblock.resize(static_cast<size_t>(heads) * stride);
    for (int i = 0; i < rows; i++) std::memcpy(qblock.data() + static_cast<size_t>(i) * group * hd, query(whole[i]), sizeof(float) * group * hd);
    const size_t need = HALO_ATTN_SCRATCH(heads, hd, max_tile);
    if (tl_attn_scratch.size() < need) tl_attn_scratch.resize(need);
    k->attn_tile(qblock.data(), heads, hd, keys, values, args.kv, kv_width, max_tile, key_scales, value_scales, args.kv_heads, scale, tl_attn_scratch.data(),
                 oblock.data());
    for (int i = 0; i < rows; i++) {
      double* part = slot_of(whole[i], kvh, tile_index);
      std::memcpy(part, oblock.data() + static_cast<size_t>(i) * group * stride, sizeof(double) * group * stride);
      if (tile_count[whole[i]] == 1) finish(whole[i], kvh, part);
    }
  };
  // Rows split into tiles: merge them in order (log-sum-exp).
  auto merge_row = [&](int t, std::vector<double>& acc) {
    if (tile_count[t] == 1) return;
    acc.resize(hd);
    for (int kvh = 0; kvh < args.kv_heads; kvh++) {
      for (int g = 0; g < group; g++) {
        float* out = args.out + static_cast<size_t>(t) * args.heads * hd + static_cast<size_t>(kvh * group + g) * hd;
        const double* head = slot_of(t, kvh, 0) + static_cast<size_t>(g) * stride;
        double m = head[0], l = head[1];
        std::copy(head + 2, head + 2 + hd, acc.begin());
        for (int j = 1; j < tile_count[t]; j++) {
          const double* part = slot_of(t, kvh, j) + static_cast<size_t>(g) * stride;
          const double merged = std::max(m, part[0]);
          const double alpha = std::exp(m - merged), beta = std::exp(part[0] - merged);
          l = l * alpha + part[1] * beta;
          for (int d = 0; d < hd; d++) acc[d] = acc[d] * alpha + part[2 + d] * beta;
          m = merged;
        }
        for (int d = 0; d < hd; d++) out[d] = static_cast<float>(acc[d] / l);
      }
    }
  };
  // Merges on this thread: one worker, or too few rows to be worth another pool job.
  auto merge_here = [&] {
    thread_local std::vector<double> acc;
    for (int t = 0; t < args.n; t++) merge_row(t, acc);
  };
  if (units == 1 || pool->size() == 1) {
    for (int unit = 0; unit < units; unit++) run_unit(unit);
    merge_here();
    return;
  }
  std::atomic<int> cursor{0};
  pool->run(
      [&](int) {
        for (int unit = cursor.fetch_add(1, std::memory_order_relaxed); unit < units; unit = cursor.fetch_add(1, std::memory_order_relaxed)) run_unit(unit);
      },
      args.n < 8 ? args.prefetch : nullptr, args.n < 8 ? args.prefetch_bytes : 0);
  if (args.n < 8) {
    merge_here();
    return;
  }
  std::atomic<int> row_cursor{0};
  pool->run(
      [&](int) {
        thread_local std::vector<double> acc;
        for (int t = row_cursor.fetch_add(1, std::memory_order_relaxed); t < args.n; t = row_cursor.fetch_add(1, std::memory_order_relaxed)) merge_row(t, acc);
      },
      args.prefetch, args.prefetch_bytes);
}

// ---------------------------------------------------------------- model

halo_status Model::alloc_matrix(Matrix& m, int rows, int cols, int scale_block, const float* scales) {
  if (rows <= 0 || cols <= 0 || scale_block <= 0 || cols % scale_block != 0) return HALO_BAD_ARGUMENT;
  m.rows = rows;
  m.cols = cols;
  m.nb = (cols + 255) / 256;
  const size_t bytes = static_cast<size_t>(rows) * m.nb * sizeof(halo_block_i2);
  if (arena.data == nullptr || arena_used + bytes > arena.bytes) return HALO_OUT_OF_MEMORY;
  m.codes = reinterpret_cast<halo_block_i2*>(static_cast<char*>(arena.data) + arena_used);
  m.arena_codes = m.codes;
  m.mapped = false;
  arena_used += bytes;
  m.scale_block = scale_block;
  m.scales.assign(scales, scales + static_cast<size_t>(rows) * (cols / scale_block));
  return HALO_OK;
}

namespace {

template <typename T>
void grow(std::vector<T>& v, size_t size) {
  if (v.size() < size) v.resize(size);
}

}  // namespace

namespace {

// HALO_CPU_PROFILE=1 prints per-phase milliseconds of every step to stderr (kernel lab use only).
struct PhaseClock {
  bool on = std::getenv("HALO_CPU_PROFILE") != nullptr;
  double ms[8] = {0};
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  void lap(int phase) {
    if (!on) return;
    const auto now = std::chrono::steady_clock::now();
    ms[phase] += std::chrono::duration<double, std::milli>(now - last).count();
    last = now;
  }
  ~PhaseClock() {
    if (on)
      std::fprintf(stderr, "halo-cpu step ms: norm+quant %.2f  qkv %.2f  rope+kv %.2f  attention %.2f  o %.2f  gate|up %.2f  act+down %.2f  head %.2f\n", ms[0],
                   ms[1], ms[2], ms[3], ms[4], ms[5], ms[6], ms[7]);
  }
};

}  // namespace

namespace {

// Runs fn(i0, i1) over [0, total) split into one range per worker (in multiples of `align`), or on the calling thread
// alone when total < `enough` (too little work to pay for a fork/join).
template <typename Fn>
void over_range(ThreadPool* pool, int total, int enough, int align, Fn fn) {
  if (total < enough || pool->size() == 1) {
    fn(0, total);
    return;
  }
  const int workers = pool->size();
  pool->run([&](int i) {
    int i0, i1;
    split_range(total, workers, i, align, &i0, &i1);
    if (i0 < i1) fn(i0, i1);
  });
}

// Rows of a step: worth splitting from 4 rows on.
template <typename Fn>
void over_rows(ThreadPool* pool, int n, Fn fn) {
  over_range(pool, n, 4, 1, fn);
}

}  // namespace

void Model::norm_quantize(const float* in, const float* weight, int d, int n) {
  act.prepare(n, d, c.per_token);
  over_rows(pool, n, [&](int t0, int t1) {
    rms_norm_rows(in + static_cast<size_t>(t0) * d, weight, d, t1 - t0, c.eps, normed.data() + static_cast<size_t>(t0) * d);
    act.quantize_rows(k, normed.data(), t0, t1);
  });
}

bool Model::ready() const {
  const size_t q_dim = static_cast<size_t>(c.heads) * c.head_dim;
  if (embedding_data == nullptr || head_data == nullptr || output_norm.size() != static_cast<size_t>(c.hidden)) return false;
  if ((head_type == HeadType::I8 || head_type == HeadType::I4) && quantised_head.scales.size() != static_cast<size_t>(c.vocab)) return false;
  if (head_type == HeadType::I4 && (quantised_head.sums.size() != static_cast<size_t>(c.vocab) ||
                                    quantised_head.sub.size() != static_cast<size_t>(c.vocab) * (HALO_HEAD_I8_STRIDE(c.hidden) / HALO_HEAD_I4_GROUP)))
    return false;
  for (const Layer& L : layers) {
    if (L.attn_norm.size() != static_cast<size_t>(c.hidden) || L.attn_sub_norm.size() != q_dim || L.ffn_norm.size() != static_cast<size_t>(c.hidden) ||
        L.ffn_sub_norm.size() != static_cast<size_t>(c.intermediate))
      return false;
    const int q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
    const Matrix* mats[4] = {&L.qkv, &L.o, &L.gate_up, &L.down};
    const int shape[4][2] = {{q + 2 * kv, c.hidden}, {c.hidden, q}, {2 * c.intermediate, c.hidden}, {c.hidden, c.intermediate}};
    for (int i = 0; i < 4; i++)
      if (mats[i]->codes == nullptr || mats[i]->rows != shape[i][0] || mats[i]->cols != shape[i][1]) return false;
  }
  return true;
}

namespace {

// Tiles of HALO_ATTN_TILE positions when (row, KV head) pairs give each worker ≥ 4 tasks; otherwise smaller tiles
// (multiples of 16 positions) sized so that they do.
int attention_tile(int n, int kv_heads, int workers, const int32_t* positions) {
  const int pairs = n * kv_heads;
  if (workers == 1 || pairs >= 4 * workers) return 0;
  int longest = 0;
  for (int t = 0; t < n; t++) longest = std::max(longest, positions[t] + 1);
  const int split = (4 * workers + pairs - 1) / pairs;
  const int tile = (longest + split - 1) / split;
  return std::max(16, (tile + 15) / 16 * 16);
}

}  // namespace

halo_status Model::step(const int32_t* tokens, const int32_t* positions, const int32_t* slot_ids, int n, const int32_t* logit_rows, int n_logits, float* logits,
                        const int32_t* hidden_rows, int n_hidden, float* hidden_out) {
  std::lock_guard<std::mutex> lock(step_mutex);
  PhaseClock clock;
  const int hidden = c.hidden, hd = c.head_dim;
  const int q_dim = c.heads * hd, kv_dim = c.kv_heads * hd;
  const int qkv_rows = q_dim + 2 * kv_dim;
  const int inter = c.intermediate;
  // Weights borrowed from a file that changed since it was mapped can no longer be trusted: refused before the step
  // reads them, and checked again after it (a change or a zero-filled fault during the step discards its logits).
  if (check_files() != HALO_OK) return HALO_FILE_CHANGED;
  // Everything is checked before any KV row is written: a refused step leaves the caches as they were.
  if (n <= 0 || n_logits < 0 || !ready()) return HALO_BAD_ARGUMENT;
  for (int t = 0; t < n; t++) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab || positions[t] < 0 || positions[t] >= c.context || slot_ids[t] < 0 ||
        slot_ids[t] >= static_cast<int>(slots.size()) || !slots[slot_ids[t]])
      return HALO_BAD_ARGUMENT;
  }
  for (int i = 0; i < n_logits; i++)
    if (logit_rows[i] < 0 || logit_rows[i] >= n) return HALO_BAD_ARGUMENT;
  if (n_hidden < 0 || (n_hidden > 0 && (hidden_rows == nullptr || hidden_out == nullptr))) return HALO_BAD_ARGUMENT;
  for (int i = 0; i < n_hidden; i++)
    if (hidden_rows[i] < 0 || hidden_rows[i] >= n) return HALO_BAD_ARGUMENT;
  // The head's copy into huge pages: until it is done, the step reads the mapped bytes it copies from; the first step
  // after it finishes joins it and releases the mapped pages.
  const void* embedding_read = embedding_data;
  const void* head_read = head_data;
  if (head_copy) {
    if (head_copy->done.load(std::memory_order_acquire)) {
      head_copy->thread.join();
      drop_pages(head_copy->src, head_copy->bytes);
      head_copy.reset();
      head_copy_pending.store(false, std::memory_order_release);
    } else {
      head_read = head_copy->src;
      if (head_copy->tied) embedding_read = head_copy->src;
    }
  }
  grow(x, static_cast<size_t>(n) * hidden);
  grow(normed, static_cast<size_t>(n) * std::max({hidden, q_dim, inter}));
  grow(qkv_out, static_cast<size_t>(n) * qkv_rows);
  grow(attn_out, static_cast<size_t>(n) * q_dim);
  grow(gate_up_out, static_cast<size_t>(n) * 2 * inter);
  grow(delta, static_cast<size_t>(n) * std::max(hidden, inter));
  for (int t = 0; t < n; t++) {
    float* xr = x.data() + static_cast<size_t>(t) * hidden;
    float_row(k, embedding_type, embedding_read, static_cast<size_t>(tokens[t]), hidden, xr);
  }
  rope_table(positions, n, hd, c.rope_theta, rope_table_);
  const size_t elem = c.kv_elem();
  const size_t layer_stride = kv_layer_stride();  // elements per layer per slot
  const size_t values_offset = kv_values_offset();
  // Int8 slots: scales [2][layers][context][kv_heads] f32 after the codes (Config::kv_slot_bytes).
  const size_t scales_at = kv_scales_at();
  const size_t scale_layer_stride = kv_scale_layer_stride();
  const size_t value_scales_offset = static_cast<size_t>(c.layers) * scale_layer_stride;
  auto slot_scales = [&](int slot) { return reinterpret_cast<float*>(static_cast<char*>(slots[slot]->data) + scales_at); };
  grow(key_ptrs, n);
  grow(value_ptrs, n);
  grow(key_scale_ptrs, n);
  grow(value_scale_ptrs, n);
  for (int l = 0; l < c.layers; l++) {
    Layer& L = layers[l];
    const Matrix* after_down = l + 1 < c.layers ? &layers[l + 1].qkv : nullptr;
    clock.lap(6);
    norm_quantize(x.data(), L.attn_norm.data(), hidden, n);
    clock.lap(0);
    matmul(pool, k, L.qkv, act, qkv_out.data(), qkv_rows, &L.o);
    clock.lap(1);
    // RoPE of q and k, then k and v into each row's KV slot: rows split over the pool.
    over_rows(pool, n, [&](int t0, int t1) {
      rope_apply(qkv_out.data() + static_cast<size_t>(t0) * qkv_rows, qkv_rows, rope_table_.data() + static_cast<size_t>(t0) * hd, t1 - t0, c.heads, hd);
      rope_apply(qkv_out.data() + static_cast<size_t>(t0) * qkv_rows + q_dim, qkv_rows, rope_table_.data() + static_cast<size_t>(t0) * hd, t1 - t0, c.kv_heads,
                 hd);
      for (int t = t0; t < t1; t++) {
        const float* kr = qkv_out.data() + static_cast<size_t>(t) * qkv_rows + q_dim;
        write_kv(slot_ids[t], l, positions[t], kr, kr + kv_dim);
      }
    });
    for (int t = 0; t < n; t++) {
      char* base = static_cast<char*>(slots[slot_ids[t]]->data);
      key_ptrs[t] = base + static_cast<size_t>(l) * layer_stride * elem;
      value_ptrs[t] = base + (values_offset + static_cast<size_t>(l) * layer_stride) * elem;
      if (c.kv_dtype == HALO_KV_I8) {
        key_scale_ptrs[t] = slot_scales(slot_ids[t]) + static_cast<size_t>(l) * scale_layer_stride;
        value_scale_ptrs[t] = key_scale_ptrs[t] + value_scales_offset;
      }
    }
    clock.lap(2);
    AttentionArgs args{};
    args.q = qkv_out.data();
    args.q_stride = qkv_rows;
    args.keys = key_ptrs.data();
    args.values = value_ptrs.data();
    args.kv = c.kv_dtype;
    args.key_scales = key_scale_ptrs.data();
    args.value_scales = value_scale_ptrs.data();
    args.n = n;
    args.heads = c.heads;
    args.kv_heads = c.kv_heads;
    args.head_dim = hd;
    args.last = positions;
    // Split KV into tiles when there are too few (row, KV head) pairs to give every worker several tasks.
    args.tile = attention_tile(n, c.kv_heads, pool->size(), positions);
    args.out = attn_out.data();
    args.prefetch = L.o.codes;
    args.prefetch_bytes = std::min(static_cast<size_t>(L.o.rows) * L.o.nb * sizeof(halo_block_i2), static_cast<size_t>(512u << 10));
    attention(pool, k, args);
    clock.lap(3);
    norm_quantize(attn_out.data(), L.attn_sub_norm.data(), q_dim, n);
    clock.lap(0);
    matmul(pool, k, L.o, act, delta.data(), hidden, &L.gate_up);
    clock.lap(4);
    for (size_t i = 0; i < static_cast<size_t>(n) * hidden; i++) x[i] += delta[i];

    norm_quantize(x.data(), L.ffn_norm.data(), hidden, n);
    clock.lap(0);
    matmul(pool, k, L.gate_up, act, gate_up_out.data(), 2 * inter, &L.down);
    clock.lap(5);
    // ReLU²(gate)·up or SiLU(gate)·up, element ranges split over the pool (one row is 6912 elements at 2B). SiLU runs
    // the kernel's float64 silu_mul (a vector exp; scalar std::exp cost ~3 ms per 2B token) on each row's part.
    over_range(pool, n * inter, 4096, 64, [&](int i0, int i1) {
      for (int i = i0; i < i1;) {
        const int t = i / inter, j = i - t * inter;
        const int end = std::min(i1, (t + 1) * inter);  // this row's part of the range
        const float* g = gate_up_out.data() + static_cast<size_t>(t) * 2 * inter;
        if (c.relu2) {
          for (int e = j; e < j + (end - i); e++) {
            const double r = g[e] > 0 ? g[e] : 0.0;
            delta[static_cast<size_t>(t) * inter + e] = static_cast<float>(r * r * g[inter + e]);
          }
        } else {
          k->silu_mul(g + j, g + inter + j, end - i, delta.data() + i);
        }
        i = end;
      }
    });
    norm_quantize(delta.data(), L.ffn_sub_norm.data(), inter, n);
    // The sparse down lane: one row whose input is sparse enough reads only the weight columns of its nonzero inputs.
    bool sparse_done = false;
    if (L.down.sparse && n == 1 && act.per_token && L.down.scale_block == L.down.cols) {
      // Counted first (a vectorised pass), listed only when the sparse kernel will run.
      const int8_t* v = act.values.data();
      int count = 0;
      for (int j = 0; j < inter; j++) count += v[j] != 0;
      sparse_columns.fetch_add(static_cast<uint64_t>(inter), std::memory_order_relaxed);
      sparse_nonzero.fetch_add(static_cast<uint64_t>(count), std::memory_order_relaxed);
      if (count <= sparse_max_density * inter) {
        grow(sparse_nz, static_cast<size_t>(inter));
        const int n_nz = nonzero_columns(act, 0, sparse_nz.data());
        sparse_matmul(pool, k, L.down, act, 0, sparse_nz.data(), n_nz, delta.data());
        sparse_calls.fetch_add(1, std::memory_order_relaxed);
        sparse_done = true;
      } else {
        sparse_dense_calls.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!sparse_done) matmul(pool, k, L.down, act, delta.data(), hidden, after_down);
    for (size_t i = 0; i < static_cast<size_t>(n) * hidden; i++) x[i] += delta[i];
  }
  clock.lap(6);
  // Hidden states for Medusa-style heads: the residual stream after the last layer, before the output norm.
  for (int i = 0; i < n_hidden; i++)
    std::memcpy(hidden_out + static_cast<size_t>(i) * hidden, x.data() + static_cast<size_t>(hidden_rows[i]) * hidden, sizeof(float) * hidden);
  // Final norm of the wanted rows (quantised once here for an int8 or int4 head), then the LM head split by vocabulary rows.
  grow(head_in, static_cast<size_t>(n_logits) * hidden);
  float* const wanted = head_in.data();
  for (int i = 0; i < n_logits; i++)
    rms_norm_rows(x.data() + static_cast<size_t>(logit_rows[i]) * hidden, output_norm.data(), hidden, 1, c.eps, wanted + static_cast<size_t>(i) * hidden);
  const int q_stride = HALO_HEAD_I8_STRIDE(hidden);
  if (head_type == HeadType::I8 || head_type == HeadType::I4) {
    grow(head_q, static_cast<size_t>(n_logits) * q_stride);
    grow(head_qs, static_cast<size_t>(n_logits));
    halo_head_i8_activations(wanted, n_logits, hidden, q_stride, head_q.data(), head_qs.data());
  }
  const int head_chunk = std::max(16, (c.vocab / (pool->size() * 16) + 15) / 16 * 16);
  std::atomic<int> head_cursor{0};
  pool->run([&](int) {
    for (int r0 = head_cursor.fetch_add(head_chunk); r0 < c.vocab; r0 = head_cursor.fetch_add(head_chunk)) {
      const int r1 = std::min(c.vocab, r0 + head_chunk);
      float* y = logits + r0;
      switch (head_type) {
        case HeadType::F16: k->head_f16(static_cast<const uint16_t*>(head_read), hidden, r0, r1, wanted, n_logits, y, c.vocab); break;
        case HeadType::F32: k->head_f32(static_cast<const float*>(head_read), hidden, r0, r1, wanted, n_logits, y, c.vocab); break;
        case HeadType::BF16: k->head_bf16(static_cast<const uint16_t*>(head_read), hidden, r0, r1, wanted, n_logits, y, c.vocab); break;
        case HeadType::I8:
          k->head_i8(static_cast<const int8_t*>(head_data), quantised_head.scales.data(), hidden, r0, r1, head_q.data(), head_qs.data(), q_stride, n_logits, y,
                     c.vocab);
          break;
        case HeadType::I4:
          k->head_i4(static_cast<const uint8_t*>(head_data), quantised_head.sub.data(), quantised_head.scales.data(), quantised_head.sums.data(), hidden, r0,
                     r1, head_q.data(), head_qs.data(), q_stride, n_logits, y, c.vocab);
          break;
      }
    }
  });
  clock.lap(7);
  return check_files();
}

// ---------------------------------------------------------------- KV slots: one write path, copy, export, import

void Model::write_kv(int slot, int layer, int position, const float* key, const float* value) {
  const int hd = c.head_dim, kv_dim = c.kv_heads * hd;
  char* base = static_cast<char*>(slots[slot]->data);
  const size_t at = static_cast<size_t>(layer) * kv_layer_stride() + static_cast<size_t>(position) * kv_dim;
  const size_t values_offset = kv_values_offset();
  if (c.kv_dtype == HALO_KV_F16) {
    k->f32_to_f16(reinterpret_cast<uint16_t*>(base) + at, key, kv_dim);
    k->f32_to_f16(reinterpret_cast<uint16_t*>(base) + values_offset + at, value, kv_dim);
  } else if (c.kv_dtype == HALO_KV_I8) {
    float* scales =
        reinterpret_cast<float*>(base + kv_scales_at()) + static_cast<size_t>(layer) * kv_scale_layer_stride() + static_cast<size_t>(position) * c.kv_heads;
    const size_t value_scales_offset = static_cast<size_t>(c.layers) * kv_scale_layer_stride();
    for (int h = 0; h < c.kv_heads; h++) {
      halo_kv_i8_row(key + h * hd, hd, reinterpret_cast<int8_t*>(base) + at + h * hd, scales + h);
      halo_kv_i8_row(value + h * hd, hd, reinterpret_cast<int8_t*>(base) + values_offset + at + h * hd, scales + value_scales_offset + h);
    }
  } else {
    std::memcpy(reinterpret_cast<float*>(base) + at, key, sizeof(float) * kv_dim);
    std::memcpy(reinterpret_cast<float*>(base) + values_offset + at, value, sizeof(float) * kv_dim);
  }
}

void Model::read_kv(int slot, int layer, int position, float* key, float* value) const {
  const int hd = c.head_dim, kv_dim = c.kv_heads * hd;
  const char* base = static_cast<const char*>(slots[slot]->data);
  const size_t at = static_cast<size_t>(layer) * kv_layer_stride() + static_cast<size_t>(position) * kv_dim;
  const size_t values_offset = kv_values_offset();
  if (c.kv_dtype == HALO_KV_F16) {
    k->f16_to_f32(key, reinterpret_cast<const uint16_t*>(base) + at, kv_dim);
    k->f16_to_f32(value, reinterpret_cast<const uint16_t*>(base) + values_offset + at, kv_dim);
  } else if (c.kv_dtype == HALO_KV_I8) {
    const float* scales = reinterpret_cast<const float*>(base + kv_scales_at()) + static_cast<size_t>(layer) * kv_scale_layer_stride() +
                          static_cast<size_t>(position) * c.kv_heads;
    const float* value_scales = scales + static_cast<size_t>(c.layers) * kv_scale_layer_stride();
    const int8_t* key_codes = reinterpret_cast<const int8_t*>(base) + at;
    const int8_t* value_codes = key_codes + values_offset;
    // As attn_tile reads a cached row: the f32 product of the code and its row's scale.
    for (int h = 0; h < c.kv_heads; h++) {
      for (int d = 0; d < hd; d++) {
        key[h * hd + d] = static_cast<float>(key_codes[h * hd + d]) * scales[h];
        value[h * hd + d] = static_cast<float>(value_codes[h * hd + d]) * value_scales[h];
      }
    }
  } else {
    std::memcpy(key, reinterpret_cast<const float*>(base) + at, sizeof(float) * kv_dim);
    std::memcpy(value, reinterpret_cast<const float*>(base) + values_offset + at, sizeof(float) * kv_dim);
  }
}

namespace {

bool slot_live(const Model& m, int slot) { return slot >= 0 && slot < static_cast<int>(m.slots.size()) && m.slots[slot] != nullptr; }

}  // namespace

halo_status Model::copy_slot(int from, int to, int length) {
  std::lock_guard<std::mutex> lock(step_mutex);
  if (!slot_live(*this, from) || !slot_live(*this, to) || length < 0 || length > c.context) return HALO_BAD_ARGUMENT;
  if (from == to || length == 0) return HALO_OK;
  const char* src = static_cast<const char*>(slots[from]->data);
  char* dst = static_cast<char*>(slots[to]->data);
  const size_t elem = c.kv_elem();
  const size_t row_bytes = static_cast<size_t>(c.kv_heads) * c.head_dim * elem;
  for (int l = 0; l < c.layers; l++) {
    for (const size_t part : {size_t{0}, kv_values_offset()}) {
      const size_t at = (part + static_cast<size_t>(l) * kv_layer_stride()) * elem;
      std::memcpy(dst + at, src + at, row_bytes * static_cast<size_t>(length));
    }
  }
  if (c.kv_dtype == HALO_KV_I8) {
    const size_t scale_bytes = static_cast<size_t>(length) * c.kv_heads * sizeof(float);
    for (int which = 0; which < 2; which++) {
      for (int l = 0; l < c.layers; l++) {
        const size_t at = kv_scales_at() + (static_cast<size_t>(which * c.layers + l) * kv_scale_layer_stride()) * sizeof(float);
        std::memcpy(dst + at, src + at, scale_bytes);
      }
    }
  }
  return HALO_OK;
}

halo_status Model::export_slot(int slot, int length, float* keys, float* values) {
  std::lock_guard<std::mutex> lock(step_mutex);
  if (!slot_live(*this, slot) || length < 0 || length > c.context) return HALO_BAD_ARGUMENT;
  const size_t kv_dim = static_cast<size_t>(c.kv_heads) * c.head_dim;
  for (int l = 0; l < c.layers; l++)
    for (int p = 0; p < length; p++) {
      const size_t at = (static_cast<size_t>(l) * length + p) * kv_dim;
      read_kv(slot, l, p, keys + at, values + at);
    }
  return HALO_OK;
}

halo_status Model::import_slot(int slot, int length, const float* keys, const float* values) {
  std::lock_guard<std::mutex> lock(step_mutex);
  if (!slot_live(*this, slot) || length < 0 || length > c.context) return HALO_BAD_ARGUMENT;
  const size_t kv_dim = static_cast<size_t>(c.kv_heads) * c.head_dim;
  // Layers split over the pool (an int8 import rounds every value; a long context is millions of them).
  const int workers = pool->size();
  pool->run([&](int i) {
    int l0, l1;
    split_range(c.layers, workers, i, 1, &l0, &l1);
    for (int l = l0; l < l1; l++)
      for (int p = 0; p < length; p++) {
        const size_t at = (static_cast<size_t>(l) * length + p) * kv_dim;
        write_kv(slot, l, p, keys + at, values + at);
      }
  });
  return HALO_OK;
}

// ---------------------------------------------------------------- argmax and top-k of logit rows

void argmax_rows(const float* logits, int rows, int vocab, int32_t* out) {
  for (int r = 0; r < rows; r++) {
    const float* row = logits + static_cast<size_t>(r) * vocab;
    int best = -1;  // stays -1 for a row with nothing above -inf (all NaN or -inf): nothing to sample
    float best_value = -INFINITY;
    for (int i = 0; i < vocab; i++) {
      // +inf ranks as FLT_MAX (the sampler's greedy sanitises +inf to FLOAT32_MAX first), so a lower id holding FLT_MAX
      // ties with a higher id holding +inf and wins.
      const float v = row[i] > FLT_MAX ? FLT_MAX : row[i];
      if (v > best_value) {  // strictly greater: the lowest id wins ties; NaN never compares greater
        best_value = v;
        best = i;
      }
    }
    out[r] = best;
  }
}

void top_k_rows(const float* logits, int rows, int vocab, int k, int32_t* ids, float* values) {
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (int r = 0; r < rows; r++) {
    const float* row = logits + static_cast<size_t>(r) * vocab;
    // Higher logit first (NaN ranked as −∞, +∞ as FLT_MAX like argmax_rows), then a number before NaN, then the lower
    // id: a strict weak order.
    auto better = [row](int32_t a, int32_t b) {
      const float va = row[a], vb = row[b];
      const bool na = std::isnan(va), nb = std::isnan(vb);
      const float ka = na ? -INFINITY : std::min(va, FLT_MAX), kb = nb ? -INFINITY : std::min(vb, FLT_MAX);
      if (ka != kb) return ka > kb;
      if (na != nb) return nb;
      return a < b;
    };
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
    for (int j = 0; j < k; j++) {
      ids[static_cast<size_t>(r) * k + j] = order[j];
      values[static_cast<size_t>(r) * k + j] = row[order[j]];
    }
  }
}

}  // namespace halo
