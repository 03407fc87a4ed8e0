import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Engine } from "@halo/engine";
import { synthModel } from "@halo/h1b-format";
import { createServer, silentLogger } from "./index.js";
import { ServerMetrics } from "./metrics.js";
import { postJson, readSseRecords, startTinyServer, type TinyServer } from "../test/tiny-server.js";

const long = { prompt: "Go", temperature: 0, ignore_eos: true, stream: true };

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const load = (maxSequences: number): Promise<Engine> => loadModel(synthModel({ seed: 3 }), { backend: "reference", contextLength: 128, maxSequences });

describe("parallel comes from the engine", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await load(3);
  });
  afterAll(() => engine.dispose());

  it("defaults to engine.maxSequences: stats, /v1/models and the admission queue all say 3", async () => {
    const app = createServer({ engine, logger: silentLogger, modelId: "tiny", maxQueue: 0 });
    const { url } = await app.listen(0);
    try {
      expect(app.stats().parallel).toBe(3);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ meta: { parallel: number } }> };
      expect(models.data[0]!.meta.parallel).toBe(3);
      // Three generations run at once; with no queue the fourth is refused.
      const running = [1, 2, 3].map(() => postJson(`${url}/v1/completions`, { ...long, max_tokens: 100 }));
      await until(() => app.stats().active === 3);
      const fourth = await postJson(`${url}/v1/completions`, { ...long, max_tokens: 5 });
      expect(fourth.status).toBe(429);
      await fourth.body?.cancel();
      for (const answer of await Promise.all(running)) expect((await readSseRecords(answer)).at(-1)).toBe("[DONE]");
    } finally {
      await app.close({ graceMs: 2000 });
    }
  });

  it("refuses a parallel above maxSequences with an engine: createServer throws and names the fix", () => {
    let thrown: unknown;
    try {
      createServer({ engine, logger: silentLogger, parallel: 4 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: "SERVER_BAD_OPTION", field: "parallel", actual: 4 });
    expect(String((thrown as { expected: string }).expected)).toContain("at most 3");
    expect((thrown as Error).message).toContain("loadModel(path, { maxSequences: 4 })");
  });

  it("accepts a smaller parallel (the other slots stay the caller's)", async () => {
    const app = createServer({ engine, logger: silentLogger, parallel: 2 });
    try {
      await app.ready;
      expect(app.stats().parallel).toBe(2);
    } finally {
      await app.close({ graceMs: 0 });
    }
  });

  it("refuses it with a promise of an engine: ready rejects, /health answers 503 with why, the owned engine is disposed", async () => {
    const pending = load(2);
    const app = createServer({ engine: pending, logger: silentLogger, parallel: 8, disposeEngineOnClose: true });
    const { url } = await app.listen(0);
    try {
      await expect(app.ready).rejects.toMatchObject({ code: "SERVER_BAD_OPTION", field: "parallel" });
      expect(app.stats()).toMatchObject({ status: "failed", parallel: 8 });
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(503);
      const body = (await health.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("model_load_failed");
      const chat = await postJson(`${url}/v1/chat/completions`, { messages: [{ role: "user", content: "Hi" }] });
      expect(chat.status).toBe(503);
      expect(((await chat.json()) as { error: { message: string } }).error.message).toContain("parallel is larger than the engine's maxSequences");
      // The server was to own it, and will never run it: disposed.
      const refused = await pending;
      expect(() => refused.generate({ prompt: [1], maxTokens: 1 })).toThrow(expect.objectContaining({ code: "ENGINE_DISPOSED" }));
    } finally {
      await app.close({ graceMs: 0 });
    }
  });

  it("is null in the stats while loading without the option", async () => {
    let resolve!: (engine: Engine) => void;
    const app = createServer({ engine: new Promise<Engine>((r) => (resolve = r)), logger: silentLogger });
    try {
      expect(app.stats()).toMatchObject({ status: "loading", parallel: null, kv: null, kvUsage: 0 });
      resolve(engine);
      await app.ready;
      expect(app.stats()).toMatchObject({ status: "ready", parallel: 3 });
    } finally {
      await app.close({ graceMs: 0 });
    }
  });
});

describe("KV usage from engine.stats()", () => {
  let tiny: TinyServer;
  beforeAll(async () => {
    tiny = await startTinyServer({ parallel: 2, contextLength: 256 });
  });
  afterAll(() => tiny.close());

  it("stats, /metrics and /_live/stats show the slots and positions the engine holds, and give them back", async () => {
    const idle = tiny.app.stats();
    expect(idle.kv).toMatchObject({ slotsInUse: 0, maxSequences: 2, positionsInUse: 0, positionsCapacity: 512 });
    expect(idle.kvUsage).toBe(0);
    const running = postJson(`${tiny.url}/v1/completions`, { ...long, max_tokens: 150 });
    await until(() => (tiny.app.stats().kv?.positionsInUse ?? 0) > 20);
    const busy = tiny.app.stats();
    const kv = busy.kv!;
    expect(kv.slotsInUse).toBe(1);
    expect(busy.kvUsage).toBeCloseTo(kv.positionsInUse / 512, 10);
    // Exactly the engine's numbers (read again: the generation moves on).
    expect(tiny.engine.stats().kv.positionsInUse).toBeGreaterThanOrEqual(kv.positionsInUse);
    const metrics = await (await fetch(`${tiny.url}/metrics`)).text();
    expect(metrics).toMatch(/^halo_kv_slots_in_use 1$/m);
    expect(metrics).toMatch(/^halo_kv_slots 2$/m);
    expect(metrics).toMatch(/^halo_kv_positions_capacity 512$/m);
    expect(Number(/^halo_kv_positions_in_use (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(20);
    expect(Number(/^halo_kv_usage_ratio ([\d.e-]+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    // Byte gauges only when the backend estimates its KV bytes (no zeros that would read as "empty").
    if (kv.bytesPerPosition === undefined) expect(metrics).not.toContain("halo_kv_bytes_in_use");
    else expect(Number(/^halo_kv_bytes_capacity (\d+)$/m.exec(metrics)?.[1])).toBe(kv.bytesPerPosition * 512);
    const live = await fetch(`${tiny.url}/_live/stats`);
    const reader = live.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const record = JSON.parse(first.slice(first.indexOf("data: ") + 6, first.indexOf("\n\n"))) as { kv: { slotsInUse: number; maxSequences: number } };
    expect(record.kv).toMatchObject({ slotsInUse: 1, maxSequences: 2 });
    expect((await readSseRecords(await running)).at(-1)).toBe("[DONE]");
    await until(() => tiny.app.stats().kv?.slotsInUse === 0);
    expect(tiny.app.stats().kv).toMatchObject({ slotsInUse: 0, positionsInUse: 0 });
  });

  it("byte gauges appear once a backend's estimate is known, with the engine's byte counts", async () => {
    const kv = {
      slotsInUse: 1,
      maxSequences: 2,
      positionsInUse: 10,
      positionsCapacity: 512,
      bytesPerPosition: 4096,
      bytesInUse: 40_960,
      bytesCapacity: 2_097_152,
    };
    const metrics = new ServerMetrics(() => ({ queueDepth: 0, activeSequences: 1, kvUsage: 10 / 512, kv, promptTokensPerSecond: 0, decodeTokensPerSecond: 0 }));
    expect(await metrics.registry.metrics()).not.toContain("halo_kv_bytes");
    metrics.addKvByteGauges();
    metrics.addKvByteGauges();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^halo_kv_bytes_in_use 40960$/m);
    expect(text).toMatch(/^halo_kv_bytes_capacity 2097152$/m);
  });
});
