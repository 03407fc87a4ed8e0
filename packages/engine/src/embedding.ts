// Text embeddings: every position's final hidden state, RMS-normed with the model's output norm, mean-pooled, unit length.
import { HaloError } from "@halo/errors";
import { EngineErrorCode } from "./errors.js";
import type { SequenceTask } from "./scheduler.js";

/** Options of {@link Engine.embed}. */
export interface EmbedOptions {
  /**
   * Scale each embedding to unit length (L2), as OpenAI's and Ollama's embeddings are. Default true; false keeps the
   * mean of the normed hidden states.
   */
  readonly normalize?: boolean;
  /**
   * An input longer than the context window: `true` keeps its first `contextLength` tokens (Ollama's default), `false`
   * (the default) refuses it with `ENGINE_CONTEXT_OVERFLOW`.
   */
  readonly truncate?: boolean;
  /** Cancels the computation. */
  readonly signal?: AbortSignal;
}

/** Result of {@link Engine.embed}. */
export interface EmbedResult {
  /** One `[hiddenSize]` vector per input, in input order. */
  readonly embeddings: readonly Float32Array[];
  /** Tokens run per input (after truncation), in input order. */
  readonly tokens: readonly number[];
  /** All of them together. */
  readonly promptTokens: number;
}

/** @internal What {@link embedOf} needs from the engine. */
export interface EmbedContext {
  readonly hiddenSize: number;
  readonly contextLength: number;
  readonly vocabSize: number;
  /** The model's output norm weights and epsilon (the RMSNorm before the LM head). */
  readonly outputNorm: Float32Array;
  readonly eps: number;
  /** Whether the backend returns hidden rows (contract 2's `capabilities.hiddenRows`). */
  readonly hiddenRows: boolean;
  readonly submit: (task: SequenceTask) => void;
}

/** Adds `row` RMS-normed with `weight` (float64, as the reference's rmsNorm) to `sum`. */
function addNormed(sum: Float64Array, row: Float32Array, weight: Float32Array, eps: number): void {
  let squares = 0;
  for (let i = 0; i < row.length; i++) squares += row[i]! * row[i]!;
  const scale = 1 / Math.sqrt(squares / row.length + eps);
  for (let i = 0; i < row.length; i++) sum[i]! += row[i]! * scale * weight[i]!;
}

/**
 * @internal Embeds each token list as its own sequence (position 0, a fresh KV slot) through the scheduler, so embeddings
 * batch with running generations: every fed row returns its final hidden state (before the output norm), which is
 * normed here with the output norm and averaged over the positions (mean pooling on llama.cpp's `result_norm`).
 */
export async function embedOf(inputs: readonly (readonly number[])[], options: EmbedOptions, context: EmbedContext): Promise<EmbedResult> {
  if (!context.hiddenRows) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "this backend does not return hidden states, which embeddings are made of", {
      field: "backend",
      expected: "a backend whose capabilities().hiddenRows is true (reference, cpu)",
      actual: "capabilities().hiddenRows is false",
      hint: "Load the model on the cpu or reference backend to compute embeddings",
    });
  }
  if (inputs.length === 0) {
    throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "no inputs to embed", {
      field: "input",
      expected: "at least one input",
      actual: "an empty list",
      hint: "Pass one or more texts or token lists",
    });
  }
  const lists = inputs.map((ids, index) => {
    if (ids.length === 0) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "an input has no tokens", {
        field: `input[${index}]`,
        expected: "at least one token",
        actual: "an empty token list",
        hint: "Drop the empty input, or give it some text",
      });
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= context.vocabSize) {
        throw new HaloError(EngineErrorCode.ENGINE_TOKEN_OUT_OF_RANGE, "token id out of range", {
          field: `input[${index}]`,
          expected: `integers in [0, ${context.vocabSize})`,
          actual: id,
        });
      }
    }
    if (ids.length <= context.contextLength) return ids;
    if (options.truncate === true) return ids.slice(0, context.contextLength);
    throw new HaloError(EngineErrorCode.ENGINE_CONTEXT_OVERFLOW, "an input does not fit the context window", {
      field: `input[${index}]`,
      expected: `at most ${context.contextLength} tokens`,
      actual: `${ids.length} tokens`,
      hint: "Shorten the input, or ask for truncation (truncate: true keeps its first tokens)",
    });
  });
  const { hiddenSize, outputNorm, eps } = context;
  const embeddings = await Promise.all(
    lists.map(
      (ids) =>
        new Promise<Float32Array>((resolve, reject) => {
          const sum = new Float64Array(hiddenSize);
          const task: SequenceTask = {
            prompt: ids,
            cancelled: false,
            plan: (pending, maxRows) => {
              const feed = Math.min(pending.length, maxRows);
              return { feed, outputRows: [], output: "logits", hiddenRows: Array.from({ length: feed }, (_, i) => i) };
            },
            onStep({ hidden }) {
              if (options.signal?.aborted === true) {
                task.cancelled = true;
                return null;
              }
              const rows = hidden!.length / hiddenSize;
              for (let r = 0; r < rows; r++) addNormed(sum, hidden!.subarray(r * hiddenSize, (r + 1) * hiddenSize), outputNorm, eps);
              return { append: [] };
            },
            onEnd(error) {
              if (error !== null && error !== undefined) return reject(error);
              if (options.signal?.aborted === true) return reject(options.signal.reason);
              const out = new Float32Array(hiddenSize);
              let length = 0;
              for (let i = 0; i < hiddenSize; i++) length += (sum[i]! / ids.length) ** 2;
              const scale = options.normalize === false ? 1 / ids.length : 1 / (ids.length * Math.sqrt(length) || 1);
              for (let i = 0; i < hiddenSize; i++) out[i] = sum[i]! * scale;
              resolve(out);
            },
          };
          options.signal?.throwIfAborted();
          context.submit(task);
        }),
    ),
  );
  const tokens = lists.map((ids) => ids.length);
  return { embeddings, tokens, promptTokens: tokens.reduce((a, b) => a + b, 0) };
}
