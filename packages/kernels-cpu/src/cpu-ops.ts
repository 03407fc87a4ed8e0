// The CPU backend's KernelOps: each op alone through the native kernels, for the conformance suite and tests.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode, nativeScales, type KernelOps, type QuantizedActivations } from "@halo/kernels";
import { checkStatus, type NativeBinding } from "./native-binding.js";

function badArgument(field: string, summary: string, expected: unknown, actual: unknown): HaloError {
  return new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, summary, { field, expected, actual });
}

function checkRows(field: string, length: number, width: number): void {
  if (!Number.isSafeInteger(width) || width <= 0 || length % width !== 0) {
    throw badArgument(field, "array length is not a whole number of rows", `a multiple of ${width}`, length);
  }
}

function result<T>(value: T | number, what: string): T {
  if (typeof value === "number") {
    checkStatus(value, what);
    throw badArgument(what, "native op returned no result", "an array", value);
  }
  return value;
}

/**
 * The native ops for one ISA path and thread count.
 *
 * @example
 * ```ts
 * const ops = cpuOps(nativeBinding(), "avx2", 2);
 * const y = await ops.ternaryMatmul(weight, x, "per-token");
 * ```
 */
export function cpuOps(native: NativeBinding, isa: string, threads: number): KernelOps {
  return {
    rmsNorm(x, weight, eps) {
      checkRows("x", x.length, weight.length);
      return native.rmsNorm(x, weight, eps);
    },
    quantize(x, width, scheme): QuantizedActivations {
      checkRows("x", x.length, width);
      if (scheme === "q8k-block" && width % 256 !== 0) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, "Q8_K quantisation needs rows a multiple of 256 wide", {
          field: "width",
          expected: "a multiple of 256",
          actual: width,
          hint: "Use activationQuant 'per-token' for this model, or a model whose widths are multiples of 256",
        });
      }
      const { values, scales } = native.quantize(x, width, scheme === "per-token");
      return { values, scales, blockSize: scheme === "per-token" ? width : 256 };
    },
    ternaryMatmul(weight, x, scheme) {
      checkRows("x", x.length, weight.cols);
      if (scheme === "q8k-block" && weight.cols % 256 !== 0)
        throw badArgument("weight.cols", "Q8_K activations need K a multiple of 256", "a multiple of 256", weight.cols);
      const trits = new Int8Array(weight.rows * weight.cols);
      weight.decodeRows(0, weight.rows, trits);
      const scales = nativeScales(weight.scale, weight.rows, weight.cols);
      return result(
        native.ternaryMatmul(isa, threads, trits, weight.rows, weight.cols, scales.block, scales.values, x, scheme === "per-token"),
        "ternaryMatmul",
      );
    },
    rope(x, positions, numHeads, headDim, theta) {
      if (headDim % 2 !== 0) throw badArgument("headDim", "RoPE needs an even head width", "even", headDim);
      checkRows("x", x.length, numHeads * headDim);
      if (x.length / (numHeads * headDim) !== positions.length)
        throw badArgument("positions", "one position per row", x.length / (numHeads * headDim), positions.length);
      return native.rope(x, positions, numHeads, headDim, theta);
    },
    attention(input) {
      const { queries, keys, values, queryPositions, numHeads, numKvHeads, headDim } = input;
      if (numHeads % numKvHeads !== 0) throw badArgument("numKvHeads", "query heads must be a multiple of KV heads", `a divisor of ${numHeads}`, numKvHeads);
      checkRows("queries", queries.length, numHeads * headDim);
      checkRows("keys", keys.length, numKvHeads * headDim);
      if (values.length !== keys.length) throw badArgument("values", "values and keys differ in length", keys.length, values.length);
      if (queryPositions.length !== queries.length / (numHeads * headDim))
        throw badArgument("queryPositions", "one position per query", queries.length / (numHeads * headDim), queryPositions.length);
      const length = keys.length / (numKvHeads * headDim);
      queryPositions.forEach((p, t) => {
        if (p < 0 || p >= length) throw badArgument(`queryPositions[${t}]`, "query position outside the keys", `[0, ${length})`, p);
      });
      return result(
        native.attention(isa, threads, queries, keys, values, queryPositions, numHeads, numKvHeads, headDim, input.tileSize ?? 0, "f32"),
        "attention",
      );
    },
    lmHead(x, head) {
      const [vocab, hidden] = head.shape;
      if (head.shape.length !== 2 || vocab === undefined || hidden === undefined)
        throw badArgument("head", "LM head must be 2-D", "[vocab, hidden]", head.shape);
      checkRows("x", x.length, hidden);
      if (head.dtype === "f16") {
        const bytes = head.bytes();
        const bits =
          bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(Uint8Array.from(bytes).buffer);
        return result(native.lmHead(isa, threads, x, "f16", bits, vocab, hidden), "lmHead");
      }
      return result(native.lmHead(isa, threads, x, "f32", head.toFloat32(), vocab, hidden), "lmHead");
    },
  };
}
