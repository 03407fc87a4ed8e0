// `halo run`: answer one prompt with the model's chat template (or complete it raw) and stream the text.
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { HaloError } from "@halo/errors";
import { CliErrorCode } from "../errors.js";
import { ExitCode } from "../main.js";
import { loadFromFlags, MODEL_FLAGS, samplingFlags, statsLine } from "./model-options.js";

const FLAGS: Record<string, FlagSpec> = {
  ...MODEL_FLAGS,
  prompt: { type: "string", placeholder: "text", short: "p", description: "the prompt (or give it as arguments, or pipe it on stdin)" },
  raw: { type: "boolean", description: "complete the text as is, without the chat template" },
  stats: { type: "boolean", description: "print token counts and tok/s to stderr at the end" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo run`. */
export const runHelp = helpText(
  "halo run [--model <path|owner/name>] [options] <prompt…>",
  "Answers one prompt and streams the answer to stdout. Without --model it uses\nmicrosoft/bitnet-b1.58-2B-4T from the cache, pulling it on first use. Ctrl-C stops the answer.",
  FLAGS,
  [
    'halo run "What is a ternary weight?"',
    'halo run --model tiny.halo --temperature 0 --max-tokens 32 "Hello"',
    'echo "Summarise: …" | halo run --stats',
    'halo run --raw --model model.gguf "Once upon a time"',
    'halo run --model model.halo --speculative ngram --stats "Repeat after me: …"',
  ],
);

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
  return text;
}

/** Runs `halo run`. */
export async function runCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags("run", argv, FLAGS, Infinity);
  if (values["help"] === true) {
    ctx.stdout.write(runHelp);
    return ExitCode.OK;
  }
  const sampling = samplingFlags("run", values);
  let prompt = (values["prompt"] as string | undefined) ?? (positionals.length > 0 ? positionals.join(" ") : undefined);
  const stdin = ctx.stdin;
  if (prompt === undefined && stdin !== undefined && stdin.isTTY !== true) prompt = (await readAll(stdin)).trim();
  if (prompt === undefined || prompt === "") {
    throw new HaloError(CliErrorCode.CLI_USAGE, "no prompt", { hint: 'Give one: halo run "your question" (or --prompt, or pipe it on stdin)' });
  }
  const engine = await loadFromFlags("run", values, ctx);
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once("SIGINT", onSigint);
  let aborted = false;
  try {
    const options = { ...sampling, signal: controller.signal };
    const system = values["system"] as string | undefined;
    const events =
      values["raw"] === true
        ? engine.complete(prompt, options)
        : engine.chat([...(system !== undefined ? [{ role: "system" as const, content: system }] : []), { role: "user" as const, content: prompt }], options);
    for await (const event of events) {
      if (event.type === "token-delta") ctx.stdout.write(event.text);
      else if (event.type === "request-end") {
        ctx.stdout.write("\n");
        aborted = event.finishReason === "abort";
        if (values["stats"] === true) ctx.stderr.write(`${statsLine(event, engine.backend, engine.speculative?.label)}\n`);
      }
    }
  } finally {
    process.off("SIGINT", onSigint);
    engine.dispose();
  }
  return aborted ? ExitCode.INTERRUPTED : ExitCode.OK;
}
