// amx_emulate.h: an exact software model of the AMX tile registers (palette 1) and TDPBUSD, for checking the AMX GEMM
// on CPUs without AMX. Used only when kernels_amx.cpp is built with -DHALO_AMX_EMULATE (test/native/amx-check.cpp).
//
// Semantics follow the Intel SDM (vol. 2, LDTILECFG / TILELOADD / TILESTORED / TILEZERO / TDPBUSD / TILERELEASE;
// https://www.felixcloutier.com/x86/tdpbssd:tdpbsud:tdpbusd:tdpbuud): 8 tiles of at most 16 rows × 64 bytes, each
// with its configured rows and colsb; a load fills rows × colsb bytes and zeroes the rest of the tile; TDPBUSD is
//   C[m].dword[n] += Σ_{k < A.colsb/4} Σ_{i < 4} u8(A[m][4k+i]) · s8(B[k][4n+i])   (int32, wrapping)
// for m < C.rows, n < C.colsb/4, and zeroes C past its rows and colsb. Where the hardware would raise #UD or #GP
// (tiles used before a valid LDTILECFG, a bad config, mismatched shapes) the model counts a fault
// and leaves the tiles as they were: the check reads halo_amx_emu::faults() and fails, the process never stops.
#ifndef HALO_AMX_EMULATE_H
#define HALO_AMX_EMULATE_H

#include <atomic>
#include <cstdint>
#include <cstring>

namespace halo_amx_emu {

constexpr int kTiles = 8;        // palette 1
constexpr int kMaxRows = 16;
constexpr int kMaxColsb = 64;

struct State {
  bool configured = false;
  uint8_t rows[kTiles] = {};
  uint16_t colsb[kTiles] = {};
  alignas(64) uint8_t data[kTiles][kMaxRows][kMaxColsb] = {};
};

// Tile state is per thread, as on hardware (XSAVE component 18 is per-thread state).
inline thread_local State state;
inline std::atomic<int> fault_count{0};
inline std::atomic<const char*> last_fault{nullptr};
// TDPBUSDs executed (all threads): lets a check tell the tile path ran rather than a fallback.
inline std::atomic<long> dpbusd_count{0};

inline void fault(const char* what) {
  fault_count.fetch_add(1, std::memory_order_relaxed);
  last_fault.store(what, std::memory_order_relaxed);
}

/** Faults counted since the process started (a correct kernel leaves 0). */
inline int faults() { return fault_count.load(std::memory_order_relaxed); }
inline const char* last_fault_message() { return last_fault.load(std::memory_order_relaxed); }

/** Tiles are usable: configured, and `t` has a non-empty shape. */
inline bool usable(int t, const char* op) {
  if (t < 0 || t >= kTiles) {
    fault(op);
    return false;
  }
  if (!state.configured || state.rows[t] == 0 || state.colsb[t] == 0) {
    fault(op);
    return false;
  }
  return true;
}

// LDTILECFG: byte 0 palette, byte 1 start_row, bytes 2..15 reserved (0), bytes 16..47 colsb[16] as little-endian
// uint16, bytes 48..63 rows[16]. Palette 0 returns the tiles to their init state; palette 1 has 8 tiles.
inline void loadconfig(const void* config) {
  uint8_t c[64];
  std::memcpy(c, config, sizeof c);
  const uint8_t palette = c[0];
  if (palette == 0) {
    state = State();
    return;
  }
  if (palette != 1 || c[1] != 0) {
    fault("ldtilecfg: palette must be 0 or 1 and start_row 0");
    return;
  }
  for (int i = 2; i < 16; i++) {
    if (c[i] != 0) {
      fault("ldtilecfg: reserved bytes 2..15 must be zero");
      return;
    }
  }
  State next;
  for (int t = 0; t < 16; t++) {
    const uint16_t colsb = static_cast<uint16_t>(c[16 + 2 * t] | (c[17 + 2 * t] << 8));
    const uint8_t rows = c[48 + t];
    if (t >= kTiles) {
      if (colsb != 0 || rows != 0) {
        fault("ldtilecfg: palette 1 has 8 tiles; tiles 8..15 must be 0 x 0");
        return;
      }
      continue;
    }
    if (rows > kMaxRows || colsb > kMaxColsb || (rows == 0) != (colsb == 0)) {
      fault("ldtilecfg: a tile past 16 rows or 64 bytes, or with one of rows/colsb zero");
      return;
    }
    next.rows[t] = rows;
    next.colsb[t] = colsb;
  }
  next.configured = true;
  state = next;
}

// TILERELEASE: back to the init state (unconfigured, zero).
inline void release() { state = State(); }

inline void zero(int t) {
  if (!usable(t, "tilezero: tile not configured")) return;
  std::memset(state.data[t], 0, sizeof state.data[t]);
}

inline void loadd(int t, const void* base, long stride) {
  if (!usable(t, "tileloadd: tile not configured")) return;
  const uint8_t* p = static_cast<const uint8_t*>(base);
  uint8_t tile[kMaxRows][kMaxColsb] = {};
  for (int r = 0; r < state.rows[t]; r++) std::memcpy(tile[r], p + r * stride, state.colsb[t]);
  std::memcpy(state.data[t], tile, sizeof tile);
}

inline void stored(int t, void* base, long stride) {
  if (!usable(t, "tilestored: tile not configured")) return;
  uint8_t* p = static_cast<uint8_t*>(base);
  for (int r = 0; r < state.rows[t]; r++) std::memcpy(p + r * stride, state.data[t][r], state.colsb[t]);
}

inline void dpbusd(int c, int a, int b) {
  if (!usable(c, "tdpbusd: tile not configured") || !usable(a, "tdpbusd: tile not configured") || !usable(b, "tdpbusd: tile not configured")) return;
  if (c == a || c == b || a == b) {
    fault("tdpbusd: the three tiles must differ");
    return;
  }
  State& st = state;  // one TLS lookup, not one per element
  const int m_rows = st.rows[c], k_dwords = st.colsb[a] / 4, n_dwords = st.colsb[c] / 4;
  if (st.rows[a] != m_rows || st.rows[b] != k_dwords || st.colsb[b] != st.colsb[c] || st.colsb[a] % 4 != 0 || st.colsb[c] % 4 != 0) {
    fault("tdpbusd: shapes do not match (A.rows == C.rows, B.rows == A.colsb/4, B.colsb == C.colsb)");
    return;
  }
  dpbusd_count.fetch_add(1, std::memory_order_relaxed);
  const uint8_t(&ta)[kMaxRows][kMaxColsb] = st.data[a];
  const uint8_t(&tb)[kMaxRows][kMaxColsb] = st.data[b];
  uint8_t out[kMaxRows][kMaxColsb] = {};
  for (int m = 0; m < m_rows; m++) {
    for (int n = 0; n < n_dwords; n++) {
      uint32_t acc;
      std::memcpy(&acc, &st.data[c][m][4 * n], 4);
      for (int k = 0; k < k_dwords; k++) {
        for (int i = 0; i < 4; i++) {
          const int32_t product = static_cast<int32_t>(ta[m][4 * k + i]) * static_cast<int32_t>(static_cast<int8_t>(tb[k][4 * n + i]));
          acc += static_cast<uint32_t>(product);  // two's-complement wrap, no signed overflow
        }
      }
      std::memcpy(&out[m][4 * n], &acc, 4);
    }
  }
  std::memcpy(st.data[c], out, sizeof out);
}

}  // namespace halo_amx_emu

#endif
