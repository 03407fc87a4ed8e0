// Backend choice with test factories of known capabilities, estimates and probe memory: every outcome is fixed.
import { totalmem } from "node:os";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { synthModel } from "@halo/h1b-format";
import {
  CONTRACT_VERSION,
  referenceBackend,
  referenceBackendFactory,
  type Backend,
  type BackendCapabilities,
  type BackendFactory,
  type BackendProbe,
} from "@halo/kernels";
import { checkBackendChoice, loadModel } from "./index.js";

/** A backend that is never available, with the reason a real one would give. */
function unavailable(name: string, reason: string): Backend {
  const inner = referenceBackend();
  return { ...inner, name, probe: async () => ({ available: false, reason }) };
}

interface TestFactoryOptions {
  /** What probe() reports as memory (omitted: none reported). */
  readonly memoryBytes?: number;
  /** The estimate's totalBytes (omitted: no estimateMemory). */
  readonly estimateBytes?: number;
  /** Capabilities over the reference backend's. */
  readonly caps?: Partial<BackendCapabilities>;
  /** Which method throws. */
  readonly throws?: "probe" | "capabilities" | "estimateMemory";
}

/** A factory of the reference kernels under `name`, with a known probe memory, estimate and capabilities. */
function testFactory(name: string, options: TestFactoryOptions = {}): BackendFactory & { readonly loads: number[] } {
  const loads: number[] = [];
  const probe = async (): Promise<BackendProbe> => {
    if (options.throws === "probe") throw new Error(`${name} probe exploded`);
    return {
      available: true,
      reason: "test",
      ...(options.memoryBytes !== undefined ? { memory: { kind: "device" as const, totalBytes: options.memoryBytes, freeBytes: options.memoryBytes } } : {}),
    };
  };
  return {
    contractVersion: CONTRACT_VERSION,
    name,
    priority: 1,
    description: "test factory",
    loads,
    probe,
    create(): Backend {
      const inner = referenceBackendFactory.create();
      return {
        name,
        probe,
        capabilities: () => {
          if (options.throws === "capabilities") throw new Error(`${name} capabilities exploded`);
          return { ...inner.capabilities(), ...options.caps };
        },
        loadModel: (weights, loadOptions) => {
          loads.push(1);
          return inner.loadModel(weights, loadOptions);
        },
        ...(options.estimateBytes !== undefined || options.throws === "estimateMemory"
          ? {
              estimateMemory: (config, loadOptions) => {
                if (options.throws === "estimateMemory") throw new Error(`${name} estimate exploded`);
                return { ...inner.estimateMemory!(config, loadOptions), totalBytes: options.estimateBytes! };
              },
            }
          : {}),
      };
    },
  };
}

const model = (): ReturnType<typeof synthModel> => synthModel({ seed: 2 });

describe("backend choice and the skipped-backend report", () => {
  it("runs the first entry of a list that can, and lists why each earlier one was passed over", async () => {
    const engine = await loadModel(model(), {
      backend: [unavailable("gpu", "no device. Fix: plug one in"), referenceBackend()],
      contextLength: 32,
    });
    try {
      expect(engine.backend).toBe("reference");
      expect(engine.skippedBackends).toEqual([{ name: "gpu", reason: "no device. Fix: plug one in" }]);
    } finally {
      engine.dispose();
    }
  });

  it("options of the backend that runs are used, even when its display name carries them", async () => {
    const engine = await loadModel(model(), { backend: "reference", backendOptions: { reference: { splitKvTile: 8 } }, contextLength: 32 });
    try {
      expect(engine.backend).toBe("reference split-kv 8");
      expect(engine.unusedBackendOptions).toEqual([]);
    } finally {
      engine.dispose();
    }
  });

  it("reports nothing skipped when the first choice runs", async () => {
    const engine = await loadModel(model(), { backend: "reference", contextLength: 32 });
    try {
      expect(engine.skippedBackends).toEqual([]);
      expect(engine.unusedBackendOptions).toEqual([]);
    } finally {
      engine.dispose();
    }
  });

  it("a backend whose probe(), capabilities() or estimateMemory() throws is skipped with why; the next one runs", async () => {
    const good = testFactory("good", { memoryBytes: 2 ** 40, estimateBytes: 1000 });
    const engine = await loadModel(model(), {
      backend: [testFactory("p", { throws: "probe" }), testFactory("c", { throws: "capabilities" }), testFactory("e", { throws: "estimateMemory" }), good],
      contextLength: 32,
    });
    try {
      expect(engine.backend).toBe("good");
      expect(engine.skippedBackends).toEqual([
        { name: "p", reason: "probe() failed: p probe exploded" },
        { name: "c", reason: "capabilities() failed: c capabilities exploded" },
        { name: "e", reason: "estimateMemory() failed: e estimate exploded" },
      ]);
    } finally {
      engine.dispose();
    }
  });

  it("a backend that cannot take the kvDtype, activationQuant or maxSequences asked is skipped with why; named alone it is refused precisely", async () => {
    const noInt8 = testFactory("noint8", { caps: { kvDtypes: ["f32"] } });
    const few = testFactory("few", { caps: { maxSequences: 2 } });
    const engine = await loadModel(model(), { backend: [noInt8, few, "reference"], kvDtype: "int8", maxSequences: 3, contextLength: 32 });
    try {
      expect(engine.backend).toBe("reference");
      expect(engine.skippedBackends).toEqual([
        { name: "noint8", reason: "KV cache dtype int8 not supported (it runs f32)" },
        { name: "few", reason: "3 sequences at once above its 2" },
      ]);
    } finally {
      engine.dispose();
    }
    await expect(loadModel(model(), { backend: noInt8, kvDtype: "int8", contextLength: 32 })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      field: "kvDtype",
      expected: "f32",
      actual: "int8",
    });
    await expect(loadModel(model(), { backend: few, maxSequences: 3, contextLength: 32 })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      field: "maxSequences",
    });
  });

  it("out of memory: a backend with probe memory too small and one reporting none whose estimate exceeds the host's are both passed over — ENGINE_OUT_OF_MEMORY, no fallback", async () => {
    const small = testFactory("small", { memoryBytes: 1000, estimateBytes: 2000 });
    const hostless = testFactory("hostless", { estimateBytes: totalmem() * 2 });
    const error = await loadModel(model(), { backend: [small, hostless], contextLength: 32 }).catch((e: unknown) => e);
    expect(isHaloError(error) && error.code).toBe("ENGINE_OUT_OF_MEMORY");
    expect(error).toMatchObject({
      expected: expect.stringMatching(/^small: at most 0\.00 GiB \(device memory\); hostless: at most .* GiB \(host memory\)$/) as unknown,
    });
    expect((error as { actual: string }).actual).toMatch(/hostless: needs about .* but has .* of host memory \(it reports none: the host's\)/);
    expect((error as Error).message).toMatch(/Lower contextLength \(now 32\)/);
    expect(small.loads).toEqual([]);
    expect(hostless.loads).toEqual([]);
  });

  it("out of memory passes a backend over for the next that fits (and it is the one that loads)", async () => {
    const small = testFactory("small", { memoryBytes: 1000, estimateBytes: 2000 });
    const fits = testFactory("fits", { estimateBytes: 1000 });
    const engine = await loadModel(model(), { backend: [small, fits], contextLength: 32 });
    try {
      expect(engine.backend).toBe("fits");
      expect(engine.skippedBackends.map((s) => s.name)).toEqual(["small"]);
      expect(engine.skippedBackends[0]!.reason).toMatch(/^needs about 0\.00 GiB .* but has 0\.00 GiB of device memory$/);
      expect(small.loads).toEqual([]);
      expect(fits.loads).toEqual([1]);
    } finally {
      engine.dispose();
    }
  });

  it("refuses when no entry can run, listing every reason", async () => {
    const error = await loadModel(model(), { backend: [unavailable("a", "reason A"), unavailable("b", "reason B")], contextLength: 32 }).catch(
      (e: unknown) => e,
    );
    expect(isHaloError(error) && error.code).toBe("ENGINE_NO_BACKEND");
    expect((error as Error).message).toContain("a: reason A; b: reason B");
  });
});

describe("backend options are checked before the file is opened, and unused ones are reported", () => {
  const missing = join(tmpdir(), "halo-no-such-model-file.halo");

  it("an unknown backend name or a bad option value fails before the (missing) file is opened", async () => {
    await expect(loadModel(missing, { backend: "nosuchbackend" })).rejects.toMatchObject({ code: "ENGINE_NO_BACKEND", field: "backend" });
    await expect(loadModel(missing, { backendOptions: { cpu: { thraeds: 8 } } })).rejects.toMatchObject({ code: "KERNELS_BAD_OPTION", field: "cpu.thraeds" });
    await expect(loadModel(missing, { backend: "reference", backendOptions: { reference: { bogus: 1 } } })).rejects.toMatchObject({
      code: "KERNELS_BAD_OPTION",
    });
  });

  it("options of a backend that does not run are still checked, and named in unusedBackendOptions", async () => {
    await expect(loadModel(model(), { backend: "reference", backendOptions: { cpu: { thraeds: 8 } }, contextLength: 32 })).rejects.toMatchObject({
      code: "KERNELS_BAD_OPTION",
      field: "cpu.thraeds",
    });
    const engine = await loadModel(model(), { backend: "reference", backendOptions: { cpu: { threads: 1 } }, contextLength: 32 });
    try {
      expect(engine.unusedBackendOptions).toEqual(["cpu"]);
    } finally {
      engine.dispose();
    }
  });

  it("checkBackendChoice does the same checks without loading", async () => {
    await expect(checkBackendChoice({ backend: "reference", backendOptions: { cpu: { threads: 1 } } })).resolves.toMatchObject({
      unusedBackendOptions: ["cpu"],
    });
    await expect(checkBackendChoice({ backendOptions: { cpu: { threads: 1 } } })).resolves.toMatchObject({ unusedBackendOptions: [] });
    await expect(checkBackendChoice({ backendOptions: { cpu: { thraeds: 1 } } })).rejects.toMatchObject({ code: "KERNELS_BAD_OPTION", field: "cpu.thraeds" });
    await expect(checkBackendChoice({ backendOptions: { nope: {} } })).rejects.toMatchObject({ code: "ENGINE_BAD_OPTION", field: "backendOptions.nope" });
    await expect(checkBackendChoice({ backend: "nope" })).rejects.toMatchObject({ code: "ENGINE_NO_BACKEND", field: "backend" });
  });

  it("a backend named alone that cannot run here is refused with its probe's reason before the (missing) file is opened; one that can is probed once", async () => {
    let probes = 0;
    const gpu = (available: boolean): BackendFactory => ({
      ...testFactory("gpu"),
      probe: async () => {
        probes++;
        return available ? { available, reason: "test GPU" } : { available, reason: "no GPU runtime: tried libgpu.so" };
      },
    });
    for (const check of [() => loadModel(missing, { backend: gpu(false) }), () => checkBackendChoice({ backend: gpu(false) })]) {
      const error = await check().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "ENGINE_NO_BACKEND", actual: "gpu: no GPU runtime: tried libgpu.so" });
      // Not a usage error: the choice names a backend that exists; this machine lacks what it needs.
      expect((error as { field?: string }).field).toBeUndefined();
      expect((error as Error).message).toMatch(/^the gpu backend cannot run here( \(\S+\))?; found gpu: no GPU runtime.*backend: "auto" .*\breference\)$/);
      expect((error as Error).message).not.toMatch(/H1B_|no such file/i);
    }
    // In a list it is passed over with the same reason, and the next runs.
    const engine = await loadModel(model(), { backend: [gpu(false), "reference"], contextLength: 32 });
    try {
      expect(engine.skippedBackends).toEqual([{ name: "gpu", reason: "no GPU runtime: tried libgpu.so" }]);
    } finally {
      engine.dispose();
    }
    probes = 0;
    const alone = await loadModel(model(), { backend: gpu(true), contextLength: 32 });
    try {
      expect(alone.backend).toBe("gpu");
      expect(probes).toBe(1);
    } finally {
      alone.dispose();
    }
  });

  it("a backend given options is probed as created with them (an option may choose the device it opens)", async () => {
    // The factory alone opens the default device, which is absent; created with { device: "emulated" } it can run.
    const inner = testFactory("dev");
    const dev: BackendFactory = {
      ...inner,
      probe: async () => ({ available: false, reason: "no device" }),
      create(options = {}) {
        const made = inner.create();
        const emulated = options["device"] === "emulated";
        return { ...made, probe: async () => (emulated ? { available: true, reason: "emulated device" } : { available: false, reason: "no device" }) };
      },
    };
    await expect(checkBackendChoice({ backend: dev })).rejects.toMatchObject({ code: "ENGINE_NO_BACKEND", actual: "dev: no device" });
    await expect(checkBackendChoice({ backend: dev, backendOptions: { dev: { device: "emulated" } } })).resolves.toBeDefined();
    const engine = await loadModel(model(), { backend: [dev, "reference"], backendOptions: { dev: { device: "emulated" } }, contextLength: 32 });
    try {
      expect(engine.backend).toBe("dev");
      expect(engine.skippedBackends).toEqual([]);
    } finally {
      engine.dispose();
    }
    const fallback = await loadModel(model(), { backend: [dev, "reference"], contextLength: 32 });
    try {
      expect(fallback.backend).toBe("reference");
      expect(fallback.skippedBackends).toEqual([{ name: "dev", reason: "no device" }]);
    } finally {
      fallback.dispose();
    }
  });
});
