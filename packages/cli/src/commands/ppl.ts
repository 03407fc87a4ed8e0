// `halo ppl`: perplexity of a text file (the seed's independent windows, or a sliding window with --stride).
import { readFile } from "node:fs/promises";
import { writeBackendNotice } from "../backend-notice.js";
import { HaloError } from "@halo/errors";
import { helpText, kvDtypeFlag, numberFlag, parseFlags, requireString, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { BACKEND_FLAGS, backendFlags, checkBackendFlags, LOAD_FLAGS, loadSwitches, loadWithFlags, NO_VERIFY_HELP } from "./model-options.js";
import { CliErrorCode } from "../errors.js";
import { ExitCode } from "../main.js";
import { resolveModel } from "../hub/resolve-model.js";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", placeholder: "path|owner/name", short: "m", description: "model file, snapshot directory or owner/name" },
  "text-file": { type: "string", placeholder: "path", short: "f", description: "UTF-8 text to score (e.g. wikitext-2 test)" },
  "context-length": { type: "string", placeholder: "n", short: "c", description: "tokens per window (default: the model's context, at most 4096)" },
  stride: { type: "string", placeholder: "n", description: "window advance; smaller than --context-length gives a sliding window (default: no overlap)" },
  ...BACKEND_FLAGS,
  "kv-dtype": LOAD_FLAGS["kv-dtype"]!,
  json: { type: "boolean", description: "print the result as JSON" },
  "no-verify": { type: "boolean", description: NO_VERIFY_HELP },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo ppl`. */
export const pplHelp = helpText(
  "halo ppl --model <path> --text-file <file> [--context-length n] [--stride n]",
  "Perplexity = exp(mean negative log-likelihood) of a text. Default: the seed's method —\nindependent windows from position 0, each window's first token unscored. --stride below\n--context-length slides the window so every token after the first is scored once.",
  FLAGS,
  ["halo ppl --model bitnet.halo --text-file wiki.test.raw --context-length 512", "halo ppl -m tiny.halo -f notes.txt -c 128 --stride 64 --json"],
);

/** Runs `halo ppl`. */
export async function pplCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("ppl", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(pplHelp);
    return ExitCode.OK;
  }
  const textFile = requireString("ppl", values, "text-file");
  const contextLength = numberFlag("ppl", values, "context-length", { integer: true, min: 2 });
  const stride = numberFlag("ppl", values, "stride", { integer: true, min: 1 });
  const backend = backendFlags("ppl", values);
  const kvDtype = kvDtypeFlag("ppl", values);
  await checkBackendFlags(backend);
  let text: string;
  try {
    text = await readFile(textFile, "utf8");
  } catch (error) {
    throw new HaloError(CliErrorCode.CLI_IO, `cannot read the text file (${(error as NodeJS.ErrnoException).code ?? "error"})`, {
      path: textFile,
      hint: "Check the path",
    });
  }
  const path = await resolveModel(values["model"] as string | undefined, ctx, { progress: false });
  const engine = await loadWithFlags(path, {
    ...backend,
    ...(contextLength !== undefined ? { contextLength } : {}),
    maxSequences: 1,
    ...(kvDtype !== undefined ? { kvDtype } : {}),
    ...loadSwitches(values),
  });
  writeBackendNotice("ppl", engine, ctx, backend.backendOptions);
  const started = Date.now();
  try {
    const result = await engine.perplexity(text, { ...(contextLength !== undefined ? { contextLength } : {}), ...(stride !== undefined ? { stride } : {}) });
    const seconds = (Date.now() - started) / 1000;
    if (values["json"] === true) ctx.stdout.write(`${JSON.stringify({ ...result, seconds, backend: engine.backend })}\n`);
    else {
      ctx.stdout.write(
        `perplexity ${result.perplexity.toFixed(4)} (mean NLL ${result.meanNll.toFixed(4)}) over ${result.scoredTokens} scored of ${result.totalTokens} tokens, ` +
          `${result.windows} window(s); ${seconds.toFixed(1)} s on the ${engine.backend} backend\n`,
      );
    }
  } finally {
    engine.dispose();
  }
  return ExitCode.OK;
}
