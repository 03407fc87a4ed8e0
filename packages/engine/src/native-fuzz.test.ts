// Mutation fuzz of every model format through open → verify → the native backend's load → one step: only HaloErrors; no crash, hang or unbounded allocation.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import {
  encodeH1b,
  memorySource,
  readGguf,
  readGgufHeader,
  readH1b,
  readHalo,
  readHfSnapshotSync,
  Rng,
  synthModel,
  verifyModelWeights,
  writeGguf,
  writeHalo,
  writeHfSnapshot,
  type HaloModel,
  type ModelConfig,
} from "@halo/h1b-format";
import type { Backend } from "@halo/kernels";

/**
 * Mutants per format (issue 15's goal: 10,000). Each mutates a copy in memory and runs in 1–4 ms on
 * the smallest shape, so a format takes 12–35 s on 2 shared cores; `HALO_FUZZ_RUNS` goes bigger
 * (or smaller), `HALO_FUZZ_SEED` picks another sequence, `HALO_FUZZ_FORMATS=halo,gguf` a subset.
 */
const RUNS = Number(process.env.HALO_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.HALO_FUZZ_SEED ?? 15);
/** A mutant slower than this counts as a hang. */
const HANG_MS = 5000;
/** Resident memory may grow by at most this over a whole run (a leak or an unbounded allocation trips it). */
const RSS_GROWTH_LIMIT = 1024 * 1024 * 1024;

// The smallest shape every format can hold: GGUF's ternary types need 256-wide rows.
const SHAPE: ModelConfig = {
  ...synthModel().config,
  hiddenSize: 256,
  intermediateSize: 256,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 128,
  vocabSize: 512,
  maxPositionEmbeddings: 64,
};

/** A seeded RNG (h1b-format's synthetic-model generator) so a failing mutant is reproducible from HALO_FUZZ_SEED and its index. */
function rng(seed: number): () => number {
  const generator = new Rng(seed);
  return () => generator.float();
}

interface Target {
  readonly name: string;
  /** The sound file. */
  readonly base: Uint8Array;
  /** [start, end) of the bytes that describe the rest (header, metadata, tensor directory). */
  readonly header: readonly [number, number];
  /** Opens mutated bytes (through a temporary file only where the reader needs a path). */
  open(bytes: Uint8Array): HaloModel;
  /** Re-seals stored header checksums after a header edit, so the validators behind them are reached. */
  reseal?(bytes: Uint8Array): void;
}

let backend: Backend | null = null;
let skipReason = "";
let dir: string;
let shmDir: string | null = null;
const targets: Target[] = [];

beforeAll(async () => {
  try {
    const cpu = (await import("@halo/kernels-cpu")) as { createBackend: (options: { threads?: number }) => Backend };
    const candidate = cpu.createBackend({ threads: 1 });
    const probe = await candidate.probe();
    if (probe.available) backend = candidate;
    else skipReason = probe.reason;
  } catch (error) {
    skipReason = error instanceof Error ? error.message : String(error);
  }
  dir = mkdtempSync(join(tmpdir(), "halo-native-fuzz-"));
  const model = (): HaloModel => synthModel({ shape: SHAPE, seed: 3 });

  const haloPath = join(dir, "fuzz.halo");
  await writeHalo(model(), haloPath);
  const halo = new Uint8Array(readFileSync(haloPath));
  const haloData = Number(new DataView(halo.buffer).getBigUint64(32, true));
  targets.push({
    name: "halo",
    base: halo,
    header: [64, haloData],
    open: (bytes) => readHalo(memorySource(bytes, "fuzz.halo")),
    reseal(bytes) {
      const dv = new DataView(bytes.buffer, bytes.byteOffset);
      const length = Number(dv.getBigUint64(24, true));
      if (64 + length <= bytes.byteLength) dv.setUint32(56, crc32(bytes.subarray(64, 64 + length)), true);
      dv.setUint32(60, crc32(bytes.subarray(0, 60)), true);
    },
  });

  const h1b = encodeH1b(model());
  targets.push({ name: "h1b", base: h1b, header: [0, 52], open: (bytes) => readH1b(memorySource(bytes, "fuzz.h1b"), { htok: false }) });

  const ggufPath = join(dir, "fuzz.gguf");
  await writeGguf(model(), ggufPath, { ternaryType: "tq2_0" });
  const gguf = new Uint8Array(readFileSync(ggufPath));
  targets.push({ name: "gguf", base: gguf, header: [0, readGgufHeader(memorySource(gguf)).dataOffset], open: (bytes) => readGguf(bytes) });

  // The HF reader needs a directory: a tmpfs one where there is one (each mutant is a file write).
  shmDir = existsSync("/dev/shm") ? mkdtempSync(join("/dev/shm", "halo-native-fuzz-")) : null;
  const snapshot = join(shmDir ?? dir, "snapshot");
  await writeHfSnapshot(model(), snapshot);
  // The backend needs no tokenizer: leaving it out keeps each mutant to the weights' own parse.
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) rmSync(join(snapshot, file), { force: true });
  const safetensors = new Uint8Array(readFileSync(join(snapshot, "model.safetensors")));
  const stHeader = 8 + Number(new DataView(safetensors.buffer).getBigUint64(0, true));
  targets.push({
    name: "safetensors",
    base: safetensors,
    header: [0, stHeader],
    open: (bytes) => {
      writeFileSync(join(snapshot, "model.safetensors"), bytes);
      return readHfSnapshotSync(snapshot);
    },
  });
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (shmDir !== null) rmSync(shmDir, { recursive: true, force: true });
});

/** `stepped-nonfinite`: a verified model whose weights are all finite but so large that a logit overflowed (the scan bounds no magnitudes). */
type Outcome = "refused" | "stepped" | "stepped-nonfinite";

/** The engine's load path, minus the tokenizer: open, verify (unless skipped, as `--no-verify`), load, one step of two tokens. */
async function attempt(target: Target, bytes: Uint8Array, verify: boolean, codes: Map<string, number>): Promise<Outcome> {
  let model: HaloModel | null = null;
  let loaded: Awaited<ReturnType<Backend["loadModel"]>> | null = null;
  try {
    model = target.open(bytes);
    if (verify) await verifyModelWeights(model, { cacheDir: null, threads: 1 });
    loaded = await backend!.loadModel(model, { contextLength: 8, maxSequences: 1, kvDtype: "f16", activationQuant: "per-token" });
    const slot = loaded.allocateSequence();
    const vocab = model.config.vocabSize;
    const logits = await loaded.step({
      tokens: Int32Array.of(Math.min(5, vocab - 1), Math.min(84, vocab - 1)),
      positions: Int32Array.of(0, 1),
      slots: Int32Array.of(slot, slot),
      logitRows: Int32Array.of(1),
    });
    expect(logits.length).toBe(vocab);
    return verify && !logits.every(Number.isFinite) ? "stepped-nonfinite" : "stepped";
  } catch (error) {
    if (!isHaloError(error)) throw error;
    codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    return "refused";
  } finally {
    loaded?.dispose();
    model?.close();
  }
}

/**
 * One mutant, chosen by `random`: a quarter each of
 * - random bytes anywhere (1–8 of them), verified — mostly refused by a checksum or a scan;
 * - random bytes in the data region, not verified — garbage weights the backend must survive;
 * - digit edits and byte flips in the header (re-sealed where the format has a header checksum);
 * - a truncation, or a header number set to an extreme value.
 * Edits are made in place on `bytes` (a copy of the base) and undone by the caller.
 */
function mutate(target: Target, bytes: Uint8Array, random: () => number): { verify: boolean; length: number } {
  const pick = (from: number, to: number): number => from + Math.floor(random() * Math.max(1, to - from));
  const [hStart, hEnd] = target.header;
  const kind = Math.floor(random() * 4);
  if (kind === 0) {
    for (let n = 1 + pick(0, 8); n > 0; n--) bytes[pick(0, bytes.length)] = pick(0, 256);
    return { verify: true, length: bytes.length };
  }
  if (kind === 1) {
    for (let n = 1 + pick(0, 8); n > 0; n--) {
      const at = pick(hEnd, bytes.length);
      bytes[at] = random() < 0.5 ? pick(0, 256) : bytes[at]! ^ (1 << pick(0, 8));
    }
    return { verify: random() < 0.25, length: bytes.length };
  }
  if (kind === 2) {
    for (let n = 1 + pick(0, 4); n > 0; n--) {
      const at = pick(hStart, hEnd);
      const b = bytes[at]!;
      // ASCII digits stay digits (a JSON header keeps parsing, with other numbers); other bytes flip a bit.
      bytes[at] = b >= 0x30 && b <= 0x39 ? 0x30 + pick(0, 10) : b ^ (1 << pick(0, 8));
    }
    target.reseal?.(bytes);
    return { verify: random() < 0.5, length: bytes.length };
  }
  if (random() < 0.5) return { verify: true, length: pick(0, bytes.length) };
  // An extreme little-endian u32/i32 somewhere in the header (a count, a dimension, an offset).
  const at = pick(hStart, Math.max(hStart + 1, hEnd - 4));
  const extreme = [0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 0x10000, 3][pick(0, 7)]!;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, extreme, true);
  target.reseal?.(bytes);
  return { verify: random() < 0.5, length: bytes.length };
}

/** The changed bytes of a mutant (offset: old → new), for the failure message. */
function describeEdit(base: Uint8Array, bytes: Uint8Array, length: number): string {
  const changed: string[] = [];
  for (let i = 0; i < length && changed.length < 12; i++) if (bytes[i] !== base[i]) changed.push(`@${i}: ${base[i]} → ${bytes[i]}`);
  return `${length < base.length ? `truncated to ${length} of ${base.length}; ` : ""}${changed.join(", ") || "no byte changed"}`;
}

describe("native-backend mutation fuzz (open → verify → load → step)", () => {
  for (const name of (process.env.HALO_FUZZ_FORMATS ?? "halo,h1b,gguf,safetensors").split(",")) {
    it(`${name}: ${RUNS} mutants give only HaloErrors or a step: no crash, hang or unbounded allocation`, async (context) => {
      if (backend === null) {
        // test:ci sets HALO_REQUIRE_NATIVE=1: there the native backend must be present, and this must not skip.
        if (process.env.HALO_REQUIRE_NATIVE === "1") throw new Error(`native-fuzz: @halo/kernels-cpu is not usable (${skipReason}) but HALO_REQUIRE_NATIVE=1`);
        console.log(`native-fuzz skipped: @halo/kernels-cpu is not usable here (${skipReason}); build it with \`pnpm --filter @halo/kernels-cpu build\``);
        context.skip();
        return;
      }
      const target = targets.find((t) => t.name === name)!;
      const codes = new Map<string, number>();
      // The unmodified file loads, verifies and steps.
      expect(await attempt(target, new Uint8Array(target.base), true, codes)).toBe("stepped");
      const random = rng(SEED * 7919 + name.length);
      const work = new Uint8Array(target.base);
      const rssStart = process.memoryUsage().rss;
      let rssPeak = rssStart;
      let refused = 0;
      let stepped = 0;
      let overflowed = 0;
      let slowest = 0;
      const started = performance.now();
      for (let i = 0; i < RUNS; i++) {
        work.set(target.base);
        const { verify, length } = mutate(target, work, random);
        const t0 = performance.now();
        let outcome: Outcome;
        try {
          outcome = await attempt(target, work.subarray(0, length), verify, codes);
        } catch (error) {
          throw new Error(
            `${name} mutant ${i} (HALO_FUZZ_SEED=${SEED}, verify ${verify}, ${describeEdit(target.base, work, length)}) threw a non-HaloError: ${error instanceof Error ? error.stack : String(error)}`,
            { cause: error },
          );
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        if (ms > HANG_MS) throw new Error(`${name} mutant ${i} (HALO_FUZZ_SEED=${SEED}) took ${ms.toFixed(0)} ms`);
        if (outcome === "refused") refused++;
        else stepped++;
        if (outcome === "stepped-nonfinite") overflowed++;
        if (i % 64 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
      const seconds = (performance.now() - started) / 1000;
      const top = [...codes.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([c, n]) => `${c} ${n}`)
        .join(", ");
      console.log(
        `native-fuzz ${name}: ${RUNS} mutants in ${seconds.toFixed(1)} s — ${refused} refused, ${stepped} loaded+stepped (${overflowed} verified but overflowing to a non-finite logit); ` +
          `slowest ${slowest.toFixed(0)} ms; rss +${((rssPeak - rssStart) / 2 ** 20).toFixed(0)} MiB; codes: ${top}`,
      );
      expect(refused + stepped).toBe(RUNS);
      expect(stepped).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
      expect(rssPeak - rssStart).toBeLessThan(RSS_GROWTH_LIMIT);
    }, 900_000);
  }
});
