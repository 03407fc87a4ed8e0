// `halo bench`: load, prefill and decode speed of a model on this machine, with the bandwidth roofline.
import { KV_DTYPES, type Engine, type MemoryEstimate, type RequestEndEvent, type SpeculativeCounts } from "@halo/engine";
import { writeBackendNotice } from "../backend-notice.js";
import { helpText, kvDtypeFlag, numberFlag, parseFlags, requireString, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { BACKEND_FLAGS, backendFlags, checkBackendFlags, loadWithFlags, NO_VERIFY_HELP, verifyOption } from "./model-options.js";
import { HaloError } from "@halo/errors";
import { openModel } from "@halo/h1b-format";
import { CliErrorCode } from "../errors.js";
import { installedPackings } from "../installed-packings.js";
import { SPECULATIVE_FLAGS, speculativeFlag, speculativeStatsText } from "./speculative-flags.js";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", placeholder: "path", short: "m", description: "model file or snapshot directory" },
  "prompt-tokens": {
    type: "string",
    placeholder: "n",
    description: "prompt length for the prefill measurement (default 512, less when the model's context is smaller)",
  },
  "gen-tokens": { type: "string", placeholder: "n", description: "tokens decoded per sequence (default 128, less when the model's context is smaller)" },
  "decode-context": { type: "string", placeholder: "n", description: "prompt length before the decode measurement (default 64)" },
  batch: { type: "string", placeholder: "n", description: "sequences decoding together (default 1)" },
  ...BACKEND_FLAGS,
  bandwidth: {
    type: "string",
    placeholder: "GB/s",
    description: "measured memory read bandwidth in GB/s for the roofline (default: what the running backend measures, if it can)",
  },
  "head-bytes": {
    type: "string",
    placeholder: "bytes",
    description: "bytes per LM-head weight to count instead of what the running backend says it stores (its estimateMemory), to model another head storage",
  },
  "kv-dtype": { type: "string", placeholder: KV_DTYPES.join("|"), description: "KV cache storage (default: the backend's, f16 where offered)" },
  ...SPECULATIVE_FLAGS,
  json: { type: "boolean", description: "print one JSON object" },
  "no-verify": { type: "boolean", description: NO_VERIFY_HELP },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo bench`. */
export const benchHelp = helpText(
  "halo bench --model <path> [--prompt-tokens n] [--gen-tokens n] [--threads n] [--batch n] [--json]",
  "Measures load time, prefill and decode tok/s, peak RSS, bytes read per decoded token and the\n" +
    "share of the memory-bandwidth roofline reached. Prompts are fixed pseudo-random token ids;\n" +
    "decoding is greedy with end-of-text ignored, so every run does the same work.",
  FLAGS,
  [
    "halo bench --model bitnet-2b.halo --threads 2 --json",
    "halo bench --model tiny.halo --backend reference --prompt-tokens 32 --gen-tokens 16",
    "halo bench --model tiny.halo --speculative draft --json",
  ],
);

/** What `halo bench` reports. */
export interface BenchResult {
  readonly model: string;
  /** The running backend's name as the engine reports it (its display name, e.g. `reference split-kv 64`). */
  readonly backend: string;
  /**
   * The options the running backend was created with: its `backendOptions` entry from `--threads`,
   * `--lm-head` and `--backend-option` (`{ threads: 2, lmHead: "int4" }`); `{}` when it runs on its
   * defaults. Options given for a backend that did not run are not here (bench says so on stderr).
   */
  readonly backendOptions: Readonly<Record<string, unknown>>;
  /** KV cache storage the engine ran with. */
  readonly kvDtype: string;
  readonly loadMs: number;
  readonly promptTokens: number;
  readonly prefillTokensPerSecond: number;
  readonly decodeContext: number;
  readonly genTokens: number;
  readonly batch: number;
  readonly decodeTokensPerSecond: number;
  readonly aggregateDecodeTokensPerSecond: number;
  readonly peakRssMiB: number;
  /** Bytes one decode step reads (the backend's estimate), or null when the backend cannot say. */
  readonly bytesPerToken: number | null;
  readonly bandwidthGBs: number | null;
  readonly rooflineTokensPerSecond: number | null;
  readonly bandwidthUtilisation: number | null;
  /** Why there is no roofline, when there is none (the backend has no `estimateMemory`, no bandwidth known). */
  readonly rooflineUnavailable: string | null;
  /**
   * Speculative decoding of the batch-1 decode run (`--speculative`): the drafter, the engine's label
   * for it and the run's counters (`request-end.speculative`); null without `--speculative`.
   */
  readonly speculative: BenchSpeculative | null;
}

/** What `halo bench --speculative` reports of its batch-1 decode run: the request's counters and what drafted. */
export interface BenchSpeculative extends SpeculativeCounts {
  /** What drafts (`engine.speculative.label`: `ngram 2-4`, `draft-model <file> (cpu)`…). */
  readonly label: string;
}

/**
 * Bytes one decode step of one sequence reads, from the running backend's own estimate: its
 * `decodeReadBytes` (weights as it stores them, norms, LM head) plus `kvBytesPerPosition` for each of
 * the `context` cached positions. `headBytes` counts the LM head at that many bytes per weight
 * instead of as the backend stores it (`headWeights` = vocabulary × hidden size).
 *
 * @example
 * ```ts
 * const e = engine.memoryEstimate;
 * if (e !== null) bytesPerDecodedToken(e, { context: 96 });
 * ```
 */
export function bytesPerDecodedToken(estimate: MemoryEstimate, options: { context: number; headBytes?: number; headWeights?: number }): number {
  const head = options.headBytes === undefined || options.headWeights === undefined ? estimate.headBytes : options.headBytes * options.headWeights;
  return Math.round(estimate.decodeReadBytes - estimate.headBytes + head + estimate.kvBytesPerPosition * options.context);
}

function promptIds(count: number, vocab: number, salt: number): number[] {
  // Fixed pseudo-random ids (a small LCG): the same work on every run and machine.
  const out: number[] = [];
  let x = (0x9e3779b9 ^ salt) >>> 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(x % vocab);
  }
  return out;
}

async function runToEnd(stream: AsyncIterable<unknown>): Promise<RequestEndEvent> {
  let end: RequestEndEvent | null = null;
  for await (const event of stream as AsyncIterable<{ type: string }>) if (event.type === "request-end") end = event as RequestEndEvent;
  if (end === null) throw new Error("generation ended without request-end");
  return end;
}

/** The running backend's read bandwidth in GB/s (its factory's `measureReadBandwidth`, with its options), or null. */
async function probeBandwidth(engine: Engine, options: Readonly<Record<string, unknown>> | undefined): Promise<number | null> {
  const measure = engine.backendFactory?.measureReadBandwidth;
  if (measure === undefined) return null;
  try {
    return round(await measure.call(engine.backendFactory, options ?? {}));
  } catch {
    return null;
  }
}

/** `halo bench`'s lengths when not given (scaled down together for models with a context under 641 positions). */
export const BENCH_DEFAULTS = { promptTokens: 512, genTokens: 128, decodeContext: 64 } as const;

/** The lengths `halo bench` measures with, and whether defaults were scaled down to fit. */
export interface BenchLengths {
  readonly promptTokens: number;
  readonly genTokens: number;
  readonly decodeContext: number;
  /** True when a default was lowered to fit the context (the command says so). */
  readonly scaled: boolean;
}

/**
 * Picks the prefill prompt, generated and decode-context lengths for a model whose context holds
 * `maxContext` positions: the given ones as given, the others from {@link BENCH_DEFAULTS}, lowered
 * (both in the same 4:1 ratio when neither is given) so that `max(prompt, decode context) +
 * generated + 1 ≤ maxContext`. A given combination that cannot fit is a `CLI_USAGE` error naming
 * the numbers and lengths that would fit.
 *
 * @example
 * ```ts
 * fitBenchLengths(512, {}); // { promptTokens: 408, genTokens: 103, decodeContext: 64, scaled: true }
 * fitBenchLengths(4096, {}); // { promptTokens: 512, genTokens: 128, decodeContext: 64, scaled: false }
 * ```
 */
export function fitBenchLengths(maxContext: number, given: { promptTokens?: number; genTokens?: number; decodeContext?: number }): BenchLengths {
  const budget = maxContext - 1; // positions for max(prompt, decode context) + generated
  let promptTokens = given.promptTokens ?? BENCH_DEFAULTS.promptTokens;
  let genTokens = given.genTokens ?? BENCH_DEFAULTS.genTokens;
  let scaled = false;
  if (promptTokens + genTokens > budget) {
    if (given.promptTokens === undefined && given.genTokens === undefined) {
      genTokens = Math.max(2, Math.ceil(budget / 5));
      promptTokens = budget - genTokens;
      scaled = true;
    } else if (given.genTokens === undefined) {
      genTokens = budget - promptTokens;
      scaled = true;
    } else if (given.promptTokens === undefined) {
      promptTokens = budget - genTokens;
      scaled = true;
    }
  }
  const decodeContext = given.decodeContext ?? Math.max(1, Math.min(BENCH_DEFAULTS.decodeContext, budget - genTokens));
  if (decodeContext !== BENCH_DEFAULTS.decodeContext && given.decodeContext === undefined) scaled = true;
  const needed = Math.max(promptTokens, decodeContext) + genTokens + 1;
  if (promptTokens < 1 || genTokens < 2 || needed > maxContext) {
    // Keep the asked generated length when it leaves room for a prompt, else split 4:1 as the defaults do.
    const fitGen = genTokens >= 2 && genTokens <= budget / 2 ? genTokens : Math.max(2, Math.ceil(budget / 5));
    const fitPrompt = budget - fitGen;
    throw new HaloError(CliErrorCode.CLI_USAGE, `the model's context holds ${maxContext} positions, too few for what was asked`, {
      expected: `max(--prompt-tokens, --decode-context) + --gen-tokens + 1 ≤ ${maxContext}`,
      actual: `max(${promptTokens}, ${decodeContext}) + ${genTokens} + 1 = ${needed}`,
      hint:
        budget < 3
          ? "This model's context is too small to benchmark"
          : `Lower them, e.g. --prompt-tokens ${fitPrompt} --gen-tokens ${fitGen}${decodeContext > fitPrompt ? ` --decode-context ${Math.min(BENCH_DEFAULTS.decodeContext, fitPrompt)}` : ""}, or leave them out to let bench choose`,
    });
  }
  return { promptTokens, genTokens, decodeContext, scaled };
}

/** Runs `halo bench`. */
export async function benchCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("bench", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(benchHelp);
    return 0;
  }
  const modelPath = requireString("bench", values, "model");
  const givenPrompt = numberFlag("bench", values, "prompt-tokens", { integer: true, min: 1 });
  const givenGen = numberFlag("bench", values, "gen-tokens", { integer: true, min: 2 });
  const givenDecodeContext = numberFlag("bench", values, "decode-context", { integer: true, min: 1 });
  const backend = backendFlags("bench", values);
  const batch = numberFlag("bench", values, "batch", { integer: true, min: 1, max: 256 }) ?? 1;
  const headBytesFlag = numberFlag("bench", values, "head-bytes", { min: 0.25, max: 4 });
  let bandwidth = numberFlag("bench", values, "bandwidth", { min: 0.1 }) ?? null;
  const kvDtype = kvDtypeFlag("bench", values);
  const speculative = speculativeFlag("bench", values, modelPath);
  await checkBackendFlags(backend);

  const started = performance.now();
  // Opened first to size the run to the model's context; loadModel then takes the open file (with the
  // installed backends' layouts, as loadModel opens one).
  const model = await openModel(modelPath, { codecs: await installedPackings(ctx.env) });
  let engine: Engine;
  let promptTokens: number;
  let genTokens: number;
  let decodeContext: number;
  try {
    const maxContext = model.config.maxPositionEmbeddings;
    const lengths = fitBenchLengths(maxContext, {
      ...(givenPrompt !== undefined ? { promptTokens: givenPrompt } : {}),
      ...(givenGen !== undefined ? { genTokens: givenGen } : {}),
      ...(givenDecodeContext !== undefined ? { decodeContext: givenDecodeContext } : {}),
    });
    ({ promptTokens, genTokens, decodeContext } = lengths);
    if (lengths.scaled) {
      ctx.stderr.write(
        `halo bench: the model's context holds ${maxContext} positions; defaults lowered to fit: ` +
          `measuring --prompt-tokens ${promptTokens} --gen-tokens ${genTokens} --decode-context ${decodeContext}\n`,
      );
    }
    engine = await loadWithFlags(model, {
      ...backend,
      contextLength: Math.max(promptTokens, decodeContext) + genTokens + 1,
      maxSequences: batch,
      ...(kvDtype !== undefined ? { kvDtype } : {}),
      ...verifyOption(values),
      ...(speculative !== undefined ? { speculative } : {}),
    });
  } catch (error) {
    model.close();
    throw error;
  }
  writeBackendNotice("bench", engine, ctx, backend.backendOptions);
  // Options are given by factory name; the engine's backend name is the display name.
  const runningOptions = backend.backendOptions?.[engine.backendFactory?.name ?? engine.backend] ?? {};
  const loadMs = performance.now() - started;
  try {
    const vocab = engine.config.vocabSize;
    const greedy = { temperature: 0, ignoreEos: true } as const;
    // Prefill: the whole prompt in one step, then one token.
    const prefill = await runToEnd(engine.generate({ prompt: promptIds(promptTokens, vocab, 1), maxTokens: 1, ...greedy }));
    // Decode at batch 1 after a short prompt.
    const single = await runToEnd(engine.generate({ prompt: promptIds(decodeContext, vocab, 2), maxTokens: genTokens, ...greedy }));
    let aggregate = single.timings.decodeTokensPerSecond;
    if (batch > 1) {
      const t0 = performance.now();
      const ends = await Promise.all(
        Array.from({ length: batch }, (_, i) =>
          runToEnd(engine.generate({ prompt: promptIds(decodeContext, vocab, 10 + i), maxTokens: genTokens, ...greedy })),
        ),
      );
      const seconds = (performance.now() - t0) / 1000;
      const prefillSeconds = Math.max(...ends.map((e) => (e.timings.queuedMs + e.timings.prefillMs) / 1000));
      aggregate = ends.reduce((n, e) => n + e.usage.completionTokens - 1, 0) / Math.max(1e-9, seconds - prefillSeconds);
    }
    bandwidth ??= await probeBandwidth(engine, runningOptions);
    const estimate = engine.memoryEstimate;
    const bytesPerToken =
      estimate === null
        ? null
        : bytesPerDecodedToken(estimate, {
            context: decodeContext + genTokens / 2,
            ...(headBytesFlag !== undefined ? { headBytes: headBytesFlag, headWeights: engine.config.vocabSize * engine.config.hiddenSize } : {}),
          });
    const rooflineUnavailable =
      bytesPerToken === null
        ? `roofline unavailable: the ${engine.backend} backend has no estimateMemory`
        : bandwidth === null
          ? `roofline unavailable: the ${engine.backend} backend cannot measure its read bandwidth; pass --bandwidth <GB/s>`
          : null;
    const roofline = bandwidth === null || bytesPerToken === null ? null : (bandwidth * 1e9) / bytesPerToken;
    const result: BenchResult = {
      model: modelPath,
      backend: engine.backend,
      backendOptions: runningOptions,
      kvDtype: engine.kvDtype,
      loadMs: Math.round(loadMs),
      promptTokens,
      prefillTokensPerSecond: round(prefill.timings.prefillTokensPerSecond),
      decodeContext,
      genTokens,
      batch,
      decodeTokensPerSecond: round(single.timings.decodeTokensPerSecond),
      aggregateDecodeTokensPerSecond: round(aggregate),
      peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      bytesPerToken,
      bandwidthGBs: bandwidth,
      rooflineTokensPerSecond: roofline === null ? null : round(roofline),
      bandwidthUtilisation: roofline === null ? null : round(single.timings.decodeTokensPerSecond / roofline, 3),
      rooflineUnavailable,
      speculative:
        engine.speculative === null || single.speculative === undefined
          ? null
          : {
              ...single.speculative,
              label: engine.speculative.label,
              acceptanceRate: round(single.speculative.acceptanceRate, 3),
              tokensPerStep: round(single.speculative.tokensPerStep, 3),
            },
    };
    if (values["json"] === true) ctx.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      for (const [key, value] of Object.entries(result)) {
        if (key === "rooflineUnavailable") continue;
        if (key === "speculative") {
          if (single.speculative !== undefined) ctx.stdout.write(`${key.padEnd(32)}${speculativeStatsText(single.speculative, engine.speculative?.label)}\n`);
          continue;
        }
        const text = value === null ? "n/a" : typeof value === "object" ? optionsText(value as Record<string, unknown>) : String(value);
        ctx.stdout.write(`${key.padEnd(32)}${text}\n`);
      }
      if (rooflineUnavailable !== null) ctx.stdout.write(`(${rooflineUnavailable})\n`);
    }
  } finally {
    engine.dispose();
    model.close();
  }
  return 0;
}

/** `threads=2 lmHead="int4"`, or `(defaults)` for none. */
function optionsText(options: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(options);
  return entries.length === 0 ? "(defaults)" : entries.map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(" ");
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
