// `halo pull`: download a Hugging Face repository (or one file by URL) into the model cache.
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { HaloError } from "@halo/errors";
import { CliErrorCode } from "../errors.js";
import { ExitCode } from "../main.js";
import { modelCacheDir } from "../hub/cache-dir.js";
import { formatBytes } from "../hub/progress-bar.js";
import { parsePullSpec } from "../hub/pull.js";
import { pullWithProgress } from "../hub/resolve-model.js";

const FLAGS: Record<string, FlagSpec> = {
  include: { type: "string", placeholder: "glob", multiple: true, description: "only files matching this glob (repeatable), e.g. '*.gguf'" },
  convert: { type: "boolean", description: "also write the snapshot as model.halo (faster to load)" },
  progress: { type: "boolean", description: "draw the progress bar even when stderr is not a terminal" },
  json: { type: "boolean", description: "print the result as JSON" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo pull`. */
export const pullHelp = `${helpText(
  "halo pull <owner/name[@revision] | url> [options]",
  "Downloads a model from the Hugging Face hub into the cache, checking every file's size and\nsha256 against the hub; an interrupted download resumes where it stopped.",
  FLAGS,
  [
    "halo pull microsoft/bitnet-b1.58-2B-4T",
    "halo pull microsoft/bitnet-b1.58-2B-4T --convert",
    "halo pull microsoft/bitnet-b1.58-2B-4T-gguf --include '*i2_s.gguf'",
    "halo pull https://huggingface.co/owner/name/resolve/main/model.gguf",
    "HF_ENDPOINT=https://hf-mirror.com halo pull owner/name",
  ],
).trimEnd()}

Environment:
  HF_TOKEN        access token for private or gated repositories
  HF_ENDPOINT     hub base URL (default https://huggingface.co)
  HALO_CACHE_DIR  cache root (default ~/.cache/halo/models; now ${"%CACHE%"})
`;

/** Runs `halo pull`. */
export async function pullCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags("pull", argv, FLAGS, 1);
  if (values["help"] === true) {
    ctx.stdout.write(pullHelp.replace("%CACHE%", modelCacheDir(ctx.env)));
    return ExitCode.OK;
  }
  const target = positionals[0];
  if (target === undefined) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "which model?", { hint: "e.g. `halo pull microsoft/bitnet-b1.58-2B-4T`" });
  }
  const spec = parsePullSpec(target);
  const started = Date.now();
  const result = await pullWithProgress(spec, ctx, {
    progress: values["progress"] === true,
    ...(values["include"] !== undefined ? { include: values["include"] as string[] } : {}),
    convert: values["convert"] === true,
  });
  const fetched = result.files.reduce((n, f) => n + f.fetchedBytes, 0);
  const total = result.files.reduce((n, f) => n + f.bytes, 0);
  if (values["json"] === true) {
    ctx.stdout.write(
      `${JSON.stringify({ path: result.path, converted: result.converted, commit: result.commit, files: result.files, seconds: (Date.now() - started) / 1000 }, null, 2)}\n`,
    );
  } else {
    ctx.stdout.write(
      `${result.files.length} file(s), ${formatBytes(total)} (${formatBytes(fetched)} downloaded, ${result.files.filter((f) => f.cached).length} already cached) in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `${result.path}\n${result.converted !== undefined ? `${result.converted}\n` : ""}`,
    );
  }
  return ExitCode.OK;
}
