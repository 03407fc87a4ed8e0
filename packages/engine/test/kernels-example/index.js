// @halo/kernels-example: a backend package that exists only in the test tree. It wraps the reference
// kernels under the name "example" so the engine, server and `halo doctor` tests can prove that a
// backend plugs in by being installed: nothing in them names it.
import { HaloError } from "@halo/errors";
import { CONTRACT_VERSION, KernelsErrorCode, referenceBackendFactory } from "@halo/kernels";

/** Keys `create()` takes: `tag` (any string, recorded), `maxBatchTokens` (passed to the reference kernels). */
const OPTION_KEYS = ["tag", "maxBatchTokens"];

/**
 * Every options object `create()` received, as received (tests check they arrive untouched); on
 * globalThis so a test reads the same list whichever module instance the engine imported.
 */
export const createdWith = (globalThis[Symbol.for("halo.kernels-example.createdWith")] ??= []);

/**
 * The factory discovery reads. `HALO_EXAMPLE_MEMORY_BYTES` sets the memory `probe()` reports (for the
 * out-of-memory test); `HALO_EXAMPLE_UNAVAILABLE` makes `probe()` say it cannot run here.
 */
export const backendFactory = {
  contractVersion: CONTRACT_VERSION,
  name: "example",
  priority: 1000,
  description: "test backend: the reference kernels under another name",
  async probe() {
    if (process.env.HALO_EXAMPLE_UNAVAILABLE) return { available: false, reason: `example device missing (${process.env.HALO_EXAMPLE_UNAVAILABLE})` };
    const totalBytes = Number(process.env.HALO_EXAMPLE_MEMORY_BYTES || 2 ** 40);
    return {
      available: true,
      reason: "example kernels (reference numerics)",
      memory: { kind: "device", totalBytes, freeBytes: totalBytes },
      details: { device: "example-0", kernelPath: "reference" },
    };
  },
  create(options = {}) {
    createdWith.push(options);
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.includes(key)) {
        throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, `the example backend has no option "${key}"`, {
          field: `example.${key}`,
          expected: OPTION_KEYS.join(", "),
          actual: key,
          hint: "Options of other backends go under their own name in backendOptions",
        });
      }
    }
    if (options.tag !== undefined && typeof options.tag !== "string") {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, "example.tag must be a string", {
        field: "example.tag",
        expected: "a string",
        actual: typeof options.tag,
      });
    }
    const inner = referenceBackendFactory.create(options.maxBatchTokens === undefined ? {} : { maxBatchTokens: options.maxBatchTokens });
    return {
      name: "example",
      probe: () => backendFactory.probe(),
      capabilities: () => inner.capabilities(),
      loadModel: (weights, loadOptions) => inner.loadModel(weights, loadOptions),
      estimateMemory: (config, loadOptions) => inner.estimateMemory(config, loadOptions),
    };
  },
  async measureReadBandwidth() {
    return 12.5;
  },
};
