// `halo eval`: run token ids from position 0 as one sequence and write every position's logits.
import { open } from "node:fs/promises";
import { writeBackendNotice } from "../backend-notice.js";
import { HaloError } from "@halo/errors";
import { helpText, kvDtypeFlag, parseFlags, requireString, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { BACKEND_FLAGS, backendFlags, checkBackendFlags, LOAD_FLAGS, loadSwitches, loadWithFlags, NO_VERIFY_HELP } from "./model-options.js";
import { CliErrorCode } from "../errors.js";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", placeholder: "path", short: "m", description: "model file or Hugging Face snapshot directory" },
  tokens: { type: "string", placeholder: "id,id,…", description: "comma-separated token ids, run from position 0" },
  "logits-out": { type: "string", placeholder: "path", short: "o", description: "output file: float32 little-endian [n_tokens][vocab]" },
  ...BACKEND_FLAGS,
  "kv-dtype": LOAD_FLAGS["kv-dtype"]!,
  "no-verify": { type: "boolean", description: NO_VERIFY_HELP },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo eval`. */
export const evalHelp = helpText(
  "halo eval --model <path> --tokens <id,id,...> --logits-out <file>",
  "Runs the token ids as one sequence from position 0 and writes the logits of every position\n" +
    "as float32 little-endian, shape [n_tokens][vocab]. Prints a JSON summary to stdout.",
  FLAGS,
  ["halo eval --model tiny.halo --tokens 506,72,101 --logits-out logits.f32"],
);

/** Parses `--tokens`: comma-separated non-negative integers. */
export function parseTokenList(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const ids = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  const bad = ids.findIndex((id) => !Number.isSafeInteger(id));
  if (parts.length === 0 || bad >= 0) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "--tokens must be comma-separated token ids", {
      field: "tokens",
      expected: "e.g. 128000,9906,1917",
      actual: parts[bad] ?? text,
    });
  }
  return ids;
}

/** Runs `halo eval`. */
export async function evalCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("eval", argv, FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(evalHelp);
    return 0;
  }
  const modelPath = requireString("eval", values, "model");
  const ids = parseTokenList(requireString("eval", values, "tokens"));
  const out = requireString("eval", values, "logits-out");
  const backend = backendFlags("eval", values);
  const kvDtype = kvDtypeFlag("eval", values);
  await checkBackendFlags(backend);
  const engine = await loadWithFlags(modelPath, {
    ...backend,
    maxSequences: 1,
    ...(kvDtype !== undefined ? { kvDtype } : {}),
    ...loadSwitches(values),
  });
  writeBackendNotice("eval", engine, ctx, backend.backendOptions);
  try {
    const vocab = engine.config.vocabSize;
    let file;
    try {
      file = await open(out, "w");
    } catch (cause) {
      throw new HaloError(CliErrorCode.CLI_IO, "cannot write the logits file", { path: out, cause, hint: "Check the directory exists and is writable" });
    }
    try {
      let written = 0;
      await engine.evaluate(ids, async (logits) => {
        const bytes = new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength);
        await file.write(bytes);
        written += logits.length / vocab;
      });
      ctx.stdout.write(`${JSON.stringify({ tokens: ids.length, vocab, rows: written, file: out, dtype: "float32-le", backend: engine.backend })}\n`);
    } finally {
      await file.close();
    }
  } finally {
    engine.dispose();
  }
  return 0;
}
