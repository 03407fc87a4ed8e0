// kernels_amx.cpp: the AMX-INT8 ternary GEMM (TDPBUSD: u8 weight codes × s8 activations → s32) for prompts and batches,
// and the "amx" kernel table (the AVX-512 VNNI table with this gemm_i2). x86-64 only; compiled alone with the AMX flags,
// called only when model.cpp found AMX-TILE, AMX-INT8, the OS tile state and the Linux permission.
//
// Verified on AMX hardware (a 2-vCPU Sapphire-Rapids-class Xeon under KVM, session 5): kernels-amx.test.ts compares
// it with the scalar twin bit for bit there. Built with -DHALO_AMX_EMULATE the same source runs its tile steps on an
// exact software model (amx_emulate.h), which test/native/amx-check.cpp compares with gemm_i2_ref under ASan/UBSan on
// any x86-64 CPU.
//
// Mapping (per 64-wide K chunk):
//   A tile = 16 weight rows × 64 codes (u8, one shift+mask of a halo_block_i2 line), loaded with stride 64;
//   B tile = activations in the VNNI layout, 16 k-quads × 16 tokens × 4 bytes: B[q][4t+i] = x[t][64c + 4q + i];
//   C tile = 16 rows × 16 tokens int32, C[m][t] = Σ_k code[m][k]·x[t][k], stored and transposed into y[token][row].
// Tiles: C 0..3 (row tile i, token tile j → 2i + j), A 4 and 5, B 6 and 7: a 2 × 2 block reuses each A and B load
// twice. Row tails are zero codes in A and token tails zero activations in B (both add 0); only real rows and tokens
// are written. Fewer than kMinTokens tokens go to the AVX-512 VNNI kernel (there the tiles' padding costs more than it saves).
//
// Tile configuration: every call configures the tiles itself (LDTILECFG is per thread, and a pool worker may run
// other code between calls) and ends with TILERELEASE, so tile state is back in its init state whenever the kernel is
// not running: no thread_local "configured" flag to go stale, and a thread outside the kernel carries no 8 KB of
// TILEDATA through context switches. The cost is one LDTILECFG + TILERELEASE per call, small beside the call's work
// (≥ 4 tokens over ≥ 16 rows).
//
// Performance (measured on that Xeon, 2 threads over the 2B shape's 521 MB of codes, dev/gemv_lab.cpp): TDPBUSD runs
// at ~4.6 ns, so a pass is bound by streaming and unpacking codes, not by tile arithmetic. Up to kStreamTokens tokens
// (stream_block) a pass takes 29 ms at 1-4 tokens, 31 ms at 8, 37 ms at 16 and 52 ms at 32, where the AVX-512 VNNI
// kernel takes 20, 30, 48, 79 and 154 ms: equal at 4 tokens (kMinTokens), 1.5× at 8, 3× at 32. Two things made
// stream_block fast: unpacking a block at a time into L1 (rather than whole rows through L2) and a software prefetch of
// the row tiles after next into L2, spread over the unpack loop (tile loads hold back the core's own memory
// parallelism: without it a pass took 54 ms at any token count). Prompts (more than kStreamTokens) unpack kRowBlock rows
// once per kTokenBlock tokens and run 2 × 2 tile blocks out of L2.
#if defined(__x86_64__)

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "halo_cpu.h"

#if defined(HALO_AMX_EMULATE)
#include "amx_emulate.h"
#define HALO_TILE_LOADCONFIG(config) halo_amx_emu::loadconfig(config)
#define HALO_TILE_ZERO(t) halo_amx_emu::zero(t)
#define HALO_TILE_LOADD(t, base, stride) halo_amx_emu::loadd(t, base, stride)
#define HALO_TILE_DPBUSD(c, a, b) halo_amx_emu::dpbusd(c, a, b)
#define HALO_TILE_STORED(t, base, stride) halo_amx_emu::stored(t, base, stride)
#define HALO_TILE_RELEASE() halo_amx_emu::release()
#else
#if !defined(__AMX_TILE__) || !defined(__AMX_INT8__)
#error "kernels_amx.cpp needs -mamx-tile -mamx-int8 (or -DHALO_AMX_EMULATE for the software model)"
#endif
// gcc's tile intrinsics are asm statements that take the pointer, not the memory behind it (LDTILECFG names only 8 of
// its 64 bytes, TILELOADD none): the barrier keeps the stores that filled a buffer ahead of the instruction reading it.
#define HALO_MEMORY_BARRIER() __asm__ __volatile__("" ::: "memory")
#define HALO_TILE_LOADCONFIG(config) \
  do {                               \
    HALO_MEMORY_BARRIER();           \
    _tile_loadconfig(config);        \
  } while (0)
#define HALO_TILE_ZERO(t) _tile_zero(t)
#define HALO_TILE_LOADD(t, base, stride) \
  do {                                   \
    HALO_MEMORY_BARRIER();               \
    _tile_loadd(t, base, stride);        \
  } while (0)
#define HALO_TILE_DPBUSD(c, a, b) _tile_dpbusd(c, a, b)
#define HALO_TILE_STORED(t, base, stride) _tile_stored(t, base, stride) /* has a "memory" clobber */
#define HALO_TILE_RELEASE() _tile_release()
#endif

namespace {

constexpr int kTile = 16;          // rows of an A/C tile, tokens of a B/C tile, k-quads of a B tile
constexpr int kChunk = 64;         // K per tile step: A colsb, 4 × B rows
constexpr int kTileBytes = 1024;   // 16 × 64
constexpr int kRowBlock = 64;      // rows whose codes are unpacked at once (A scratch: kRowBlock × K bytes)
constexpr int kTokenBlock = 256;   // tokens laid out at once (B scratch: kTokenBlock × K bytes)
constexpr int kStreamTokens = 32;  // up to this many tokens, stream_block (codes unpacked per block into L1)
constexpr int kMinTokens = 4;      // below this the AVX-512 VNNI kernel (equal at 4 tokens, ahead from 5: README)

// The 64-byte LDTILECFG operand, palette 1.
struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// Scratch grown on demand and kept per thread; an allocation failure sends the call to the VNNI kernel.
struct Scratch {
  uint8_t* a = nullptr;  // [kRowBlock / 16][nb·4 chunks][16 rows][64] codes
  int8_t* b = nullptr;   // [kTokenBlock / 16][nb·4 chunks][16 k-quads][16 tokens][4] activations
  size_t a_bytes = 0, b_bytes = 0;
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::free(a);
    std::free(b);
  }
  static bool grow(void** p, size_t* have, size_t want) {
    if (*have >= want) return true;
    void* fresh = std::aligned_alloc(64, (want + 63) / 64 * 64);
    if (fresh == nullptr) return false;
    std::free(*p);
    *p = fresh;
    *have = want;
    return true;
  }
  bool reserve(size_t a_want, size_t b_want) {
    return grow(reinterpret_cast<void**>(&a), &a_bytes, a_want) && grow(reinterpret_cast<void**>(&b), &b_bytes, b_want);
  }
};

thread_local Scratch tl_scratch;

// 16 × 16 dword transpose in registers: out[c].dword[r] = in[r].dword[c].
inline void transpose16_epi32(const __m512i in[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  // Per 128-bit lane L, u[4g + q] now holds column 4L + q of rows 4g..4g+3.
  for (int g = 0; g < 4; g++) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  // out[4L + q] lane g = u[4g + q] lane L: a 4 × 4 transpose of 128-bit lanes for each q.
  for (int q = 0; q < 4; q++) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44);        // u0.L0 u0.L1 u1.L0 u1.L1
    const __m512i v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xEE);        // u0.L2 u0.L3 u1.L2 u1.L3
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44);   // u2.L0 u2.L1 u3.L0 u3.L1
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xEE);   // u2.L2 u2.L3 u3.L2 u3.L3
    out[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[4 + q] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    out[8 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// Tokens [t0, t0 + count) into the B layout, count ≤ kTokenBlock; missing tokens of the last tile are zeros.
void layout_activations(const int8_t* x, int x_stride, int t0, int count, int chunks, int8_t* b) {
  const int tiles = (count + kTile - 1) / kTile;
  for (int j = 0; j < tiles; j++) {
    const int valid = count - j * kTile < kTile ? count - j * kTile : kTile;
    const int8_t* xt = x + static_cast<size_t>(t0 + j * kTile) * x_stride;
    for (int c = 0; c < chunks; c++) {
      __m512i in[16], out[16];
      for (int t = 0; t < kTile; t++) in[t] = t < valid ? _mm512_loadu_si512(xt + static_cast<size_t>(t) * x_stride + c * kChunk) : _mm512_setzero_si512();
      transpose16_epi32(in, out);
      int8_t* tile = b + (static_cast<size_t>(j) * chunks + c) * kTileBytes;
      for (int q = 0; q < kTile; q++) _mm512_store_si512(tile + q * 64, out[q]);
    }
  }
}

// One row's 256 codes of block `codes` as 4 A-tile rows of 64 u8 codes: quarter j at at + j·quarter_stride.
inline void unpack_block_row(const halo_block_i2& codes, uint8_t* at, size_t quarter_stride) {
  const __m512i mask = _mm512_set1_epi8(3);
  const __m512i v = _mm512_loadu_si512(codes.qs);
  _mm512_store_si512(at, _mm512_and_si512(v, mask));
  _mm512_store_si512(at + quarter_stride, _mm512_and_si512(_mm512_srli_epi16(v, 2), mask));
  _mm512_store_si512(at + 2 * quarter_stride, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask));
  _mm512_store_si512(at + 3 * quarter_stride, _mm512_and_si512(_mm512_srli_epi16(v, 6), mask));
}

// Codes of rows [r, r + count) (count ≤ kRowBlock) into A tiles; rows of the last tile past count are zeros.
void unpack_codes(const halo_block_i2* w, int nb, int r, int count, uint8_t* a) {
  const int chunks = nb * 4;
  const int tiles = (count + kTile - 1) / kTile;
  for (int i = 0; i < tiles; i++) {
    uint8_t* base = a + static_cast<size_t>(i) * chunks * kTileBytes;
    for (int m = 0; m < kTile; m++) {
      const int row = i * kTile + m;
      if (row >= count) {
        for (int c = 0; c < chunks; c++) _mm512_store_si512(base + static_cast<size_t>(c) * kTileBytes + m * 64, _mm512_setzero_si512());
        continue;
      }
      const halo_block_i2* codes = w + static_cast<size_t>(r + row) * nb;
      for (int blk = 0; blk < nb; blk++) unpack_block_row(codes[blk], base + static_cast<size_t>(4 * blk) * kTileBytes + m * 64, kTileBytes);
    }
  }
}

// One stored C tile (c: [16 rows][16 tokens] int32) into y[token][row]: `tokens` tokens, `rows` rows.
inline void write_tile(const int32_t* c, int rows, int tokens, int32_t* y, int y_stride) {
  __m512i in[16], out[16];
  for (int m = 0; m < kTile; m++) in[m] = _mm512_load_si512(c + m * kTile);
  transpose16_epi32(in, out);
  const __mmask16 keep = rows >= kTile ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << rows) - 1u);
  for (int t = 0; t < tokens; t++) _mm512_mask_storeu_epi32(y + static_cast<size_t>(t) * y_stride, keep, out[t]);
}

// The C tiles of a 2 × 2 block (those the template uses) into y: `rows` real rows and `tokens` real tokens (≤ 32 each).
template <bool TwoRows, bool TwoTokens>
void store_block(int rows, int tokens, int32_t* y, int y_stride) {
  alignas(64) int32_t c[kTile * kTile];
  const int rows0 = rows < kTile ? rows : kTile, tokens0 = tokens < kTile ? tokens : kTile;
  HALO_TILE_STORED(0, c, 64);
  write_tile(c, rows0, tokens0, y, y_stride);
  if (TwoTokens) {
    HALO_TILE_STORED(1, c, 64);
    write_tile(c, rows0, tokens - kTile, y + static_cast<size_t>(kTile) * y_stride, y_stride);
  }
  if (TwoRows) {
    HALO_TILE_STORED(2, c, 64);
    write_tile(c, rows - kTile, tokens0, y + kTile, y_stride);
    if (TwoTokens) {
      HALO_TILE_STORED(3, c, 64);
      write_tile(c, rows - kTile, tokens - kTile, y + static_cast<size_t>(kTile) * y_stride + kTile, y_stride);
    }
  }
}

// One 64-wide K chunk of a 2 × 2 block: A tiles a0 (rows 0–15) and a1 (16–31), B tiles b0 (tokens 0–15) and b1
// (16–31) into C tiles 0..3 (those the template uses); each A and B load serves two TDPBUSDs.
template <bool TwoRows, bool TwoTokens>
inline void tile_step(const uint8_t* a0, const uint8_t* a1, const int8_t* b0, const int8_t* b1) {
  HALO_TILE_LOADD(4, a0, 64);
  HALO_TILE_LOADD(6, b0, 64);
  HALO_TILE_DPBUSD(0, 4, 6);
  if (TwoTokens) {
    HALO_TILE_LOADD(7, b1, 64);
    HALO_TILE_DPBUSD(1, 4, 7);
  }
  if (TwoRows) {
    HALO_TILE_LOADD(5, a1, 64);
    HALO_TILE_DPBUSD(2, 5, 6);
    if (TwoTokens) HALO_TILE_DPBUSD(3, 5, 7);
  }
}

// One block of up to 2 row tiles × 2 token tiles over all K chunks. a0/a1: A tiles of chunk 0 (next chunk +1 KB),
// b0/b1 likewise for B; rows / tokens: the real rows and tokens of the block (up to 32 each).
template <bool TwoRows, bool TwoTokens>
void tile_block(const uint8_t* a0, const uint8_t* a1, const int8_t* b0, const int8_t* b1, int chunks, int rows, int tokens, int32_t* y, int y_stride) {
  HALO_TILE_ZERO(0);
  if (TwoTokens) HALO_TILE_ZERO(1);
  if (TwoRows) HALO_TILE_ZERO(2);
  if (TwoRows && TwoTokens) HALO_TILE_ZERO(3);
  for (int c = 0; c < chunks; c++) {
    const size_t at = static_cast<size_t>(c) * kTileBytes;
    tile_step<TwoRows, TwoTokens>(a0 + at, a1 + at, b0 + at, b1 + at);
  }
  store_block<TwoRows, TwoTokens>(rows, tokens, y, y_stride);
}

// Few tokens (one or two B tiles): a pass over the rows costs more in unpacking codes than in tile arithmetic, and
// unpacking whole row blocks (unpack_codes) writes 4 bytes per code byte through L2. Here the codes of up to 2 row
// tiles are unpacked one 256-wide block at a time into an 8 KB buffer that stays in L1 and is read back by the next 4
// chunks' tile loads. `abuf`: 2 × 4 A tiles; rows of a tile past `rows` are zero codes.
template <bool TwoRows, bool TwoTokens>
void stream_block(const halo_block_i2* w, int nb, int row0, int rows, const int8_t* b0, const int8_t* b1, int tokens, uint8_t* abuf, int32_t* y, int y_stride) {
  constexpr size_t kQuarter = kTileBytes;      // next chunk's A tile in abuf
  constexpr size_t kRowTile = 4 * kTileBytes;  // second row tile's 4 A tiles
  const int real = rows < 2 * kTile ? rows : 2 * kTile;
  for (int m = real; m < (TwoRows ? 2 : 1) * kTile; m++) {
    uint8_t* at = abuf + (m / kTile) * kRowTile + (m % kTile) * 64;
    for (int j = 0; j < 4; j++) _mm512_store_si512(at + j * kQuarter, _mm512_setzero_si512());
  }
  HALO_TILE_ZERO(0);
  if (TwoTokens) HALO_TILE_ZERO(1);
  if (TwoRows) HALO_TILE_ZERO(2);
  if (TwoRows && TwoTokens) HALO_TILE_ZERO(3);
  const halo_block_i2* first = w + static_cast<size_t>(row0) * nb;
  // The tile loads hold back the out-of-order core's memory parallelism: the next 2 row tiles (the same number of
  // bytes as these) are prefetched, 2 KB per block, so that their codes are in cache when their turn comes.
  const char* ahead = reinterpret_cast<const char*>(first + static_cast<size_t>(4 * kTile) * nb);
  for (int blk = 0; blk < nb; blk++) {
    for (int m = 0; m < real; m++) {
      _mm_prefetch(ahead + (static_cast<size_t>(blk) * 2 * kTile + m) * 64, _MM_HINT_T1);
      unpack_block_row(first[static_cast<size_t>(m) * nb + blk], abuf + (m / kTile) * kRowTile + (m % kTile) * 64, kQuarter);
    }
    for (int j = 0; j < 4; j++) {
      const size_t at = static_cast<size_t>(4 * blk + j) * kTileBytes;
      tile_step<TwoRows, TwoTokens>(abuf + j * kQuarter, abuf + kRowTile + j * kQuarter, b0 + at, b1 + at);
    }
  }
  store_block<TwoRows, TwoTokens>(rows, tokens, y, y_stride);
}

void gemm_i2_amx(const halo_block_i2* w, int nb, int r0, int r1, const int8_t* x, int x_stride, int n, int32_t* y, int y_stride, const void* prefetch_next) {
  const int chunks = nb * 4;
  const int token_block = n < kTokenBlock ? (n + kTile - 1) / kTile * kTile : kTokenBlock;
  const int row_block = r1 - r0 < kRowBlock ? (r1 - r0 + kTile - 1) / kTile * kTile : kRowBlock;
  const size_t a_bytes = n <= kStreamTokens ? 8 * kTileBytes : static_cast<size_t>(row_block) * chunks * kChunk;
  if (n < kMinTokens || r1 <= r0 || nb <= 0 || !tl_scratch.reserve(a_bytes, static_cast<size_t>(token_block) * chunks * kChunk)) {
    halo_kernels_avx512vnni.gemm_i2(w, nb, r0, r1, x, x_stride, n, y, y_stride, prefetch_next);
    return;
  }
  TileConfig config;
  std::memset(&config, 0, sizeof config);
  config.palette = 1;
  for (int t = 0; t < 8; t++) {
    config.rows[t] = kTile;
    config.colsb[t] = kChunk;
  }
  HALO_TILE_LOADCONFIG(&config);
  uint8_t* a = tl_scratch.a;
  int8_t* b = tl_scratch.b;
  const size_t tile_span = static_cast<size_t>(chunks) * kTileBytes;  // one A or B tile over all of K
  if (n <= kStreamTokens) {
    layout_activations(x, x_stride, 0, n, chunks, b);
    const int8_t* b1 = b + tile_span;
    for (int r = r0; r < r1; r += 2 * kTile) {
      const int rw = r1 - r < 2 * kTile ? r1 - r : 2 * kTile;
      int32_t* yt = y + (r - r0);
      if (rw > kTile && n > kTile) stream_block<true, true>(w, nb, r, rw, b, b1, n, a, yt, y_stride);
      else if (rw > kTile) stream_block<true, false>(w, nb, r, rw, b, b, n, a, yt, y_stride);
      else if (n > kTile) stream_block<false, true>(w, nb, r, rw, b, b1, n, a, yt, y_stride);
      else stream_block<false, false>(w, nb, r, rw, b, b, n, a, yt, y_stride);
    }
    HALO_TILE_RELEASE();
    return;
  }
  for (int tb = 0; tb < n; tb += kTokenBlock) {
    const int tokens = n - tb < kTokenBlock ? n - tb : kTokenBlock;
    layout_activations(x, x_stride, tb, tokens, chunks, b);
    for (int rb = r0; rb < r1; rb += kRowBlock) {
      const int rows = r1 - rb < kRowBlock ? r1 - rb : kRowBlock;
      unpack_codes(w, nb, rb, rows, a);
      for (int j = 0; j * kTile < tokens; j += 2) {
        const int tk = tokens - j * kTile < 2 * kTile ? tokens - j * kTile : 2 * kTile;  // this block's tokens, ≤ 32
        const int8_t* b0 = b + j * tile_span;
        for (int i = 0; i * kTile < rows; i += 2) {
          const int rw = rows - i * kTile < 2 * kTile ? rows - i * kTile : 2 * kTile;
          const uint8_t* a0 = a + i * tile_span;
          int32_t* yt = y + static_cast<size_t>(tb + j * kTile) * y_stride + (rb - r0) + i * kTile;
          if (rw > kTile && tk > kTile) tile_block<true, true>(a0, a0 + tile_span, b0, b0 + tile_span, chunks, rw, tk, yt, y_stride);
          else if (rw > kTile) tile_block<true, false>(a0, a0 + tile_span, b0, b0, chunks, rw, tk, yt, y_stride);
          else if (tk > kTile) tile_block<false, true>(a0, a0, b0, b0 + tile_span, chunks, rw, tk, yt, y_stride);
          else tile_block<false, false>(a0, a0, b0, b0, chunks, rw, tk, yt, y_stride);
        }
      }
    }
  }
  HALO_TILE_RELEASE();
}

}  // namespace

// Built on first use as a copy of the AVX-512 VNNI table (so it follows that table's entries) with this gemm_i2.
extern "C" const halo_kernels* halo_kernels_amx(void) {
  static const halo_kernels table = [] {
    halo_kernels k = halo_kernels_avx512vnni;
    k.name = "amx";
    k.gemm_i2 = gemm_i2_amx;
    return k;
  }();
  return &table;
}

#endif
