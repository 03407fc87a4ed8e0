// The conformance suite's entry points: the list of named checks for a backend, and a test-runner adapter.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";
import type { Backend } from "../contract/backend.js";
import { conformanceModel } from "./test-model.js";
import { modelChecks, type ConformanceTestModel, type ModelCheckOptions } from "./model-checks.js";
import { opChecks, type ConformanceCheck } from "./op-checks.js";
import { capabilityChecks } from "./capability-checks.js";

/**
 * Options of {@link conformanceChecks}.
 *
 * @example
 * ```ts
 * const options: ConformanceOptions = { models: [{ name: "2b-slice", weights }], greedyTokens: 8 };
 * ```
 */
export interface ConformanceOptions extends ModelCheckOptions {
  /** Models for the whole-model checks. Default {@link defaultConformanceModels}. */
  readonly models?: readonly ConformanceTestModel[];
}

/**
 * The suite's own tiny models: awkward widths with tensor scales (ReLU², MQA 3:1), row scales
 * with an untied head (SiLU, GQA 4:2), and 256-multiple widths with per-256-block scales like
 * GGUF TQ2_0 (SiLU; also run with Q8_K activations).
 *
 * @example
 * ```ts
 * const [first] = defaultConformanceModels();
 * ```
 */
export function defaultConformanceModels(): ConformanceTestModel[] {
  return [
    { name: "awkward-relu2-tensor-scale", weights: conformanceModel({ seed: 1, activation: "relu2", scaleKind: "tensor" }) },
    {
      name: "gqa-silu-row-scale-untied",
      weights: conformanceModel({
        seed: 2,
        activation: "silu",
        scaleKind: "row",
        tiedEmbeddings: false,
        hiddenSize: 64,
        intermediateSize: 96,
        numHeads: 4,
        numKvHeads: 2,
      }),
    },
    {
      name: "q8k-silu-block-scale",
      weights: conformanceModel({
        seed: 3,
        activation: "silu",
        scaleKind: "block",
        blockSize: 256,
        hiddenSize: 256,
        intermediateSize: 512,
        numLayers: 1,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 64,
        vocabSize: 101,
        ropeTheta: 500000,
      }),
    },
  ];
}

/**
 * Every conformance check for a backend: the per-op checks (when the backend exposes `ops`),
 * the whole-model checks against the reference backend, and the checks of the contract-2
 * capabilities ({@link capabilityChecks}: outputs, hidden rows, copySequence, sequence transfer,
 * estimateMemory — each run when the backend claims it). Each check's `run` rejects with a
 * `KERNELS_CONFORMANCE_MISMATCH` HaloError naming the case, the index and the values.
 *
 * @example
 * ```ts
 * for (const check of await conformanceChecks(() => cpuBackend())) {
 *   const skip = await check.run();
 *   console.log(skip === undefined ? "ok" : `skipped (${skip.skipped})`, check.name);
 * }
 * ```
 */
export async function conformanceChecks(factory: () => Backend | Promise<Backend>, options: ConformanceOptions = {}): Promise<ConformanceCheck[]> {
  const backend = await factory();
  const ops = backend.ops === undefined ? [] : opChecks(backend.ops);
  const models = options.models ?? defaultConformanceModels();
  return [...ops, ...modelChecks(factory, models, options), ...capabilityChecks(factory, models, options)];
}

/**
 * The parts of a test runner {@link runConformance} uses (vitest, jest and node:test fit).
 *
 * @example
 * ```ts
 * import { describe, it } from "vitest";
 * const harness: ConformanceHarness = { describe, it };
 * ```
 */
export interface ConformanceHarness {
  describe(name: string, body: () => void): void;
  /**
   * Registers a test. The body is called with the runner's test context: a check that did not run
   * (a capability the backend does not claim) calls its `skip(note)` (vitest's and node:test's
   * contexts have one), so the runner reports it as skipped, not passed; without one it warns on the console.
   */
  it(name: string, body: (context?: ConformanceTestContext) => Promise<void>, timeout?: number): void;
}

/**
 * The part of a test runner's per-test context {@link runConformance} uses: marking a test skipped
 * with the reason.
 *
 * @example
 * ```ts
 * const context: ConformanceTestContext = { skip: (note) => console.log(`skipped: ${note}`) };
 * ```
 */
export interface ConformanceTestContext {
  skip?(note?: string): void;
}

/**
 * Registers the conformance suite as tests of the caller's runner. Checks are listed at
 * registration, so the ops list comes from `backendInfo` (whether the backend has `ops`). A check of
 * a capability or configuration the backend does not claim is reported as skipped with the reason.
 *
 * @example
 * ```ts
 * import { describe, it } from "vitest";
 * runConformance(() => referenceBackend(), { describe, it }, { hasOps: true });
 * ```
 */
export function runConformance(
  factory: () => Backend | Promise<Backend>,
  harness: ConformanceHarness,
  options: ConformanceOptions & { readonly name?: string; readonly hasOps: boolean; readonly timeoutMs?: number },
): void {
  const checks: ConformanceCheck[] = [];
  if (options.hasOps) {
    // One backend instance serves every op call (native backends may be costly to create).
    let shared: Promise<Backend> | undefined;
    const ops = async (): Promise<NonNullable<Backend["ops"]>> => needOps(await (shared ??= Promise.resolve(factory())));
    checks.push(
      ...opChecks({
        rmsNorm: async (...args) => (await ops()).rmsNorm(...args),
        quantize: async (...args) => (await ops()).quantize(...args),
        ternaryMatmul: async (...args) => (await ops()).ternaryMatmul(...args),
        rope: async (...args) => (await ops()).rope(...args),
        attention: async (...args) => (await ops()).attention(...args),
        lmHead: async (...args) => (await ops()).lmHead(...args),
      }),
    );
  }
  const models = options.models ?? defaultConformanceModels();
  checks.push(...modelChecks(factory, models, options), ...capabilityChecks(factory, models, options));
  harness.describe(`conformance: ${options.name ?? "backend"}`, () => {
    for (const check of checks) {
      harness.it(
        check.name,
        async (context) => {
          const result = await check.run();
          if (result === undefined) return;
          if (typeof context?.skip === "function") context.skip(result.skipped);
          else console.warn(`conformance: ${check.name} not run: ${result.skipped}`);
        },
        options.timeoutMs ?? 120_000,
      );
    }
  });
}

function needOps(backend: Backend): NonNullable<Backend["ops"]> {
  if (backend.ops === undefined) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_ARGUMENT, `backend ${backend.name} exposes no ops`, {
      field: "hasOps",
      expected: false,
      actual: true,
      hint: "Pass hasOps: false for backends without kernel-level entry points",
    });
  }
  return backend.ops;
}
