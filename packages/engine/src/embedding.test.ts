// Engine.embed: mean-pooled, output-normed final hidden states against an independent computation from the backend's own
// forward pass; unit length, truncation, batching with running generations, refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel } from "@halo/h1b-format";
import { TOLERANCES, referenceBackend, type KvDtype, type LoadedModel } from "@halo/kernels";
import { loadModel, type Engine } from "./index.js";
import { haloCodeOf } from "../../../scripts/halo-code.js";

const weights = synthModel({ seed: 11 });
const CONTEXT = 64;
let engine: Engine;
/** The same weights on a second reference model, stepped directly: the oracle's hidden rows. */
let oracleModel: LoadedModel;

beforeAll(async () => {
  engine = await loadModel(weights, { backend: "reference", contextLength: CONTEXT, maxSequences: 4 });
  oracleModel = await referenceBackend().loadModel(weights, { contextLength: CONTEXT, maxSequences: 1, kvDtype: engine.kvDtype as KvDtype });
});
afterAll(() => {
  engine.dispose();
  oracleModel.dispose();
});

/** The definition, computed here: every position's hidden row from one forward pass, RMS-normed, averaged, unit length. */
async function oracle(ids: readonly number[], normalize = true): Promise<Float64Array> {
  const slot = oracleModel.allocateSequence();
  try {
    const result = await oracleModel.forward!({
      tokens: Int32Array.from(ids),
      positions: Int32Array.from(ids, (_, i) => i),
      slots: new Int32Array(ids.length).fill(slot),
      logitRows: new Int32Array(0),
      hiddenRows: Int32Array.from(ids, (_, i) => i),
    });
    const h = weights.config.hiddenSize;
    const norm = weights.outputNorm.toFloat32();
    const mean = new Float64Array(h);
    for (let r = 0; r < ids.length; r++) {
      const row = result.hidden!.subarray(r * h, (r + 1) * h);
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / h + weights.config.rmsNormEps);
      for (let i = 0; i < h; i++) mean[i]! += ((row[i]! / rms) * norm[i]!) / ids.length;
    }
    if (!normalize) return mean;
    const length = Math.hypot(...mean);
    return mean.map((v) => v / length);
  } finally {
    oracleModel.freeSequence(slot);
  }
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe("Engine.embed", () => {
  it("is the mean of the output-normed hidden states, at unit length, for texts and token lists", async () => {
    const texts = ["ternary weights", "a cat sat on the mat and looked at the moon"];
    const { embeddings, tokens, promptTokens } = await engine.embed([...texts, engine.tokenize(texts[0]!)]);
    expect(engine.canEmbed).toBe(true);
    expect(embeddings).toHaveLength(3);
    expect(tokens).toEqual([engine.tokenize(texts[0]!).length, engine.tokenize(texts[1]!).length, engine.tokenize(texts[0]!).length]);
    expect(promptTokens).toBe(tokens[0]! + tokens[1]! + tokens[2]!);
    for (const [i, text] of texts.entries()) {
      const vector = embeddings[i]!;
      expect(vector).toHaveLength(weights.config.hiddenSize);
      expect(Math.abs(Math.hypot(...vector) - 1)).toBeLessThan(1e-6);
      expect(maxDifference(vector, await oracle(engine.tokenize(text)))).toBeLessThan(TOLERANCES.hiddenStates);
    }
    // A text and its token ids are the same input.
    expect(embeddings[2]).toEqual(embeddings[0]);
    // Different texts point different ways.
    expect(maxDifference(embeddings[0]!, embeddings[1]!)).toBeGreaterThan(1e-3);
  });

  it("normalize: false keeps the mean", async () => {
    const ids = engine.tokenize("the mean of the normed rows");
    const { embeddings } = await engine.embed([ids], { normalize: false });
    expect(maxDifference(embeddings[0]!, await oracle(ids, false))).toBeLessThan(TOLERANCES.hiddenStates);
    expect(Math.abs(Math.hypot(...embeddings[0]!) - 1)).toBeGreaterThan(1e-3);
  });

  it("an input longer than the context is refused, or with truncate its first contextLength tokens are embedded", async () => {
    const long = Array.from({ length: CONTEXT + 9 }, (_, i) => (i * 37 + 5) % weights.config.vocabSize);
    expect(await haloCodeOf(() => engine.embed([long]))).toBe("ENGINE_CONTEXT_OVERFLOW");
    const cut = await engine.embed([long], { truncate: true });
    expect(cut.tokens).toEqual([CONTEXT]);
    expect(maxDifference(cut.embeddings[0]!, await oracle(long.slice(0, CONTEXT)))).toBeLessThan(TOLERANCES.hiddenStates);
  });

  it("runs beside a generation: batched with it, the same vector within the batch tolerance", async () => {
    const ids = engine.tokenize("batched with another sequence");
    const alone = (await engine.embed([ids])).embeddings[0]!;
    const events = engine.generate({ prompt: engine.tokenize("keep the scheduler busy"), maxTokens: 24, temperature: 0 });
    const [together] = await Promise.all([
      engine.embed([ids]),
      (async () => {
        for await (const event of events) void event;
      })(),
    ]);
    expect(maxDifference(together.embeddings[0]!, alone)).toBeLessThan(TOLERANCES.batchInvariance);
  });

  it("refuses nothing to embed, an empty input, ids out of range, and an aborted signal", async () => {
    expect(await haloCodeOf(() => engine.embed([]))).toBe("ENGINE_BAD_OPTION");
    expect(await haloCodeOf(() => engine.embed([[]]))).toBe("ENGINE_BAD_OPTION");
    expect(await haloCodeOf(() => engine.embed([[weights.config.vocabSize]]))).toBe("ENGINE_TOKEN_OUT_OF_RANGE");
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await expect(engine.embed(["x"], { signal: controller.signal })).rejects.toThrow("stop");
  });
});
