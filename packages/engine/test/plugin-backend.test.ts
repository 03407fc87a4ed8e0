// Adding a backend is adding a package: the test package @halo/kernels-example, installed into a
// temporary node_modules named by HALO_BACKEND_PATH, is found, chosen, created with its own options
// and refused when it cannot fit — with no line of the engine naming it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { CONTRACT_VERSION, referenceBackendFactory, type BackendFactory } from "@halo/kernels";
import { discoverBackends, loadModel, type Engine } from "../src/index.js";
import { exampleCreatedWith, installExampleBackend, type InstalledExample } from "./example-backend.js";

const PROMPT = [506, 72, 101, 108, 108, 111];
let installed: InstalledExample;
let dir: string;
let tinyModel: string;
const previousPath = process.env.HALO_BACKEND_PATH;

beforeAll(async () => {
  installed = installExampleBackend({ outdated: true });
  process.env.HALO_BACKEND_PATH = installed.nodeModules;
  dir = mkdtempSync(join(tmpdir(), "halo-plugin-model-"));
  tinyModel = join(dir, "tiny.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 3 }), tinyModel);
});

afterAll(() => {
  if (previousPath === undefined) delete process.env.HALO_BACKEND_PATH;
  else process.env.HALO_BACKEND_PATH = previousPath;
  delete process.env.HALO_EXAMPLE_MEMORY_BYTES;
  installed.remove();
  rmSync(dir, { recursive: true, force: true });
});

async function greedy(engine: Engine): Promise<number[]> {
  for await (const event of engine.generate({ prompt: PROMPT, maxTokens: 8, temperature: 0, ignoreEos: true })) {
    if (event.type === "request-end") return [...event.tokenIds];
  }
  throw new Error("no request-end event");
}

describe("a backend package found on HALO_BACKEND_PATH", () => {
  it("is discovered above cpu and reference; packages built for contract 1 are refused with why", async () => {
    const { factories, refused, searchPaths } = await discoverBackends();
    expect(searchPaths).toContain(installed.nodeModules);
    expect(factories[0]!.name).toBe("example");
    expect(factories.at(-1)).toBe(referenceBackendFactory);
    const byName = Object.fromEntries(refused.map((r) => [r.packageName, r.reason]));
    expect(byName["@halo/kernels-old"]).toMatch(
      /declares backend contract 1 in package\.json; this engine speaks 2\. Fix: npm install @halo\/kernels-old@latest/,
    );
    expect(byName["@halo/kernels-stale"]).toMatch(/backendFactory is unusable: built for backend contract 1; this engine speaks 2/);
  });

  it('"auto" runs it, lists the refused packages in skippedBackends, and matches the reference backend token for token', async () => {
    const auto = await loadModel(tinyModel, { contextLength: 64 });
    const reference = await loadModel(tinyModel, { backend: "reference", contextLength: 64 });
    try {
      expect(auto.backend).toBe("example");
      expect(auto.backendFactory?.name).toBe("example");
      // Refused packages are listed whatever runs (cpu too, while its installed build predates contract 2).
      expect(auto.skippedBackends.map((s) => s.name)).toEqual(expect.arrayContaining(["old", "stale"]));
      expect(auto.skippedBackends.every((s) => s.reason.startsWith("@halo/kernels-"))).toBe(true);
      expect(auto.skippedBackends.find((s) => s.name === "old")!.reason).toMatch(/^@halo\/kernels-old declares backend contract 1/);
      expect(auto.memoryEstimate).not.toBeNull();
      expect(auto.memoryEstimate!.totalBytes).toBeGreaterThan(0);
      expect(await greedy(auto)).toEqual(await greedy(reference));
    } finally {
      auto.dispose();
      reference.dispose();
    }
  });

  it("is chosen by name, and its backendOptions entry reaches its factory untouched", async () => {
    const own = { tag: "from-the-test", maxBatchTokens: 16 };
    const engine = await loadModel(tinyModel, { backend: "example", backendOptions: { example: own }, contextLength: 64 });
    try {
      expect(engine.backend).toBe("example");
      expect(engine.skippedBackends).toEqual([]);
      expect(exampleCreatedWith().at(-1)).toBe(own);
    } finally {
      engine.dispose();
    }
  });

  it("its own option errors reach the caller (not skipped over), and an options key naming no backend is refused", async () => {
    await expect(loadModel(tinyModel, { backendOptions: { example: { tga: "x" } }, contextLength: 64 })).rejects.toMatchObject({
      code: "KERNELS_BAD_OPTION",
      field: "example.tga",
    });
    const error = await loadModel(tinyModel, { backendOptions: { exmaple: { tag: "x" } } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ENGINE_BAD_OPTION", field: "backendOptions.exmaple" });
    expect((error as Error).message).toMatch(/installed backend: example, .*reference/);
  });

  it("a load that does not fit its memory is refused with ENGINE_OUT_OF_MEMORY; a list passes it over for the next that fits", async () => {
    process.env.HALO_EXAMPLE_MEMORY_BYTES = "1000";
    try {
      const error = await loadModel(tinyModel, { backend: "example", contextLength: 64 }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "ENGINE_OUT_OF_MEMORY", expected: "example: at most 0.00 GiB (device memory)" });
      expect((error as Error).message).toMatch(/example: needs about .* but has 0\.00 GiB of device memory.*Lower contextLength \(now 64\) or maxSequences/);
      // The tiny model fits the host's memory, which the reference backend's estimate is checked against.
      const engine = await loadModel(tinyModel, { backend: ["example", "reference"], contextLength: 64 });
      try {
        expect(engine.backend).toBe("reference");
        expect(engine.skippedBackends).toEqual([
          { name: "example", reason: expect.stringMatching(/^needs about .* but has 0\.00 GiB of device memory$/) as unknown },
        ]);
      } finally {
        engine.dispose();
      }
    } finally {
      delete process.env.HALO_EXAMPLE_MEMORY_BYTES;
    }
  });

  it("is gone once HALO_BACKEND_PATH no longer names it (the cache is per search path)", async () => {
    delete process.env.HALO_BACKEND_PATH;
    try {
      const { factories } = await discoverBackends();
      expect(factories.map((f) => f.name)).not.toContain("example");
      await expect(loadModel(tinyModel, { backend: "example", contextLength: 64 })).rejects.toMatchObject({
        code: "ENGINE_NO_BACKEND",
        message: expect.stringMatching(/no installed backend is named "example".*npm install @halo\/kernels-example/) as unknown,
      });
    } finally {
      process.env.HALO_BACKEND_PATH = installed.nodeModules;
    }
  });

  it("a factory passed in runs without being installed; one of another contract is refused", async () => {
    const passed: BackendFactory = { ...referenceBackendFactory, name: "passed", priority: 1 };
    const engine = await loadModel(tinyModel, { backend: passed, contextLength: 64 });
    try {
      expect(engine.backendFactory).toBe(passed);
    } finally {
      engine.dispose();
    }
    await expect(loadModel(tinyModel, { backend: { ...passed, contractVersion: CONTRACT_VERSION - 1 } })).rejects.toMatchObject({
      code: "ENGINE_BAD_OPTION",
      message: expect.stringMatching(/built for backend contract 1; this engine speaks 2/) as unknown,
    });
  });
});
