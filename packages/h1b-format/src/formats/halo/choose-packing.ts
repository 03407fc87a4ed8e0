// Which ternary packing the container stores a matrix in: the writer's `packing` option resolved per tensor.
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import type { TernaryPacking, TernaryTensor } from "../../core/model.js";
import { checkCodecs, findTernaryCodec, missingCodecHint, type TernaryCodec, type TernaryCodecs } from "../../codecs/registry.js";

/**
 * The packing `"auto"` stores every ternary matrix in when the call passes no `codecs`:
 * `halo-v2`, h1b-format's own 2-bit packing (any column count, rows independent). With `codecs`
 * (a backend's layouts, e.g. `backendFactory.packings` of `@halo/kernels-cpu`), `"auto"` stores the
 * first of them instead, so that backend maps the opened file's weights without repacking.
 *
 * @example
 * ```ts
 * await writeHalo(synthModel(), "m.halo"); // int8 source: stored as HALO_DEFAULT_PACKING
 * readHalo("m.halo").layers[0]!.q.packing === HALO_DEFAULT_PACKING; // true
 * await writeHalo(synthModel(), "cpu.halo", { codecs: backendFactory.packings }); // halo-i2x256
 * ```
 */
export const HALO_DEFAULT_PACKING = "halo-v2";

/**
 * The packing the container stores when `"auto"` re-packs a source without `codecs`.
 *
 * @deprecated Same value as {@link HALO_DEFAULT_PACKING}; use that.
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
 * How the container chooses a packing: `"auto"` (default) stores every ternary matrix in the
 * first of the call's `codecs` (a backend's own layout), else in {@link HALO_DEFAULT_PACKING}
 * (`halo-v2`), whatever the source packing (rows decoded and re-encoded losslessly; scales are
 * separate tensors); a packing name (a format packing, or one of `codecs`) or a codec object
 * stores every ternary matrix in that packing; a function decides per tensor (`(t) => t.packing`
 * keeps every source packing, copying the bytes even when no codec for them was passed).
 *
 * @example
 * ```ts
 * await writeHalo(model, "a.halo"); // "auto", no codecs: halo-v2
 * await writeHalo(model, "b.halo", { codecs: backendFactory.packings }); // "auto": the backend's layout
 * await writeHalo(model, "c.halo", { packing: cpuPacking }); // a codec object: halo-i2x256
 * await writeHalo(model, "d.halo", { packing: "tq1-v4" }); // every matrix as tq1-v4
 * await writeHalo(model, "e.halo", { packing: (t) => t.packing }); // keep the source's bytes
 * ```
 */
export type HaloPackingOption = "auto" | TernaryPacking | TernaryCodec | ((tensor: TernaryTensor) => TernaryPacking | TernaryCodec);

/** The packing chosen for one tensor, and its codec (null: the source's own bytes, copied with no codec). @internal */
export interface ChosenPacking {
  readonly packing: TernaryPacking;
  readonly codec: TernaryCodec | null;
}

/**
 * Resolves the packing for one tensor against the call's codecs (already checked) and the format
 * packings; `H1B_UNKNOWN_DTYPE` when no codec has the name (unless the source is in it: copied).
 * @internal
 */
export function choosePacking(option: HaloPackingOption | undefined, tensor: TernaryTensor, codecs: TernaryCodecs): ChosenPacking {
  let chosen: TernaryPacking | TernaryCodec;
  if (option === undefined || option === "auto") chosen = codecs[0] ?? HALO_DEFAULT_PACKING;
  else chosen = typeof option === "function" ? option(tensor) : option;
  if (typeof chosen === "object" && chosen !== null) {
    const [codec] = checkCodecs([chosen], "packing");
    return { packing: codec!.packing, codec: codec! };
  }
  if (typeof chosen !== "string") {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "invalid packing option", {
      field: "packing",
      expected: '"auto", a packing name, a codec, or a function returning a name or codec',
      actual: typeof chosen,
    });
  }
  const codec = findTernaryCodec(chosen, codecs);
  if (codec === null && chosen !== tensor.packing) {
    throw new HaloError(H1bErrorCode.H1B_UNKNOWN_DTYPE, `unknown ternary packing "${chosen}" for ${tensor.name}`, {
      field: "packing",
      expected: "a format packing of @halo/h1b-format or the packing of a codec passed in codecs",
      actual: chosen,
      hint: missingCodecHint(chosen),
    });
  }
  return { packing: chosen, codec };
}
