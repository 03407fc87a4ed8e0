// Which ternary packing the container stores a matrix in: the writer's `packing` option resolved per tensor.
import type { TernaryPacking, TernaryTensor } from "../../core/model.js";

/**
 * The packing the container falls back to: seed HaloV2, 2 bits per weight, LSB-first, rows independent.
 *
 * @example
 * ```ts
 * await writeHalo(synthModel(), "m.halo"); // int8 source: stored as HALO_FALLBACK_PACKING
 * ```
 */
export const HALO_FALLBACK_PACKING = "halo-v2";

/**
 * Source packings `"auto"` does not keep: `int8` (an unpacked interchange form, 8 bits per
 * weight), `hf-packed` (four row quarters share a byte, so a row cannot be read alone) and `i2_s`
 * (whole-tensor blocks with the scale in the tail; the byte order depends on the bitnet.cpp build).
 *
 * @example
 * ```ts
 * HALO_REPACKED_SOURCES.includes(model.layers[0]!.q.packing); // true → stored as halo-v2
 * ```
 */
export const HALO_REPACKED_SOURCES: readonly string[] = ["int8", "hf-packed", "i2_s"];

/**
 * Packings whose bytes carry their own scales. The container stores a matrix in one of them only
 * when the source is already in it (bytes copied verbatim), never by transcoding, so the scale
 * tensor and the inline scales can never disagree.
 *
 * @example
 * ```ts
 * await writeHalo(synthModel(), "m.halo", { packing: "tq2_0" }); // throws H1B_UNSUPPORTED
 * ```
 */
export const HALO_INLINE_SCALE_PACKINGS: readonly string[] = ["tq1_0", "tq2_0", "i2_s", "bonsai-tq2", "bonsai-q1"];

/**
 * How the container chooses a packing: `"auto"` (default) keeps the source packing when its rows
 * are independent and compact, else {@link HALO_FALLBACK_PACKING}; a packing name stores every
 * ternary matrix in that packing; a function decides per tensor.
 */
export type HaloPackingOption = "auto" | TernaryPacking | ((tensor: TernaryTensor) => TernaryPacking);

/** Resolves the packing for one tensor. */
export function choosePacking(option: HaloPackingOption | undefined, tensor: TernaryTensor): TernaryPacking {
  if (option === undefined || option === "auto") {
    return HALO_REPACKED_SOURCES.includes(tensor.packing) ? HALO_FALLBACK_PACKING : tensor.packing;
  }
  return typeof option === "function" ? option(tensor) : option;
}
