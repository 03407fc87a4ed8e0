// PyTorch against halo: packages/model-tiny/train/train.py's float32 forward of a Hugging Face snapshot (the semantics
// of transformers' BitNet) against the built `halo` command on the same snapshot and on its .halo, for the trained
// halo-tiny model and for a synthetic one. Without torch it skips, except where HALO_REQUIRE_TORCH=1 (the test command
// sets it): there a missing torch fails with the fix.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel } from "@halo/engine";
import { convertModel, openModel, synthModel, writeHfSnapshot } from "@halo/h1b-format";
import { tinyModelPath } from "@halo/model-tiny";
import { Tokenizer } from "@halo/tokenizer";
import { announceTorchSkip, requireTorch } from "../../../scripts/torch-python.js";

announceTorchSkip("train.py-vs-halo test");

const cliDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The built command (the test task builds first), as users run it. */
const bin = join(cliDir, "dist", "bin.js");
/** @halo/model-tiny's package directory: the shipped models/ beside the unshipped hf/, data/ and train/ of the repository. */
const modelTinyDir = dirname(dirname(tinyModelPath));
const trainPy = join(modelTinyDir, "train", "train.py");
const heldoutText = join(modelTinyDir, "data", "heldout.txt");

/** Tokens of the logits comparison: the first ones of the held-out text, BOS first (train.py runs them as one sequence). */
const LOGITS_TOKENS = 256;
/** `halo ppl`'s window: the length halo-tiny was trained at. */
const PPL_CONTEXT = 256;
/**
 * Largest relative difference of halo's perplexity (the CLI's default path) from train.py's on the held-out text, as
 * the issue sets it. Measured on halo-tiny: 9.1e-6 (90.61258 vs 90.61341 over 43,689 scored ids; 550x inside it).
 */
const PPL_MAX_RELATIVE_DIFFERENCE = 0.005;
/**
 * Each test's limit. The work is ~40 s of CPU in all (2 idle cores: logits ~15 s, perplexity ~20 s, synthetic ~5 s);
 * the limit leaves room for a machine busy with the other test files.
 */
const TEST_TIMEOUT_MS = 240_000;
/** train.py threads. One: OpenBLAS's two threads are ~8x slower when the other core is busy (vitest runs files side by side). */
const TORCH_THREADS = "1";

/*
 * Why the tolerances differ between models. Both forwards run the same integer matmuls on the same int8 activations
 * almost everywhere; they differ where an activation x·s (s = 127/absmax of its row) falls on a rounding boundary
 * within float32 noise: torch rounds the float32 RMSNorm output times the float32 scale, halo the exact product of its
 * own RMSNorm output (float64 sums) and scale, so one int8 code moves by one. Such a flip moves that row's logits by a
 * few hundredths, and, through that position's keys and values, every later row by about a hundredth. Exact ties
 * make flips certain: where a token's bf16 embedding times the bf16 attention-norm weight is exactly (2k+1)/254 of
 * the row's absmax, its first quantisation is a tie that either side may break either way (halo-tiny: 166 of its 4096
 * ids, 6.7 % of held-out positions, the first at position 8). So rows before the first such token are compared
 * tightly, the rest at flip level, and the perplexity (where flips average out) to 0.5 %.
 */

/** How far halo may be from train.py's float32 forward, for one model. Each value: the measured error × the stated margin. */
interface Tolerances {
  /**
   * The exact path (reference backend, f32 KV), rows before the first token with a first-quantisation tie: largest
   * |Δlogit|. Where no flip happened, what is left is float32 summation order.
   */
  readonly prefixMax: number;
  /** The exact path: the median over rows of the row's largest |Δlogit|. */
  readonly exactMedianRow: number;
  /** The exact path, worst logit over every row. */
  readonly exactMax: number;
  /** Least top-1 agreement of the exact path with torch. */
  readonly exactTop1: number;
  /** The CLI's default path (f16 KV) against torch, worst logit: f16 keys and values flip int8 codes more often. */
  readonly defaultMax: number;
  /** Least top-1 agreement of the default path with torch. */
  readonly defaultTop1: number;
  /** The same backend on the snapshot and on its .halo, and cpu against reference: the same numbers. */
  readonly sameNumbersMax: number;
}

/**
 * halo-tiny as trained (packages/model-tiny/hf/halo-tiny and models/halo-tiny.halo), first 256 held-out ids, the
 * first tie token at position 8. Measured: prefix (8 rows) 1.1e-5 (tolerance 18x); exact path median row 0.048 and
 * worst 0.134 (10x each), top-1 254/256 (tolerance: 10x the 2 rows that differ); default path worst 0.128 (10x),
 * top-1 255/256 (tolerance as for exact); snapshot vs .halo 0, cpu vs reference 1.9e-6 (10x).
 */
const TRAINED: Tolerances = {
  prefixMax: 2e-4,
  exactMedianRow: 0.5,
  exactMax: 1.5,
  exactTop1: 1 - 20 / 256,
  defaultMax: 1.5,
  defaultTop1: 1 - 20 / 256,
  sameNumbersMax: 2e-5,
};

/**
 * synthModel({ seed: 18 }), shape "tiny" (512 ids, 2 layers, relu2), written as train/export.mjs writes halo-tiny; no
 * tie token among the 256 ids, one flip (row 62). Measured: prefix = every row, worst 0.044 (10x); median row 2.1e-6
 * (50x); top-1 256/256 (tolerance: 10 rows); default path worst 0.156 (10x), top-1 241/256 (tolerance 0.85: 2.5x
 * the 15 rows that differ, as 10x would allow 150); snapshot vs .halo 0, cpu vs reference 9.5e-7 (10x).
 */
const SYNTH: Tolerances = {
  prefixMax: 0.5,
  exactMedianRow: 1e-4,
  exactMax: 0.5,
  exactTop1: 1 - 10 / 256,
  defaultMax: 1.5,
  defaultTop1: 0.85,
  sameNumbersMax: 1e-5,
};

/**
 * Ids whose first activation quantisation (attention norm of layer 0 on the embedding row) has an exact rounding tie:
 * |e·w| = (2k+1)/254 · max|e·w| for some element. Exact in float64 for 16-bit floats (the products have 16 significant
 * bits), which is what the snapshots here hold.
 */
async function firstQuantisationTies(hf: string): Promise<Set<number>> {
  const model = await openModel(hf);
  try {
    for (const tensor of [model.tokenEmbedding, model.layers[0]!.attnNorm]) expect(["bf16", "f16"], tensor.name).toContain(tensor.dtype);
    const embedding = model.tokenEmbedding.toFloat32();
    const weight = model.layers[0]!.attnNorm.toFloat32();
    const hidden = weight.length;
    const ties = new Set<number>();
    const row = new Float64Array(hidden);
    for (let id = 0; id < embedding.length / hidden; id++) {
      let max = 0;
      for (let i = 0; i < hidden; i++) {
        row[i] = Math.abs(embedding[id * hidden + i]! * weight[i]!);
        max = Math.max(max, row[i]!);
      }
      for (let i = 0; i < hidden && max > 0; i++) {
        const k = Math.floor((127 * row[i]!) / max);
        if ((2 * k + 1) * max === 254 * row[i]!) {
          ties.add(id);
          break;
        }
      }
    }
    return ties;
  } finally {
    model.close();
  }
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "halo-model-tiny-torch-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the built `halo` with `args`; its stdout. */
function halo(args: readonly string[]): string {
  return execFileSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 1 << 24,
    timeout: TEST_TIMEOUT_MS, // a synchronous child blocks vitest's own timer
  });
}

/** Runs train.py's subcommand; its stdout. */
function trainPyRun(py: string, args: readonly string[]): string {
  const run = spawnSync(py, [trainPy, ...args, "--threads", TORCH_THREADS], { encoding: "utf8", maxBuffer: 1 << 24, timeout: TEST_TIMEOUT_MS });
  expect(run.status, `train.py ${args[0]}: ${run.stderr}`).toBe(0);
  return run.stdout;
}

function readF32(path: string, rows: number, vocab: number): Float32Array {
  const bytes = readFileSync(path);
  expect(bytes.byteLength, path).toBe(rows * vocab * 4);
  return new Float32Array(Uint8Array.from(bytes).buffer);
}

function writeU16(path: string, ids: readonly number[]): void {
  writeFileSync(path, new Uint8Array(Uint16Array.from(ids).buffer));
}

interface Agreement {
  /** Largest |Δlogit| over every row. */
  readonly max: number;
  /** Median over rows of the row's largest |Δlogit|. */
  readonly medianRow: number;
  /** Fraction of rows whose argmax is the same. */
  readonly top1: number;
}

function argmax(a: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (a[offset + i]! > a[offset + best]!) best = i;
  return best;
}

function agreement(a: Float32Array, b: Float32Array, vocab: number): Agreement {
  const rows = a.length / vocab;
  const rowMax: number[] = [];
  let same = 0;
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = r * vocab; i < (r + 1) * vocab; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    rowMax.push(m);
    if (argmax(a, r * vocab, vocab) === argmax(b, r * vocab, vocab)) same++;
  }
  const sorted = [...rowMax].sort((x, y) => x - y);
  return { max: sorted.at(-1)!, medianRow: sorted[Math.floor(rows / 2)]!, top1: same / rows };
}

/** A model under test: its snapshot, the .halo made from it, and the held-out ids of its tokenizer. */
interface ModelFiles {
  readonly hf: string;
  readonly halo: string;
}

/**
 * The held-out text's ids as `halo ppl` makes them: the engine tokenizes with `encode(text)` (BOS per the tokenizer).
 * Here the snapshot's tokenizer.json and tokenizer_config.json are read with @halo/tokenizer, and the .halo's own
 * tokenizer must give the same ids.
 */
async function heldoutIds(files: ModelFiles): Promise<number[]> {
  const text = readFileSync(heldoutText, "utf8");
  const tokenizer = Tokenizer.fromJson(readFileSync(join(files.hf, "tokenizer.json"), "utf8"), readFileSync(join(files.hf, "tokenizer_config.json"), "utf8"));
  const ids = tokenizer.encode(text);
  const config = JSON.parse(readFileSync(join(files.hf, "config.json"), "utf8")) as { bos_token_id: number };
  expect(ids[0]).toBe(config.bos_token_id);
  const model = await openModel(files.halo);
  try {
    expect(model.tokenizer).not.toBeNull();
    const own = Tokenizer.fromPayload(model.tokenizer!).encode(text);
    expect(own.length).toBe(ids.length);
    expect(own.findIndex((id, i) => id !== ids[i])).toBe(-1);
  } finally {
    model.close?.();
  }
  return ids;
}

/** Logits of `ids` on the exact path: the reference backend with an f32 KV cache (`halo eval` loads with the default, f16). */
async function exactLogits(model: string, ids: readonly number[]): Promise<Float32Array> {
  const engine = await loadModel(model, { backend: "reference", kvDtype: "f32", maxSequences: 1, contextLength: ids.length });
  try {
    const out = new Float32Array(ids.length * engine.config.vocabSize);
    let row = 0;
    await engine.evaluate(ids, (logits, rows) => {
      out.set(logits, row * engine.config.vocabSize);
      row += rows;
    });
    return out;
  } finally {
    engine.dispose();
  }
}

async function compareLogits(py: string, files: ModelFiles, ids: readonly number[], tolerances: Tolerances, tag: string): Promise<void> {
  const first = ids.slice(0, LOGITS_TOKENS);
  const vocab = (JSON.parse(readFileSync(join(files.hf, "config.json"), "utf8")) as { vocab_size: number }).vocab_size;
  const tokensFile = join(dir, `${tag}-first.u16`);
  writeU16(tokensFile, first);
  const torchFile = join(dir, `${tag}-torch.f32`);
  expect(JSON.parse(trainPyRun(py, ["logits", "--snapshot", files.hf, "--tokens", tokensFile, "--out", torchFile]))).toEqual({ rows: first.length, vocab });
  const torch = readF32(torchFile, first.length, vocab);

  const runs: Record<string, Float32Array> = {};
  for (const [name, model] of [
    ["snapshot", files.hf],
    ["halo", files.halo],
  ] as const) {
    for (const backend of ["default", "reference"] as const) {
      const out = join(dir, `${tag}-${name}-${backend}.f32`);
      const summary = JSON.parse(
        halo(["eval", "--model", model, "--tokens", first.join(","), "--logits-out", out, ...(backend === "reference" ? ["--backend", "reference"] : [])]),
      ) as { rows: number; backend: string };
      expect(summary.rows).toBe(first.length);
      if (backend === "reference") expect(summary.backend).toBe("reference");
      runs[`${name}/${backend}`] = readF32(out, first.length, vocab);
    }
  }
  const exact = await exactLogits(files.halo, first);

  const ties = await firstQuantisationTies(files.hf);
  const firstTie = first.findIndex((id) => ties.has(id));
  const prefixRows = firstTie < 0 ? first.length : firstTie;
  const report: Record<string, Agreement> = { exact: agreement(torch, exact, vocab) };
  for (const [key, logits] of Object.entries(runs)) report[key] = agreement(torch, logits, vocab);
  const prefix = agreement(torch.subarray(0, prefixRows * vocab), exact.subarray(0, prefixRows * vocab), vocab);
  const same: Record<string, number> = {};
  for (const [a, b] of [
    ["snapshot/default", "halo/default"],
    ["snapshot/reference", "halo/reference"],
    ["halo/reference", "halo/default"],
  ] as const) {
    same[`${a} vs ${b}`] = agreement(runs[a]!, runs[b]!, vocab).max;
  }
  console.log(
    `${tag}: torch vs halo over ${first.length} tokens (${ties.size} ids with a first-quantisation tie, first at position ${firstTie}): ` +
      `prefix of ${prefixRows} rows ${JSON.stringify(prefix)}; ${JSON.stringify(report)}; halo vs halo, worst logit: ${JSON.stringify(same)}`,
  );

  expect(prefixRows, "rows before the first tie token").toBeGreaterThan(0);
  expect(prefix.max, `exact path, the ${prefixRows} rows before the first tie token`).toBeLessThanOrEqual(tolerances.prefixMax);
  expect(report["exact"]!.medianRow, "exact path, median row").toBeLessThanOrEqual(tolerances.exactMedianRow);
  expect(report["exact"]!.max, "exact path, worst logit").toBeLessThanOrEqual(tolerances.exactMax);
  expect(report["exact"]!.top1, "exact path, top-1").toBeGreaterThanOrEqual(tolerances.exactTop1);
  for (const key of Object.keys(runs)) {
    expect(report[key]!.max, `${key} (f16 KV), worst logit`).toBeLessThanOrEqual(tolerances.defaultMax);
    expect(report[key]!.top1, `${key} (f16 KV), top-1`).toBeGreaterThanOrEqual(tolerances.defaultTop1);
  }
  // The snapshot and its .halo hold the same numbers; the cpu and reference backends compute the same thing.
  for (const [pair, max] of Object.entries(same)) expect(max, pair).toBeLessThanOrEqual(tolerances.sameNumbersMax);
}

/** halo-tiny's files in the repository: the snapshot (not shipped) and the shipped .halo converted from it. */
const TRAINED_FILES: ModelFiles = { hf: join(modelTinyDir, "hf", "halo-tiny"), halo: tinyModelPath };

function requireTrainedFiles(): void {
  for (const path of [join(TRAINED_FILES.hf, "config.json"), TRAINED_FILES.halo, trainPy, heldoutText]) {
    if (!existsSync(path))
      expect.fail(`${path} is missing: halo-tiny's files are committed with @halo/model-tiny (packages/model-tiny/train/run.sh makes them)`);
  }
}

describe("torch (train.py, HF semantics) vs halo on the trained tiny model (needs python3 with torch and numpy; set HALO_PYTHON)", () => {
  it(
    "gives the same logits on the first 256 held-out tokens, on the default and the reference backend",
    async (context) => {
      const py = requireTorch(context);
      requireTrainedFiles();
      await compareLogits(py, TRAINED_FILES, (await heldoutIds(TRAINED_FILES)).slice(0, LOGITS_TOKENS), TRAINED, "trained");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    `gives train.py's perplexity on data/heldout.txt (${PPL_CONTEXT}-token windows) within 0.5 %`,
    async (context) => {
      const py = requireTorch(context);
      requireTrainedFiles();
      const ids = await heldoutIds(TRAINED_FILES);
      const idsFile = join(dir, "trained-heldout.u16");
      writeU16(idsFile, ids);
      const ours = JSON.parse(halo(["ppl", "--model", TRAINED_FILES.halo, "--text-file", heldoutText, "--context-length", String(PPL_CONTEXT), "--json"])) as {
        perplexity: number;
        scoredTokens: number;
        totalTokens: number;
        backend: string;
      };
      const theirs = JSON.parse(trainPyRun(py, ["ppl", "--snapshot", TRAINED_FILES.hf, "--tokens", idsFile, "--context-length", String(PPL_CONTEXT)])) as {
        perplexity: number;
        scoredTokens: number;
        totalTokens: number;
      };
      const relative = Math.abs(ours.perplexity - theirs.perplexity) / theirs.perplexity;
      console.log(`trained: perplexity halo ${ours.perplexity} (${ours.backend}) vs torch ${theirs.perplexity}, relative difference ${relative}`);
      expect(ours.totalTokens).toBe(ids.length);
      expect(theirs.totalTokens).toBe(ids.length);
      expect(ours.scoredTokens).toBe(theirs.scoredTokens);
      expect(relative).toBeLessThanOrEqual(PPL_MAX_RELATIVE_DIFFERENCE);
    },
    TEST_TIMEOUT_MS,
  );
});

describe("torch (train.py, HF semantics) vs halo on a synthetic tiny model (needs python3 with torch and numpy; set HALO_PYTHON)", () => {
  let files: ModelFiles;
  beforeAll(async () => {
    // Written as train/export.mjs writes halo-tiny: a packed bf16 snapshot, then a .halo converted from it.
    const hf = join(dir, "synth-hf");
    await writeHfSnapshot(synthModel({ shape: "tiny", activation: "relu2", seed: 18 }), hf, { variant: "packed", scaleDtype: "bf16", floatDtype: "bf16" });
    const snapshot = await openModel(hf);
    const haloPath = join(dir, "synth.halo");
    await convertModel(snapshot, haloPath, { format: "halo" });
    files = { hf, halo: haloPath };
  }, TEST_TIMEOUT_MS);

  it(
    "gives the same logits on the first 256 held-out tokens, on the default and the reference backend",
    async (context) => {
      const py = requireTorch(context);
      await compareLogits(py, files, (await heldoutIds(files)).slice(0, LOGITS_TOKENS), SYNTH, "synth");
    },
    TEST_TIMEOUT_MS,
  );
});
