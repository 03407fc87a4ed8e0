// Which ternary packing the container stores a matrix in: the writer's `packing` option resolved per tensor.
import type { TernaryPacking, TernaryTensor } from "../../core/model.js";
import { haloI2x256Codec } from "../../codecs/halo-i2x256.js";

/**
 * The packing `"auto"` (the default) stores every ternary matrix in: `halo-i2x256`, the CPU
 * kernels' own layout (`halo_block_i2`: 64-byte blocks of 256 weights, 2 bits per weight, rows
 * independent), so the CPU backend can map the weights of an opened file instead of repacking them.
 *
 * @example
 * ```ts
 * await writeHalo(synthModel(), "m.halo"); // int8 source: stored as HALO_DEFAULT_PACKING
 * readHalo("m.halo").layers[0]!.q.packing === HALO_DEFAULT_PACKING; // true
 * ```
 */
export const HALO_DEFAULT_PACKING = haloI2x256Codec.packing as "halo-i2x256";

/**
 * The packing the container stored when `"auto"` re-packed a source (`halo-v2` up to 0.2).
 *
 * @deprecated `"auto"` now stores every matrix as {@link HALO_DEFAULT_PACKING}; use that. This
 * alias has the same value.
 *
 * @example
 * ```ts
 * HALO_FALLBACK_PACKING === HALO_DEFAULT_PACKING; // true
 * ```
 */
export const HALO_FALLBACK_PACKING = HALO_DEFAULT_PACKING;

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
 * How the container chooses a packing: `"auto"` (default) stores every ternary matrix as
 * {@link HALO_DEFAULT_PACKING} (`halo-i2x256`), whatever the source packing (rows decoded and
 * re-encoded losslessly; scales are separate tensors); a packing name stores every ternary matrix
 * in that packing; a function decides per tensor (`(t) => t.packing` keeps every source packing).
 *
 * @example
 * ```ts
 * await writeHalo(model, "a.halo"); // "auto": halo-i2x256
 * await writeHalo(model, "b.halo", { packing: "tq1-v4" }); // every matrix as tq1-v4
 * await writeHalo(model, "c.halo", { packing: (t) => t.packing }); // keep the source's bytes
 * ```
 */
export type HaloPackingOption = "auto" | TernaryPacking | ((tensor: TernaryTensor) => TernaryPacking);

/** Resolves the packing for one tensor. @internal */
export function choosePacking(option: HaloPackingOption | undefined, tensor: TernaryTensor): TernaryPacking {
  if (option === undefined || option === "auto") return HALO_DEFAULT_PACKING;
  return typeof option === "function" ? option(tensor) : option;
}
