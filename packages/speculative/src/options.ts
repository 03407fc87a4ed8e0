// Speculative decoding options: what loadModel takes, what a request may override, checked in one place.
import { HaloError } from "@halo/errors";
import type { DrafterKind } from "./drafter.js";
import { SpeculativeErrorCode } from "./errors.js";
import type { NgramDrafterOptions } from "./ngram.js";

/** Every drafter name, in the order the CLI lists them. */
export const DRAFTER_KINDS: readonly DrafterKind[] = ["ngram", "draft-model", "medusa"];

/**
 * When to draft. `"auto"` (default): a round drafts only when the cost model says it pays (so
 * speculation never makes decoding slower); `"always"`: draft whenever the drafter has a guess
 * (for measuring acceptance and for tests).
 */
export type SpeculativePolicy = "auto" | "always";

/**
 * `loadModel`'s `speculative` option: which drafter and how far it drafts.
 *
 * @example
 * ```ts
 * await loadModel("model.halo", { speculative: { drafter: "ngram" } });
 * await loadModel("model.halo", { speculative: { drafter: "draft-model", draftModel: "draft.halo", maxDraft: 4 } });
 * await loadModel("model.halo", { speculative: { drafter: "medusa", medusa: "heads.h1b-medusa" } });
 * ```
 */
export interface SpeculativeOptions {
  readonly drafter: DrafterKind;
  /** The draft model's file (`drafter: "draft-model"`): any format halo opens, with the model's vocabulary. */
  readonly draftModel?: string;
  /** The backend of the draft model (a name as `loadModel`'s `backend`). Default: the model's backend. */
  readonly draftBackend?: string;
  /** The `.h1b-medusa` heads file (`drafter: "medusa"`). */
  readonly medusa?: string;
  /**
   * Most tokens drafted per round, integer in [1, 16]. Default {@link DEFAULT_MAX_DRAFT} (4; prompt
   * lookup {@link NGRAM_DEFAULT_MAX_DRAFT}, 8: its drafts are free and long runs of a quote are
   * common; Medusa: its head count at most). The policy drafts fewer when more would not pay.
   */
  readonly maxDraft?: number;
  /** When to draft. Default `"auto"`. */
  readonly policy?: SpeculativePolicy;
  /** Prompt-lookup sizes (`drafter: "ngram"`). */
  readonly ngram?: NgramDrafterOptions;
}

/** A request's override: `false` turns drafting off for it; an object changes the draft length or policy. */
export type SpeculativeRequestOptions = boolean | { readonly maxDraft?: number; readonly policy?: SpeculativePolicy };

/** Default {@link SpeculativeOptions.maxDraft} of the draft-model and Medusa drafters. */
export const DEFAULT_MAX_DRAFT = 4;
/** Default {@link SpeculativeOptions.maxDraft} of prompt lookup. */
export const NGRAM_DEFAULT_MAX_DRAFT = 8;
/** Largest {@link SpeculativeOptions.maxDraft}. */
export const MAX_DRAFT_LIMIT = 16;

const LOAD_KEYS = ["drafter", "draftModel", "draftBackend", "medusa", "maxDraft", "policy", "ngram"] as const;

function bad(field: string, expected: string, actual: unknown, hint: string): HaloError {
  return new HaloError(SpeculativeErrorCode.SPECULATIVE_BAD_OPTION, `invalid speculative option ${field}`, {
    field,
    expected,
    actual: typeof actual === "string" || typeof actual === "number" || typeof actual === "boolean" ? actual : actual === null ? "null" : typeof actual,
    hint,
  });
}

function checkMaxDraft(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_DRAFT_LIMIT) {
    throw bad(field, `an integer in [1, ${MAX_DRAFT_LIMIT}]`, value, "Drafts of 2 to 6 tokens pay best; pass speculative: false to turn drafting off");
  }
  return value;
}

function checkPolicy(value: unknown, field: string): SpeculativePolicy | undefined {
  if (value === undefined) return undefined;
  if (value !== "auto" && value !== "always") throw bad(field, '"auto" or "always"', value, '"auto" drafts only when the cost model says it pays');
  return value;
}

/**
 * Checks `loadModel`'s `speculative` option: a known drafter with the file it needs, and no
 * unknown key (a misspelt option would otherwise be ignored).
 *
 * @throws HaloError `SPECULATIVE_BAD_OPTION` naming the field.
 * @example
 * ```ts
 * checkSpeculativeOptions({ drafter: "ngram", maxDraft: 6 }); // ok
 * checkSpeculativeOptions({ drafter: "medusa" }); // throws: medusa needs the heads file
 * ```
 */
export function checkSpeculativeOptions(options: SpeculativeOptions): void {
  if (typeof options !== "object" || options === null) {
    throw bad("speculative", 'an object such as { drafter: "ngram" }', options, `Pick a drafter: ${DRAFTER_KINDS.join(", ")}`);
  }
  for (const key of Object.keys(options)) {
    if (!(LOAD_KEYS as readonly string[]).includes(key))
      throw bad(`speculative.${key}`, `one of ${LOAD_KEYS.join(", ")}`, key, "Speculative options are camelCase");
  }
  if (!DRAFTER_KINDS.includes(options.drafter)) {
    throw bad("speculative.drafter", DRAFTER_KINDS.join(", "), options.drafter, "ngram needs nothing; draft-model needs draftModel; medusa needs medusa");
  }
  const files = { draftModel: "draft-model", medusa: "medusa" } as const;
  for (const [field, drafter] of Object.entries(files)) {
    const value = options[field as keyof typeof files];
    if (options.drafter === drafter && (typeof value !== "string" || value === "")) {
      throw bad(
        `speculative.${field}`,
        `the path of the ${drafter === "medusa" ? ".h1b-medusa heads file" : "draft model file"}`,
        value,
        `The ${drafter} drafter reads its weights from this file`,
      );
    }
    if (options.drafter !== drafter && value !== undefined) {
      throw bad(`speculative.${field}`, `nothing (it is for the ${drafter} drafter)`, value, `Use drafter: "${drafter}" with this file, or leave it out`);
    }
  }
  if (options.draftBackend !== undefined && (options.drafter !== "draft-model" || typeof options.draftBackend !== "string")) {
    throw bad(
      "speculative.draftBackend",
      'a backend name, with drafter "draft-model"',
      options.draftBackend,
      "Leave it out to run the draft model on the model's backend",
    );
  }
  if (options.ngram !== undefined && options.drafter !== "ngram") {
    throw bad("speculative.ngram", 'nothing (it is for drafter "ngram")', "an object", 'Use drafter: "ngram" with these sizes');
  }
  checkMaxDraft(options.maxDraft, "speculative.maxDraft");
  checkPolicy(options.policy, "speculative.policy");
}

/**
 * Checks a request's `speculative` override.
 *
 * @throws HaloError `SPECULATIVE_BAD_OPTION`.
 * @example
 * ```ts
 * checkSpeculativeRequest(false); // ok: this request decodes plainly
 * checkSpeculativeRequest({ maxDraft: 2 }); // ok
 * ```
 */
export function checkSpeculativeRequest(value: SpeculativeRequestOptions): void {
  if (typeof value === "boolean") return;
  if (typeof value !== "object" || value === null) {
    throw bad("speculative", "true, false or { maxDraft?, policy? }", value, "Pass false to decode this request without drafting");
  }
  for (const key of Object.keys(value)) {
    if (key !== "maxDraft" && key !== "policy") throw bad(`speculative.${key}`, "maxDraft or policy", key, "The drafter is chosen when the model loads");
  }
  checkMaxDraft(value.maxDraft, "speculative.maxDraft");
  checkPolicy(value.policy, "speculative.policy");
}
