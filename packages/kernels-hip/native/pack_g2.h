// pack_g2.h: the halo-g2 weight packing on the host — pack trits, validate packed bytes, unpack (the layout is defined
// in kernels/halo_kernel_args.h). Works on bytes, so the result is the same on any host byte order: byte 4i + b of a
// 16-byte chunk holds, at bits 2j, the code of weight 16i + 4j + b (code = trit + 1; 3 is invalid; padding is code 1).
#ifndef HALO_PACK_G2_H
#define HALO_PACK_G2_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace halo_gpu {

/** Bytes of one packed row of `cols` weights: ceil(cols / 64) chunks of 16 bytes (0 for cols < 1). */
std::size_t g2_row_bytes(int cols);

/**
 * Packs `trits` [rows][cols] (each −1, 0 or 1) into `out` [rows][g2_row_bytes(cols)], padding with code 1. On a trit
 * outside {−1, 0, 1} or a bad shape returns false, `why` names the first bad row / column and value (out is then
 * partly written).
 */
bool g2_pack(const int8_t* trits, int rows, int cols, uint8_t* out, std::string* why);

/** Invalid codes in `bytes` [rows][g2_row_bytes(cols)]: code 3 anywhere, or a padding code (column ≥ cols) other than 1. */
std::size_t g2_count_bad(const uint8_t* bytes, int rows, int cols);

/** True when g2_count_bad is 0; otherwise `why` says how many codes are bad and where the first one is. */
bool g2_validate(const uint8_t* bytes, int rows, int cols, std::string* why);

/** Unpacks `bytes` into `trits` [rows][cols]; false (and `why`) on an invalid code, as g2_validate. */
bool g2_unpack(const uint8_t* bytes, int rows, int cols, int8_t* trits, std::string* why);

}  // namespace halo_gpu

#endif
