// The proof: GGUF files from writeGguf load and run in node-llama-cpp 3.22.1 (llama.cpp v0.5.0, CPU).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { synthModel } from "../../synth/synth-model.js";
import { memorySource } from "../../core/byte-source.js";
import { readGgufHeader } from "./gguf-header.js";
import { writeGguf } from "./write-gguf.js";

type NodeLlamaCpp = typeof import("node-llama-cpp");
type Llama = Awaited<ReturnType<NodeLlamaCpp["getLlama"]>>;

let llama: Llama | null = null;
let skipReason = "";
try {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  llama = await getLlama({ gpu: false, build: "never", maxThreads: 2, logLevel: LlamaLogLevel.error });
} catch (error) {
  skipReason = `node-llama-cpp cannot start here (${String(error)}); install node-llama-cpp@3.22.1 with its prebuilt CPU binary to run this test`;
}

/**
 * Whether llama.cpp must run: under CI (`CI` set, not 0/false, as scripts/vitest-ci-requires.ts reads it) or with
 * HALO_REQUIRE_NATIVE=1 (test:ci). These tests are the only independent numeric check of the reference backend and
 * the only outside reader of the GGUF files halo writes, so CI must not pass without them.
 */
const LLAMA_REQUIRED = !["", "0", "false", undefined].includes(process.env["CI"]) || process.env["HALO_REQUIRE_NATIVE"] === "1";

/** The started llama.cpp, or — where it cannot start — a failure with the reason when required, a skip with the reason otherwise. */
function needLlama(context: { skip: (note?: string) => void }): Llama {
  if (llama !== null) return llama;
  if (LLAMA_REQUIRED) throw new Error(`${skipReason}. CI (or HALO_REQUIRE_NATIVE=1) is set: this check must run, not be skipped`);
  context.skip(skipReason);
  throw new Error(`unreachable: context.skip returned (${skipReason})`);
}

const dir = mkdtempSync(join(tmpdir(), "halo-gguf-llama-"));
afterAll(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe("writeGguf output in node-llama-cpp (skipped with the reason where node-llama-cpp cannot start; fails in CI)", () => {
  for (const ternaryType of ["tq2_0", "tq1_0"] as const) {
    it(`${ternaryType}: loads, tokenizes like tokenizer.json, gives finite logits and generates`, async (test) => {
      const started = needLlama(test);
      const model = synthModel({ shape: "tiny", activation: "silu", seed: 5 });
      const path = join(dir, `tiny-${ternaryType}.gguf`);
      await writeGguf(model, path, { ternaryType });
      // An independent GGUF parser (node-llama-cpp's) sees the same tensors at the same offsets as ours.
      const { readGgufFileInfo } = await import("node-llama-cpp");
      const info = await readGgufFileInfo(path);
      const ours = readGgufHeader(memorySource(readFileSync(path)));
      expect(info.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number), Number(t.ggmlType), Number(t.fileOffset)])).toEqual(
        ours.tensors.map((t) => [t.name, t.dims, t.type.id, t.offset]),
      );
      const loaded = await started.loadModel({ modelPath: path, gpuLayers: 0 });
      try {
        expect(loaded.fileInfo.metadata.general.architecture).toBe("bitnet");
        const text = "Hello world! The capital of France is Paris, 12345.";
        const ids = loaded.tokenize(text);
        // Independent check of the vocabulary conversion: Hugging Face tokenizers on the model's tokenizer.json.
        const { Tokenizer } = await import("tokenizers");
        const hf = Tokenizer.fromString(model.tokenizer!.kind === "hf-json" ? model.tokenizer!.tokenizerJson : "");
        const expected = (await hf.encode(text, null, { addSpecialTokens: false })).getIds();
        expect(ids.map(Number)).toEqual(expected);
        expect(loaded.detokenize(ids)).toBe(text);

        const context = await loaded.createContext({ contextSize: 128, threads: 2 });
        try {
          const sequence = context.getSequence();
          const input = [model.config.bosTokenId!, ...ids] as typeof ids;
          const results = await sequence.controlledEvaluate([
            ...input.slice(0, -1),
            [input[input.length - 1]!, { generateNext: { token: true, logits: true } }],
          ]);
          const last = results[results.length - 1];
          const logits = last?.next.logits;
          expect(logits?.size).toBe(model.config.vocabSize);
          let finite = 0;
          let spread = 0;
          let first: number | undefined;
          // The map is sorted by logit, highest first: greedy picks its first key.
          expect(logits!.keys().next().value).toBe(last!.next.token);
          for (const value of logits!.values()) {
            if (Number.isFinite(value)) finite++;
            first ??= value;
            spread = Math.max(spread, Math.abs(value - first));
          }
          expect(finite).toBe(model.config.vocabSize);
          expect(spread).toBeGreaterThan(0);

          const generated: number[] = [];
          for await (const token of sequence.evaluate([last!.next.token!], { temperature: 0, yieldEogToken: true })) {
            generated.push(Number(token));
            if (generated.length >= 8) break;
          }
          expect(generated.length).toBe(8);
          expect(generated.every((t) => Number.isInteger(t) && t >= 0 && t < model.config.vocabSize)).toBe(true);
        } finally {
          await context.dispose();
        }
      } finally {
        await loaded.dispose();
      }
    });
  }
});
