// head_tiles.h: the loop order the SIMD int8 / int4 LM-head kernels share (C++, included by their translation units).
#ifndef HALO_HEAD_TILES_H
#define HALO_HEAD_TILES_H

namespace halo {

// Rows [r0, r1) in tiles of 16 with the token groups (up to `per_pass` of the n logit rows) inside each tile, so a step
// streams the head's weights from DRAM once: with the token groups outermost, 8 logit rows re-read the whole head for
// every group. body(r, t0, tn) computes row r for tokens [t0, t0 + tn).
template <typename Body>
inline void for_head_rows(int r0, int r1, int n, int per_pass, Body body) {
  constexpr int kRowTile = 16;
  for (int rt = r0; rt < r1; rt += kRowTile) {
    const int re = r1 - rt < kRowTile ? r1 : rt + kRowTile;
    for (int t0 = 0; t0 < n; t0 += per_pass) {
      const int tn = n - t0 < per_pass ? n - t0 : per_pass;
      for (int r = rt; r < re; r++) body(r, t0, tn);
    }
  }
}

}  // namespace halo

#endif
