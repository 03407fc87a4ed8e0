// `halo generate`: stream a completion of a prompt to stdout.
import { writeBackendNotice } from "../backend-notice.js";
import { helpText, numberFlag, parseFlags, requireString, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { BACKEND_FLAGS, backendFlags, checkBackendFlags, loadWithFlags, MODEL_FLAGS, verifyOption } from "./model-options.js";
import { SPECULATIVE_FLAGS, speculativeFlag, speculativeStatsText } from "./speculative-flags.js";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", placeholder: "path", short: "m", description: "model file or Hugging Face snapshot directory" },
  prompt: { type: "string", placeholder: "text", short: "p", description: "the prompt text (BOS is added per the tokenizer)" },
  "max-tokens": { type: "string", placeholder: "n", short: "n", description: "most tokens to generate (default 256)" },
  temperature: { type: "string", placeholder: "float", short: "t", description: "sampling temperature; 0 = greedy (default 0.8)" },
  // The same flags as `halo run` / `halo chat`.
  seed: MODEL_FLAGS["seed"]!,
  "top-k": MODEL_FLAGS["top-k"]!,
  "top-p": MODEL_FLAGS["top-p"]!,
  ...BACKEND_FLAGS,
  "context-length": MODEL_FLAGS["context-length"]!,
  "no-verify": MODEL_FLAGS["no-verify"]!,
  ...SPECULATIVE_FLAGS,
  stats: { type: "boolean", description: "print token counts and tok/s to stderr at the end (with speculative decoding: acceptance and tokens/step)" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo generate`. */
export const generateHelp = helpText(
  "halo generate --model <path> --prompt <text> [options]",
  "Streams the model's continuation of a prompt to stdout.",
  FLAGS,
  [
    'halo generate --model tiny.halo --prompt "Once upon a time" --max-tokens 32 --temperature 0',
    'halo generate --model tiny.halo --prompt "def main():" --temperature 0 --speculative ngram --stats',
  ],
);

/** Runs `halo generate`. */
export async function generateCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("generate", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(generateHelp);
    return 0;
  }
  const model = requireString("generate", values, "model");
  const prompt = requireString("generate", values, "prompt");
  const maxTokens = numberFlag("generate", values, "max-tokens", { integer: true, min: 0 }) ?? 256;
  const temperature = numberFlag("generate", values, "temperature", { min: 0 }) ?? 0.8;
  const seed = numberFlag("generate", values, "seed", { integer: true });
  const topK = numberFlag("generate", values, "top-k", { integer: true, min: 0 }) ?? 40;
  const topP = numberFlag("generate", values, "top-p", { min: 0, max: 1 }) ?? 0.95;
  const backend = backendFlags("generate", values);
  const speculative = speculativeFlag("generate", values, model);
  await checkBackendFlags(backend);
  const contextLength = numberFlag("generate", values, "context-length", { integer: true, min: 2 });
  const engine = await loadWithFlags(model, {
    ...backend,
    ...(contextLength !== undefined ? { contextLength } : {}),
    ...verifyOption(values),
    ...(speculative !== undefined ? { speculative } : {}),
    maxSequences: 1,
  });
  writeBackendNotice("generate", engine, ctx, backend.backendOptions);
  try {
    const controller = new AbortController();
    const onSigint = (): void => controller.abort();
    process.once("SIGINT", onSigint);
    try {
      for await (const event of engine.complete(prompt, {
        maxTokens,
        temperature,
        topK,
        topP,
        signal: controller.signal,
        ...(seed !== undefined ? { seed } : {}),
      })) {
        if (event.type === "token-delta") ctx.stdout.write(event.text);
        else if (event.type === "request-end") {
          ctx.stdout.write("\n");
          if (values["stats"] === true) {
            const t = event.timings;
            ctx.stderr.write(
              `[${event.finishReason}] prompt ${event.usage.promptTokens} tok, ${t.prefillTokensPerSecond.toFixed(1)} tok/s prefill; ` +
                `generated ${event.usage.completionTokens} tok, ${t.decodeTokensPerSecond.toFixed(1)} tok/s decode (${engine.backend})` +
                (event.speculative !== undefined ? `; ${speculativeStatsText(event.speculative, engine.speculative?.label)}` : "") +
                "\n",
            );
          }
        }
      }
    } finally {
      process.off("SIGINT", onSigint);
    }
  } finally {
    engine.dispose();
  }
  return 0;
}
