// `halo models` lists the model caches with sizes; `halo rm` deletes a model from halo's cache.
import { HaloError } from "@halo/errors";
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { CliErrorCode } from "../errors.js";
import { listCachedModels, removeCachedModel } from "../hub/cache-list.js";
import { formatBytes } from "../hub/progress-bar.js";
import { ExitCode } from "../main.js";

const MODELS_FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", description: "print { haloCache, hfCache, models: [{ name, source, status, path, bytes }] }" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo models`. */
export const modelsHelp = `${helpText(
  "halo models [--json]",
  "Lists the models in halo's cache (what `halo pull` fetched) and in the Hugging Face hub cache\n" +
    "(what other tools downloaded; `run`, `chat` and `serve` use a complete snapshot from there\n" +
    "instead of downloading it again). halo never deletes from the Hugging Face cache.",
  MODELS_FLAGS,
  ["halo models", "halo models --json | jq '.models[] | select(.source == \"halo\") | .name'"],
).trimEnd()}

Environment:
  HALO_CACHE_DIR  halo's cache (default ~/.cache/halo/models)
  HF_HUB_CACHE    the Hugging Face hub cache (default $HF_HOME/hub, else ~/.cache/huggingface/hub)
`;

/** Runs `halo models`. */
export async function modelsCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseFlags("models", argv, MODELS_FLAGS);
  if (values["help"] === true) {
    ctx.stdout.write(modelsHelp);
    return ExitCode.OK;
  }
  const listing = listCachedModels(ctx.env);
  if (values["json"] === true) {
    ctx.stdout.write(`${JSON.stringify(listing, null, 2)}\n`);
    return ExitCode.OK;
  }
  if (listing.models.length === 0) {
    ctx.stdout.write(`No models cached (halo: ${listing.haloCache}; Hugging Face: ${listing.hfCache}).\nPull one: halo pull microsoft/bitnet-b1.58-2B-4T\n`);
    return ExitCode.OK;
  }
  const rows = listing.models.map((m) => [m.name, formatBytes(m.bytes), m.status, m.source === "halo" ? "halo" : "huggingface (read-only)"]);
  const header = ["NAME", "SIZE", "STATUS", "CACHE"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => `${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 2))).join("")}\n`;
  ctx.stdout.write(line(header));
  for (const row of rows) ctx.stdout.write(line(row));
  const total = listing.models.filter((m) => m.source === "halo").reduce((n, m) => n + m.bytes, 0);
  ctx.stdout.write(`\nhalo cache ${listing.haloCache} (${formatBytes(total)}); Hugging Face cache ${listing.hfCache}\n`);
  return ExitCode.OK;
}

const RM_FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", description: "print what was deleted as JSON" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo rm`. */
export const rmHelp = helpText(
  "halo rm <owner/name[@revision] | urls/<host>/<path> | path in the cache>",
  "Deletes a model from halo's cache without asking: owner/name removes every cached revision of\n" +
    "it, owner/name@revision one. Paths outside halo's cache are refused, and models in the Hugging\n" +
    "Face cache are left alone. `halo models` lists what is cached.",
  RM_FLAGS,
  ["halo rm microsoft/bitnet-b1.58-2B-4T", "halo rm acme/tiny@v2", "halo rm urls/example.com/model.gguf"],
);

/** Runs `halo rm`. */
export async function rmCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags("rm", argv, RM_FLAGS, 1);
  if (values["help"] === true) {
    ctx.stdout.write(rmHelp);
    return ExitCode.OK;
  }
  const target = positionals[0];
  if (target === undefined) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "which model?", { hint: "e.g. `halo rm microsoft/bitnet-b1.58-2B-4T`; `halo models` lists what is cached" });
  }
  const removed = removeCachedModel(ctx.env, target);
  if (values["json"] === true) ctx.stdout.write(`${JSON.stringify({ removed }, null, 2)}\n`);
  else for (const m of removed) ctx.stdout.write(`removed ${m.name} (${formatBytes(m.bytes)}, ${m.path})\n`);
  return ExitCode.OK;
}
