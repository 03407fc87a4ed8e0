// loadModel opens a .halo stored in an installed backend's own layout: every discovered factory's packings reach openModel.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openModel, synthModel, writeHalo } from "@halo/h1b-format";
import { discoverBackends, loadModel, type BackendFactory, type Engine } from "./index.js";

let dir: string;
let cpu: BackendFactory;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-load-packings-"));
  const found = (await discoverBackends()).factories.find((f) => f.name === "cpu");
  if (found === undefined || (found.packings ?? []).length === 0) {
    throw new Error(
      "this test needs @halo/kernels-cpu (a workspace dependency of @halo/engine) with its packings: run `corepack pnpm install` and build packages/kernels-cpu",
    );
  }
  cpu = found;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function greedy(engine: Engine): Promise<number[]> {
  for await (const event of engine.generate({ prompt: [506, 72, 101], maxTokens: 6, temperature: 0, ignoreEos: true }))
    if (event.type === "request-end") return [...event.tokenIds];
  throw new Error("no request-end");
}

describe("a .halo in a backend's own packing", () => {
  it("loads on any backend (its codec comes from the installed factory), with the same tokens as the format's own packing", async () => {
    const packing = cpu.packings![0]!.packing;
    const own = join(dir, "cpu-layout.halo");
    const plain = join(dir, "plain.halo");
    await writeHalo(synthModel({ shape: "tiny", seed: 9 }), own, { codecs: cpu.packings! });
    await writeHalo(synthModel({ shape: "tiny", seed: 9 }), plain);
    // The file really is in the backend's layout: h1b-format alone cannot decode it.
    const bare = await openModel(own);
    try {
      expect(bare.layers[0]!.q.packing).toBe(packing);
    } finally {
      bare.close();
    }
    const reference = await loadModel(own, { backend: "reference", contextLength: 32 });
    const baseline = await loadModel(plain, { backend: "reference", contextLength: 32 });
    try {
      expect(await greedy(reference)).toEqual(await greedy(baseline));
    } finally {
      reference.dispose();
      baseline.dispose();
    }
  });
});
