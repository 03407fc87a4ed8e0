// `halo show`: what a model is and how halo runs it — format, config, weight packing, chat template and files.
import { BUILTIN_CHAT_TEMPLATE_NAMES, chooseChatTemplate, type ChatTemplateChoice } from "@halo/engine";
import { HaloError } from "@halo/errors";
import { describeModel, openModel, type ModelSummary } from "@halo/h1b-format";
import { helpText, parseFlags, type FlagSpec } from "../args.js";
import type { CommandContext } from "../context.js";
import { CliErrorCode } from "../errors.js";
import { resolveModel } from "../hub/resolve-model.js";
import { formatBytes } from "../hub/progress-bar.js";
import { ExitCode } from "../main.js";
import { chatTemplateFlag, chatTemplateOrigin } from "./model-options.js";

const FLAGS: Record<string, FlagSpec> = {
  "chat-template": {
    type: "string",
    placeholder: "name|file",
    description: `${BUILTIN_CHAT_TEMPLATE_NAMES.join(" | ")} or a Jinja file: show what run, chat and serve use with this --chat-template`,
  },
  json: { type: "boolean", description: "print the result as JSON" },
  progress: { type: "boolean", description: "draw the download bar even when stderr is not a terminal" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** Help text of `halo show`. */
export const showHelp = helpText(
  "halo show <model path | owner/name> [--chat-template <name|file>] [--json]",
  "Shows what a model is and how halo runs it: format, architecture and config, weight packing,\n" +
    "the chat template run, chat and serve use (and where it comes from: the file, or inferred),\n" +
    "and the files with their sizes. Reads headers only. `halo inspect` lists every tensor.",
  FLAGS,
  ["halo show model.gguf", "halo show microsoft/bitnet-b1.58-2B-4T --json", "halo show tiny.h1b --chat-template plain"],
);

/** One group of tensors stored the same way. */
interface StorageGroup {
  readonly kind: "ternary" | "float";
  /** Packing (ternary) or dtype (float). */
  readonly type: string;
  /** Scale kind of ternary packings (`row`, `tensor`, `block/256`), else null. */
  readonly scale: string | null;
  readonly tensors: number;
  readonly bytes: number;
  /** Packed bits per weight (ternary only, without scales). */
  readonly bitsPerWeight: number | null;
}

/** What `halo show --json` prints. */
export interface ModelShow {
  readonly path: string;
  readonly format: string;
  readonly version: number | null;
  readonly config: ModelSummary["config"];
  readonly tokenizer: string | null;
  readonly totals: ModelSummary["totals"];
  /** The weights grouped by how they are stored. */
  readonly storage: readonly StorageGroup[];
  /** The template run, chat and serve use; `inFile` says whether the file carries one. */
  readonly chatTemplate: { readonly name: string; readonly origin: string; readonly reason: string; readonly inFile: boolean };
  readonly container: ModelSummary["container"];
  readonly files: ModelSummary["files"];
  readonly metadata: ModelSummary["metadata"];
}

function storageOf(summary: ModelSummary): StorageGroup[] {
  const groups = new Map<string, { kind: "ternary" | "float"; type: string; scale: string | null; tensors: number; bytes: number; weights: number }>();
  for (const t of summary.tensors) {
    const key = `${t.kind}:${t.type}:${t.scale ?? ""}`;
    const group = groups.get(key) ?? { kind: t.kind, type: t.type, scale: t.scale, tensors: 0, bytes: 0, weights: 0 };
    group.tensors++;
    group.bytes += t.bytes;
    group.weights += t.shape.reduce((a, b) => a * b, 1);
    groups.set(key, group);
  }
  // Ternary groups first: they are what the packing is about.
  return [...groups.values()]
    .sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "ternary" ? -1 : 1))
    .map(({ weights, ...g }) => ({ ...g, bitsPerWeight: g.kind === "ternary" ? (g.bytes * 8) / weights : null }));
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${n}`;
}

function printShow(ctx: CommandContext, s: ModelShow, template: ChatTemplateChoice, origin: string): void {
  const c = s.config;
  const row = (label: string, text: string): void => {
    ctx.stdout.write(`  ${label.padEnd(15)}${text}\n`);
  };
  ctx.stdout.write(`${s.path}\n`);
  row(
    "format",
    `${s.format}${s.version === null ? "" : ` v${s.version}`}${s.container === null ? "" : `, alignment ${s.container.alignment} B, ${s.container.checksums} CRC-32 checksums`}`,
  );
  row(
    "architecture",
    `${c.architecture}: ${c.numLayers} layers, hidden ${c.hiddenSize}, ffn ${c.intermediateSize} (${c.activation}), ` +
      `heads ${c.numHeads}/${c.numKvHeads} × ${c.headDim}, ${c.tiedEmbeddings ? "tied" : "untied"} head${c.hadamardRotated ? ", Hadamard-rotated" : ""}`,
  );
  row("context", `${c.maxPositionEmbeddings} positions trained, rope θ ${c.ropeTheta}, rms eps ${c.rmsNormEps}`);
  row("vocabulary", `${c.vocabSize} ids, tokenizer ${s.tokenizer ?? "none"}; bos ${c.bosTokenId ?? "none"}, eos ${c.eosTokenIds.join(", ") || "none"}`);
  const t = s.totals;
  row("parameters", `${formatCount(t.parameters)} (${formatCount(t.ternaryWeights)} ternary); file ${t.fileBitsPerParameter.toFixed(2)} bits/parameter`);
  s.storage.forEach((g, i) => {
    const detail = g.kind === "ternary" ? `ternary ${g.type}, ${g.bitsPerWeight!.toFixed(3)} bits/weight, ${g.scale} scale` : `${g.type}`;
    row(i === 0 ? "weights" : "", `${detail}: ${g.tensors} tensor${g.tensors === 1 ? "" : "s"}, ${formatBytes(g.bytes)}`);
  });
  // An inferred template whose reason starts "inferred:" had nothing to pass over; otherwise the reason says what the file held.
  const noneInFile = template.origin === "inferred" && template.reason.startsWith("inferred:");
  row("chat template", `${template.name} — ${origin}${noneInFile ? " (none in the file)" : ""}`);
  s.files.forEach((f, i) => row(i === 0 ? "files" : "", `${f.path}  ${formatBytes(f.bytes)}`));
}

/** Runs `halo show`. */
export async function showCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseFlags("show", argv, FLAGS, 1);
  if (values["help"] === true) {
    ctx.stdout.write(showHelp);
    return ExitCode.OK;
  }
  const target = positionals[0];
  if (target === undefined) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "which model?", { hint: "e.g. `halo show model.gguf` or `halo show microsoft/bitnet-b1.58-2B-4T`" });
  }
  const flag = chatTemplateFlag("show", values);
  const path = await resolveModel(target, ctx, { progress: values["progress"] === true });
  const model = await openModel(path);
  try {
    const summary = describeModel(model, path);
    const template = chooseChatTemplate(model, flag === undefined ? {} : { requested: flag.template });
    const origin = chatTemplateOrigin(template, flag);
    const show: ModelShow = {
      path: summary.path,
      format: summary.format,
      version: summary.version,
      config: summary.config,
      tokenizer: summary.tokenizer,
      totals: summary.totals,
      storage: storageOf(summary),
      chatTemplate: { name: template.name, origin: template.origin, reason: origin, inFile: summary.chatTemplate },
      container: summary.container,
      files: summary.files,
      metadata: summary.metadata,
    };
    if (values["json"] === true) ctx.stdout.write(`${JSON.stringify(show, null, 2)}\n`);
    else printShow(ctx, show, template, origin);
  } finally {
    model.close();
  }
  return ExitCode.OK;
}
