// The reference backend: plain TypeScript, float32 storage and float64 reductions; the definition of correct numerics.
import { freemem, totalmem } from "node:os";
import { HaloError } from "@halo/errors";
import { checkBackendOptions } from "../contract/backend-options.js";
import { KernelsErrorCode } from "../errors.js";
import {
  CONTRACT_VERSION,
  type Backend,
  type BackendCapabilities,
  type BackendFactory,
  type BackendProbe,
  type LoadOptions,
  type MemoryEstimate,
} from "../contract/backend.js";
import type { LoadedModel } from "../contract/loaded-model.js";
import type { ModelWeights, WeightsConfig } from "../contract/weights.js";
import { referenceMemoryEstimate } from "./reference-memory.js";
import { validateLoad } from "../contract/validate-load.js";
import { decodeTernary, referenceOps } from "./reference-ops.js";
import { ReferenceLoadedModel, type ReferenceLayer } from "./reference-model.js";
import type { RopeAngleMode } from "./rope.js";

/**
 * Options of {@link referenceBackend}.
 *
 * @example
 * ```ts
 * const backend = referenceBackend({ splitKvTile: 128 });
 * ```
 */
export interface ReferenceBackendOptions {
  /**
   * Attention over tiles of this many positions merged by log-sum-exp (split-KV, as GPU kernels
   * do), instead of one pass. Default 0 (one pass). Both agree within `TOLERANCES.splitKv`.
   */
  readonly splitKvTile?: number;
  /** Most tokens per step. Default 4096. */
  readonly maxBatchTokens?: number;
  /**
   * RoPE angle arithmetic: `"float64"` (the definition, default) or `"ggml-f32"` (llama.cpp's
   * float32 iterated angles, only to measure parity with llama.cpp; see the parity test).
   */
  readonly ropeAngles?: RopeAngleMode;
  /** Most sequences per model. Default 256. */
  readonly maxSequences?: number;
}

const ROLES = ["q", "k", "v", "o", "gate", "up", "down"] as const;

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new HaloError(KernelsErrorCode.KERNELS_ABORTED, "model loading was cancelled", { cause: signal.reason });
  }
}

/**
 * Makes the reference backend. It decodes every ternary tensor to int8 trits at load (any
 * packing whose tensor implements `decodeRows`), decodes norms and the embedding/head to float32
 * with `toFloat32()`, and runs each op exactly as DESIGN.md § Numerics defines it. It is slow
 * (one thread, no SIMD) and blocks the thread during `step`; use it for tests and as the oracle.
 *
 * @example
 * ```ts
 * import { synthModel } from "@halo/h1b-format";
 * const model = await referenceBackend().loadModel(synthModel({ shape: "tiny" }), { contextLength: 64 });
 * const slot = model.allocateSequence();
 * const logits = await model.step({ tokens: Int32Array.of(1), positions: Int32Array.of(0),
 *   slots: Int32Array.of(slot), logitRows: Int32Array.of(0) });
 * ```
 */
export function referenceBackend(options: ReferenceBackendOptions = {}): Backend {
  const splitKvTile = options.splitKvTile ?? 0;
  const maxBatchTokens = options.maxBatchTokens ?? 4096;
  const angles = options.ropeAngles ?? "float64";
  const maxSequences = options.maxSequences ?? 256;
  if (angles !== "float64" && angles !== "ggml-f32") {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, "unknown RoPE angle mode", {
      field: "ropeAngles",
      expected: "float64 or ggml-f32",
      actual: angles,
    });
  }
  if (!Number.isSafeInteger(splitKvTile) || splitKvTile < 0) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, "splitKvTile must be a whole number ≥ 0", { field: "splitKvTile", actual: splitKvTile });
  }
  if (!Number.isSafeInteger(maxBatchTokens) || maxBatchTokens < 1) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, "maxBatchTokens must be a whole number ≥ 1", { field: "maxBatchTokens", actual: maxBatchTokens });
  }
  if (!Number.isSafeInteger(maxSequences) || maxSequences < 1) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, "maxSequences must be a whole number ≥ 1", {
      field: "maxSequences",
      expected: "a whole number ≥ 1 (default 256)",
      actual: maxSequences,
      hint: "Pass the most sequences the reference backend may hold, or leave maxSequences out",
    });
  }
  const capabilities: BackendCapabilities = {
    architectures: ["bitnet"],
    activations: ["relu2", "silu"],
    nativePackings: ["int8"],
    repackedPackings: "any",
    floatDtypes: "any",
    kvDtypes: ["f32", "f16", "int8"],
    activationQuants: ["per-token", "q8k-block"],
    maxBatchTokens,
    preferredBatchTokens: Math.min(maxBatchTokens, 512),
    outputs: ["logits", "argmax", "top-k"],
    hiddenRows: true,
    copySequence: true,
    sequenceTransfer: true,
    maxSequences,
    maxHeadDim: Infinity,
  };
  return {
    name: `reference${splitKvTile > 0 ? ` split-kv ${splitKvTile}` : ""}${angles === "float64" ? "" : ` rope ${angles}`}`,
    ops: referenceOps,
    async probe(): Promise<BackendProbe> {
      return { available: true, reason: "plain TypeScript; runs everywhere", memory: { kind: "host", totalBytes: totalmem(), freeBytes: freemem() } };
    },
    capabilities: () => capabilities,
    estimateMemory: (config: WeightsConfig, loadOptions: LoadOptions): MemoryEstimate => referenceMemoryEstimate(config, loadOptions, capabilities),
    async loadModel(weights: ModelWeights, loadOptions: LoadOptions): Promise<LoadedModel> {
      checkAborted(loadOptions.signal);
      const resolved = validateLoad(weights, loadOptions, capabilities);
      const c = weights.config;
      const total = c.numLayers + 1;
      const embedding = weights.tokenEmbedding.toFloat32();
      const head = c.tiedEmbeddings || weights.lmHead === null ? embedding : weights.lmHead.toFloat32();
      const outputNorm = weights.outputNorm.toFloat32();
      loadOptions.onProgress?.({ done: 1, total });
      const layers: ReferenceLayer[] = [];
      for (let l = 0; l < c.numLayers; l++) {
        // Yield between layers so an abort from the caller's event loop can land.
        await new Promise<void>((resolve) => setImmediate(resolve));
        checkAborted(loadOptions.signal);
        const source = weights.layers[l]!;
        const decoded = Object.fromEntries(ROLES.map((role) => [role, decodeTernary(source[role], `layers[${l}].${role}`)]));
        layers.push({
          attnNorm: source.attnNorm.toFloat32(),
          attnSubNorm: source.attnSubNorm.toFloat32(),
          ffnNorm: source.ffnNorm.toFloat32(),
          ffnSubNorm: source.ffnSubNorm.toFloat32(),
          ...(decoded as Pick<ReferenceLayer, (typeof ROLES)[number]>),
        });
        loadOptions.onProgress?.({ done: l + 2, total });
      }
      return new ReferenceLoadedModel(c, resolved, { embedding, outputNorm, head, layers }, { splitKvTile, maxBatchTokens, ropeAngles: angles });
    },
  };
}

/** Option keys {@link referenceBackendFactory} creates with (those of {@link ReferenceBackendOptions}). */
const REFERENCE_OPTION_KEYS = ["splitKvTile", "maxBatchTokens", "ropeAngles", "maxSequences"] as const satisfies ReadonlyArray<keyof ReferenceBackendOptions>;

/**
 * The reference backend as a {@link BackendFactory}: always available (its probe reports host
 * memory), lowest priority in `"auto"` (it is the slowest), created with {@link ReferenceBackendOptions} (any other key is refused with
 * `KERNELS_BAD_OPTION`).
 *
 * @example
 * ```ts
 * const backend = referenceBackendFactory.create({ splitKvTile: 64 });
 * ```
 */
export const referenceBackendFactory: BackendFactory = {
  contractVersion: CONTRACT_VERSION,
  name: "reference",
  priority: 0,
  description: "TypeScript reference kernels: the definition of the numerics; runs everywhere, slowly",
  async probe(): Promise<BackendProbe> {
    // Host memory: the engine refuses loads that cannot fit (the reference holds float32 weights, more than cpu).
    return {
      available: true,
      reason: "plain TypeScript; runs everywhere (slow: one thread, no SIMD)",
      memory: { kind: "host", totalBytes: totalmem(), freeBytes: freemem() },
    };
  },
  create(options: Readonly<Record<string, unknown>> = {}): Backend {
    return referenceBackend(checkBackendOptions<ReferenceBackendOptions>("reference", REFERENCE_OPTION_KEYS, options));
  },
};
