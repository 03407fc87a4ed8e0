// attn_dispatch.h: runs an attention body with the KV dtype and "every vector chunk of a row is whole" as
// compile-time constants, and its head passes with their head counts as compile-time constants, so that the SIMD
// tiles' inner loops carry no dtype, tail or size branches. Header-only; included
// by the AVX2 and AVX-512 translation units, each with its own flags.
#ifndef HALO_ATTN_DISPATCH_H
#define HALO_ATTN_DISPATCH_H

#include <type_traits>

#include "halo_cpu.h"

namespace halo {

// Calls body(kv tag, full tag) with the KV dtype (std::integral_constant<int, HALO_KV_…>) and `full`
// (std::true_type / std::false_type) as compile-time constants.
template <typename Body>
void attn_dispatch(int kv, bool full, Body body) {
  using F16 = std::integral_constant<int, HALO_KV_F16>;
  using I8 = std::integral_constant<int, HALO_KV_I8>;
  using F32 = std::integral_constant<int, HALO_KV_F32>;
  if (full) {
    if (kv == HALO_KV_F16) body(F16{}, std::true_type{});
    else if (kv == HALO_KV_I8) body(I8{}, std::true_type{});
    else body(F32{}, std::true_type{});
  } else {
    if (kv == HALO_KV_F16) body(F16{}, std::false_type{});
    else if (kv == HALO_KV_I8) body(I8{}, std::false_type{});
    else body(F32{}, std::false_type{});
  }
}

// Calls body(std::integral_constant<int, G>{}, g) for each pass over up to 4 query heads of `group`: g = 0, 4, 8, …
// and G = min(4, group − g), so that each pass's register tile is sized at compile time.
template <typename Body>
void for_head_passes(int group, Body body) {
  for (int g = 0; g < group; g += 4) {
    switch (group - g < 4 ? group - g : 4) {
      case 4: body(std::integral_constant<int, 4>{}, g); break;
      case 3: body(std::integral_constant<int, 3>{}, g); break;
      case 2: body(std::integral_constant<int, 2>{}, g); break;
      default: body(std::integral_constant<int, 1>{}, g); break;
    }
  }
}

}  // namespace halo

#endif
