// pack_g2.cpp: halo-g2 pack / validate / unpack (see pack_g2.h). Scalar on purpose: packing runs once per model load
// and the layout stays readable next to its definition.
#include "pack_g2.h"

#include <cstring>

#include "../kernels/halo_kernel_args.h"

namespace halo_gpu {

namespace {

/** Byte of its chunk and bit shift of weight `k` (0 … 63) of a chunk: word k / 16, byte k % 4, bits 2 · ((k % 16) / 4). */
inline int g2_byte(int k) { return 4 * (k / 16) + k % 4; }
inline int g2_shift(int k) { return 2 * ((k % 16) / 4); }

bool shape_ok(int rows, int cols, std::string* why) {
  if (rows >= 0 && cols >= 1) return true;
  if (why != nullptr) *why = "halo-g2: expected rows ≥ 0 and cols ≥ 1, found " + std::to_string(rows) + " × " + std::to_string(cols);
  return false;
}

/** The first invalid code: its row and column (a column ≥ cols is padding), and how many there are in all. */
struct BadCodes {
  std::size_t count = 0;
  long long row = -1, column = -1;
  int code = 0;
};

BadCodes find_bad(const uint8_t* bytes, int rows, int cols) {
  BadCodes bad;
  const std::size_t row_bytes = g2_row_bytes(cols);
  const int padded = static_cast<int>(row_bytes / HALO_G2_CHUNK_BYTES) * HALO_G2_CHUNK;
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = bytes + static_cast<std::size_t>(r) * row_bytes;
    for (int c = 0; c < padded; c++) {
      const int code = (row[(c / HALO_G2_CHUNK) * HALO_G2_CHUNK_BYTES + g2_byte(c % HALO_G2_CHUNK)] >> g2_shift(c % HALO_G2_CHUNK)) & 3;
      if (code == 3 || (c >= cols && code != 1)) {
        if (bad.count++ == 0) {
          bad.row = r;
          bad.column = c;
          bad.code = code;
        }
      }
    }
  }
  return bad;
}

bool explain(const BadCodes& bad, int cols, std::string* why) {
  if (bad.count == 0) return true;
  if (why != nullptr)
    *why = "halo-g2: " + std::to_string(bad.count) + " invalid code(s); the first is code " + std::to_string(bad.code) + " at row " + std::to_string(bad.row) +
           ", column " + std::to_string(bad.column) + (bad.column >= cols ? " (padding, which must be code 1)" : " (codes are 0, 1, 2 for −1, 0, +1)") +
           ": the weights are corrupt or not halo-g2; repack them from trits";
  return false;
}

}  // namespace

std::size_t g2_row_bytes(int cols) { return cols < 1 ? 0 : static_cast<std::size_t>((cols + HALO_G2_CHUNK - 1) / HALO_G2_CHUNK) * HALO_G2_CHUNK_BYTES; }

bool g2_pack(const int8_t* trits, int rows, int cols, uint8_t* out, std::string* why) {
  if (!shape_ok(rows, cols, why)) return false;
  const std::size_t row_bytes = g2_row_bytes(cols);
  std::memset(out, 0x55, row_bytes * static_cast<std::size_t>(rows));  // every code 1 (0b01 in each 2-bit field)
  for (int r = 0; r < rows; r++) {
    uint8_t* row = out + static_cast<std::size_t>(r) * row_bytes;
    const int8_t* in = trits + static_cast<std::size_t>(r) * cols;
    for (int c = 0; c < cols; c++) {
      const int trit = in[c];
      if (trit < -1 || trit > 1) {
        if (why != nullptr)
          *why = "halo-g2: expected trits −1, 0 or 1, found " + std::to_string(trit) + " at row " + std::to_string(r) + ", column " + std::to_string(c);
        return false;
      }
      uint8_t& byte = row[(c / HALO_G2_CHUNK) * HALO_G2_CHUNK_BYTES + g2_byte(c % HALO_G2_CHUNK)];
      const int shift = g2_shift(c % HALO_G2_CHUNK);
      byte = static_cast<uint8_t>((byte & ~(3 << shift)) | ((trit + 1) << shift));
    }
  }
  return true;
}

std::size_t g2_count_bad(const uint8_t* bytes, int rows, int cols) { return rows < 0 || cols < 1 ? 0 : find_bad(bytes, rows, cols).count; }

bool g2_validate(const uint8_t* bytes, int rows, int cols, std::string* why) {
  return shape_ok(rows, cols, why) && explain(find_bad(bytes, rows, cols), cols, why);
}

bool g2_unpack(const uint8_t* bytes, int rows, int cols, int8_t* trits, std::string* why) {
  if (!g2_validate(bytes, rows, cols, why)) return false;
  const std::size_t row_bytes = g2_row_bytes(cols);
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = bytes + static_cast<std::size_t>(r) * row_bytes;
    for (int c = 0; c < cols; c++)
      trits[static_cast<std::size_t>(r) * cols + c] =
          static_cast<int8_t>(((row[(c / HALO_G2_CHUNK) * HALO_G2_CHUNK_BYTES + g2_byte(c % HALO_G2_CHUNK)] >> g2_shift(c % HALO_G2_CHUNK)) & 3) - 1);
  }
  return true;
}

}  // namespace halo_gpu
