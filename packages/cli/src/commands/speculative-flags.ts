// The speculative decoding flags of every command that generates (`run`, `chat`, `generate`, `serve`, `bench`), their checks, and the stats text.
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { DRAFTER_KINDS, type DrafterKind, type Engine, type SpeculativeCounts, type SpeculativeOptions, type SpeculativePolicy } from "@halo/engine";
import { HaloError, isHaloError } from "@halo/errors";
import { tinyDraftModelPath, tinyModelPath } from "@halo/model-tiny";
import { numberFlag, type FlagSpec } from "../args.js";
import { CliErrorCode } from "../errors.js";

/**
 * The CLI's name of a drafter: `draft` for the engine's `draft-model`, the others as the engine
 * names them.
 *
 * @example
 * ```ts
 * cliDrafterName("draft-model"); // "draft"
 * ```
 */
export function cliDrafterName(kind: DrafterKind): string {
  return kind === "draft-model" ? "draft" : kind;
}

/** The values `--speculative` takes, in the engine's order (`ngram`, `draft`, `medusa`). */
export const SPECULATIVE_CHOICES: readonly string[] = DRAFTER_KINDS.map(cliDrafterName);

const POLICIES: readonly SpeculativePolicy[] = ["auto", "always"];

/**
 * The flags that turn speculative decoding on: the drafter, its file, how far it drafts and when.
 * The answers are the same as without them (greedy, and sampled with a seed: token for token).
 */
export const SPECULATIVE_FLAGS: Readonly<Record<string, FlagSpec>> = {
  speculative: {
    type: "string",
    placeholder: SPECULATIVE_CHOICES.join("|"),
    description:
      "speculative decoding, the same text in fewer steps: ngram (prompt lookup, needs nothing), draft (a small draft model: --draft-model), medusa (extra heads: --medusa)",
  },
  "draft-model": {
    type: "string",
    placeholder: "path",
    description: "the draft model file of --speculative draft, with the model's vocabulary (halo-tiny's own draft model when the model is halo-tiny)",
  },
  medusa: { type: "string", placeholder: "file", description: "the .h1b-medusa heads file of --speculative medusa, trained for the model" },
  "max-draft": { type: "string", placeholder: "n", description: "most tokens drafted per step, 1 to 16 (default 4; ngram 8; medusa: its head count at most)" },
  "speculative-policy": {
    type: "string",
    placeholder: POLICIES.join("|"),
    description: "auto: draft only when the measured step cost says it pays (default); always: draft whenever the drafter has a guess",
  },
};

/** Whether `path` is the shipped halo-tiny model file (the same file, whatever the spelling of its path). */
function isTinyModel(path: string | undefined): boolean {
  if (path === undefined) return false;
  try {
    return realpathSync(resolve(path)) === realpathSync(tinyModelPath);
  } catch {
    return false;
  }
}

function usage(message: string, field: string, hint: string, actual?: unknown): HaloError {
  return new HaloError(CliErrorCode.CLI_USAGE, message, { field, ...(actual !== undefined ? { actual } : {}), hint });
}

/**
 * Reads the {@link SPECULATIVE_FLAGS} into `loadModel`'s `speculative` option (undefined without
 * `--speculative`). `model` is the model file the command loads, when known before loading: with
 * `--speculative draft` and no `--draft-model`, the shipped halo-tiny takes its own draft model;
 * any other model needs `--draft-model`. Every wrong combination is a `CLI_USAGE` error naming the
 * flag: an unknown drafter, `--medusa` without `--speculative medusa` or the reverse,
 * `--draft-model` without `--speculative draft`, `--max-draft` or `--speculative-policy` without
 * `--speculative`.
 *
 * @example
 * ```ts
 * speculativeFlag("run", { speculative: "ngram", "max-draft": "6" }); // { drafter: "ngram", maxDraft: 6 }
 * speculativeFlag("run", { speculative: "draft", "draft-model": "d.halo" }); // { drafter: "draft-model", draftModel: "d.halo" }
 * ```
 */
export function speculativeFlag(command: string, values: Record<string, unknown>, model?: string): SpeculativeOptions | undefined {
  const raw = values["speculative"];
  const draftModel = values["draft-model"] as string | undefined;
  const medusa = values["medusa"] as string | undefined;
  const help = `Run \`halo ${command} --help\``;
  if (raw === undefined) {
    for (const flag of ["draft-model", "medusa", "max-draft", "speculative-policy"]) {
      if (values[flag] === undefined) continue;
      const needs =
        flag === "draft-model" ? "--speculative draft" : flag === "medusa" ? "--speculative medusa" : `--speculative ${SPECULATIVE_CHOICES.join("|")}`;
      throw usage(`--${flag} is for speculative decoding; it needs ${needs}`, flag, `Add ${needs}, or leave --${flag} out`);
    }
    return undefined;
  }
  const index = SPECULATIVE_CHOICES.indexOf(String(raw));
  if (typeof raw !== "string" || index < 0) {
    throw usage(`--speculative must be ${SPECULATIVE_CHOICES.join(", ")}; got "${String(raw)}"`, "speculative", `${help} for what each drafter needs`, raw);
  }
  const drafter = DRAFTER_KINDS[index]!;
  if (draftModel !== undefined && drafter !== "draft-model") {
    throw usage(`--draft-model is for --speculative draft, not --speculative ${raw}`, "draft-model", "Pass --speculative draft with it, or leave it out");
  }
  if (medusa !== undefined && drafter !== "medusa") {
    throw usage(`--medusa is for --speculative medusa, not --speculative ${raw}`, "medusa", "Pass --speculative medusa with it, or leave it out");
  }
  const maxDraft = numberFlag(command, values, "max-draft", { integer: true, min: 1 });
  const policyRaw = values["speculative-policy"];
  if (policyRaw !== undefined && (typeof policyRaw !== "string" || !(POLICIES as readonly string[]).includes(policyRaw))) {
    throw usage(`--speculative-policy must be ${POLICIES.join(", ")}; got "${String(policyRaw)}"`, "speculative-policy", help, policyRaw);
  }
  const common = {
    ...(maxDraft !== undefined ? { maxDraft } : {}),
    ...(policyRaw !== undefined ? { policy: policyRaw as SpeculativePolicy } : {}),
  };
  if (drafter === "medusa") {
    if (medusa === undefined || medusa === "") {
      throw usage(
        "--speculative medusa needs --medusa <file>",
        "medusa",
        "Pass the .h1b-medusa heads file trained for this model (halo-tiny's is halo-tiny.h1b-medusa)",
      );
    }
    return { drafter, medusa, ...common };
  }
  if (drafter === "draft-model") {
    const file = draftModel !== undefined && draftModel !== "" ? draftModel : isTinyModel(model) ? tinyDraftModelPath : undefined;
    if (file === undefined) {
      throw usage(
        "--speculative draft needs --draft-model <path>",
        "draft-model",
        "Pass a smaller model with the same vocabulary as the model (only halo-tiny brings its own draft model)",
      );
    }
    return { drafter, draftModel: file, ...common };
  }
  return { drafter, ...common };
}

// The CLI flag of each `speculative.<key>` option the engine names in its errors.
const FLAG_OF_SPECULATIVE_OPTION: Readonly<Record<string, string>> = {
  drafter: "--speculative",
  draftModel: "--draft-model",
  medusa: "--medusa",
  maxDraft: "--max-draft",
  policy: "--speculative-policy",
};

/**
 * The engine's refusal of a `speculative` option (`SPECULATIVE_BAD_OPTION`, field
 * `speculative.<key>`) as a usage error naming the flag (`--max-draft must be an integer in [1, 16]`);
 * any other error as is.
 *
 * @example
 * ```ts
 * const engine = await loadModel(path, options).catch((e: unknown) => { throw speculativeOptionError(e); });
 * ```
 */
export function speculativeOptionError(error: unknown): unknown {
  if (!isHaloError(error) || error.code !== "SPECULATIVE_BAD_OPTION") return error;
  const key = error.field?.startsWith("speculative.") === true ? error.field.slice("speculative.".length) : undefined;
  const flag = key === undefined ? undefined : FLAG_OF_SPECULATIVE_OPTION[key];
  if (flag === undefined) return error;
  return new HaloError(CliErrorCode.CLI_USAGE, `${flag} must be ${typeof error.expected === "string" ? error.expected : "valid"}`, {
    field: flag.slice(2),
    ...(error.actual !== undefined ? { actual: error.actual } : {}),
    cause: error,
  });
}

/**
 * A request's speculative counters in words, for the stats lines:
 * `speculative ngram 2-4: 18 of 24 drafted tokens accepted (75.0 %), 1.39 tokens/step (46 steps, 14 verifying drafts)`.
 * `label` is the engine's (`engine.speculative.label`); the drafter's name stands in without it.
 *
 * @example
 * ```ts
 * if (end.speculative !== undefined) ctx.stderr.write(`${speculativeStatsText(end.speculative, engine.speculative?.label)}\n`);
 * ```
 */
export function speculativeStatsText(counts: SpeculativeCounts, label?: string): string {
  return (
    `speculative ${label ?? cliDrafterName(counts.drafter)}: ${counts.acceptedTokens} of ${counts.draftedTokens} drafted tokens accepted ` +
    `(acceptance ${(counts.acceptanceRate * 100).toFixed(1)} %), ${counts.tokensPerStep.toFixed(2)} tokens/step ` +
    `(${counts.decodeSteps} steps, ${counts.verifySteps} verifying drafts)`
  );
}

/**
 * What runs speculative decoding, for a command's load line: `speculative decoding: ngram 2-4`, or
 * null when the engine decodes one token per step.
 */
export function speculativeNotice(engine: Pick<Engine, "speculative">): string | null {
  return engine.speculative === null ? null : `speculative decoding: ${engine.speculative.label}`;
}
