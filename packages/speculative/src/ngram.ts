// Prompt lookup: draft the tokens that followed the most recent earlier occurrence of the sequence's last n tokens.
import { HaloError } from "@halo/errors";
import type { Draft, DraftRequest, Drafter, DrafterSequence } from "./drafter.js";
import { SpeculativeErrorCode } from "./errors.js";

/** Options of {@link createNgramDrafter}. */
export interface NgramDrafterOptions {
  /** Shortest suffix matched, integer in [1, maxN]. Default 2 (a single token repeats too often to predict much). */
  readonly minN?: number;
  /** Longest suffix matched, integer in [minN, 8]. Default 4. Longer matches are tried first. */
  readonly maxN?: number;
}

/** The defaults of {@link NgramDrafterOptions}. */
export const NGRAM_DEFAULTS = { minN: 2, maxN: 4 } as const;

/** Most tokens one lookup drafts (the policy usually asks for fewer). */
export const NGRAM_MAX_DRAFT = 16;

/**
 * Prompt-lookup drafting (Saxena 2023; llama.cpp's `lookup`): the last `n` tokens of the sequence
 * (prompt and output together) are looked up among their earlier occurrences, longest `n` first,
 * and the tokens that followed the most recent occurrence are the draft — so text that quotes,
 * summarises or edits its input drafts itself. The index is incremental (each new token adds one
 * entry per `n`), so a round costs O(maxN) lookups, not a scan of the context. The draft length
 * adapts per `n`: sizes whose drafts were rejected recently draft fewer tokens.
 *
 * @throws HaloError `SPECULATIVE_BAD_OPTION` for sizes out of range.
 * @example
 * ```ts
 * const sequence = createNgramDrafter({ minN: 2, maxN: 4 }).openSequence();
 * sequence.draft({ context: [5, 6, 7, 8, 5, 6], maxTokens: 2, hidden: null }).tokens; // [7, 8]
 * ```
 */
export function createNgramDrafter(options: NgramDrafterOptions = {}): Drafter {
  const { minN, maxN } = resolveNgramOptions(options);
  return {
    kind: "ngram",
    label: `ngram ${minN}-${maxN}`,
    needsHidden: false,
    maxDraftTokens: NGRAM_MAX_DRAFT,
    openSequence: () => new NgramSequence(minN, maxN),
    dispose: () => undefined,
  };
}

function resolveNgramOptions(options: NgramDrafterOptions): { minN: number; maxN: number } {
  if (typeof options !== "object" || options === null) throw badOption("ngram", "an object { minN?, maxN? }", options);
  for (const key of Object.keys(options)) if (key !== "minN" && key !== "maxN") throw badOption(`ngram.${key}`, "minN or maxN", key);
  const maxN = options.maxN ?? Math.max(NGRAM_DEFAULTS.maxN, options.minN ?? 0);
  const minN = options.minN ?? Math.min(NGRAM_DEFAULTS.minN, maxN);
  if (!Number.isInteger(maxN) || maxN < 1 || maxN > 8) throw badOption("ngram.maxN", "an integer in [1, 8]", maxN);
  if (!Number.isInteger(minN) || minN < 1 || minN > maxN) throw badOption("ngram.minN", `an integer in [1, maxN = ${maxN}]`, minN);
  return { minN, maxN };
}

function badOption(field: string, expected: string, actual: unknown): HaloError {
  return new HaloError(SpeculativeErrorCode.SPECULATIVE_BAD_OPTION, `invalid prompt-lookup option ${field}`, {
    field,
    expected,
    actual: typeof actual === "number" || typeof actual === "string" ? actual : typeof actual,
    hint: "Prompt lookup matches suffixes of 1 to 8 tokens; the defaults (2 to 4) suit most text",
  });
}

/** Acceptance counts of one n-gram size, decayed so recent rounds weigh most. */
interface SizeRecord {
  drafted: number;
  accepted: number;
}

const DECAY = 0.9;

class NgramSequence implements DrafterSequence {
  /** The context indexed so far (a prefix of each request's context, else rebuilt). */
  private tokens: number[] = [];
  /** Per n (index n − minN): n-gram key → end position of its most recent occurrence whose next token is known. */
  private readonly index: Map<string, number>[];
  private readonly records: SizeRecord[];
  /** The n of the last draft, for {@link verified}. */
  private lastN = 0;

  constructor(
    private readonly minN: number,
    private readonly maxN: number,
  ) {
    this.index = Array.from({ length: maxN - minN + 1 }, () => new Map<string, number>());
    this.records = Array.from({ length: maxN - minN + 1 }, () => ({ drafted: 0, accepted: 0 }));
  }

  draft(request: DraftRequest): Draft {
    const context = request.context;
    this.sync(context);
    const length = context.length;
    for (let n = Math.min(this.maxN, length - 1); n >= this.minN; n--) {
      const end = this.index[n - this.minN]!.get(key(context, length - n, n));
      if (end === undefined) continue;
      const want = Math.min(request.maxTokens, NGRAM_MAX_DRAFT, this.lengthFor(n));
      const tokens: number[] = [];
      // The continuation may run into the suffix itself and on into the draft (a repeating pattern continues).
      for (let i = 1; i <= want; i++) {
        const at = end + i;
        tokens.push(at < length ? context[at]! : tokens[at - length]!);
      }
      this.lastN = n;
      return { tokens };
    }
    this.lastN = 0;
    return { tokens: [] };
  }

  verified(drafted: number, accepted: number): void {
    if (this.lastN === 0 || drafted === 0) return;
    const record = this.records[this.lastN - this.minN]!;
    record.drafted = DECAY * record.drafted + drafted;
    record.accepted = DECAY * record.accepted + accepted;
  }

  close(): void {
    this.tokens = [];
    for (const map of this.index) map.clear();
  }

  /** Draft length for a match of size n: long while its drafts are accepted, down to 1 when they are not. */
  private lengthFor(n: number): number {
    const { drafted, accepted } = this.records[n - this.minN]!;
    const rate = (accepted + 1.5) / (drafted + 2); // prior 3/4 before any verdict: a first match drafts 9
    return Math.max(1, Math.round(NGRAM_MAX_DRAFT * rate * rate));
  }

  /** Indexes every n-gram of `context` whose next token is known (ends before the last token). */
  private sync(context: readonly number[]): void {
    let same = 0;
    const limit = Math.min(this.tokens.length, context.length);
    while (same < limit && this.tokens[same] === context[same]) same++;
    if (same < this.tokens.length) {
      // Not an extension of what was indexed (a rewound session): start over.
      this.tokens = [];
      for (const map of this.index) map.clear();
      same = 0;
    }
    for (let i = this.tokens.length; i < context.length; i++) this.tokens.push(context[i]!);
    // An n-gram ending at position e is indexed once position e + 1 exists: end positions up to length − 2.
    const last = context.length - 2;
    const first = Math.max(0, same - 1);
    for (let end = first; end <= last; end++) {
      for (let n = this.minN; n <= this.maxN && n <= end + 1; n++) this.index[n - this.minN]!.set(key(context, end - n + 1, n), end);
    }
  }
}

function key(tokens: readonly number[], start: number, n: number): string {
  let out = String(tokens[start]);
  for (let i = 1; i < n; i++) out += `,${tokens[start + i]}`;
  return out;
}
