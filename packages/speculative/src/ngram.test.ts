// Prompt lookup: longest match first, most recent occurrence, continuation into the draft, adaptive length, and the
// incremental index checked against a brute-force lookup over growing and rewound contexts.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { createNgramDrafter, NGRAM_DEFAULTS, NGRAM_MAX_DRAFT } from "./ngram.js";
import { SpeculativeErrorCode } from "./errors.js";
import type { Draft, DrafterSequence } from "./drafter.js";

/** Drafts synchronously (prompt lookup never returns a promise). */
function draft(sequence: DrafterSequence, context: readonly number[], maxTokens: number): number[] {
  const out = sequence.draft({ context, maxTokens, hidden: null }) as Draft;
  expect(out).not.toBeInstanceOf(Promise);
  return [...out.tokens];
}

/**
 * The lookup by its definition, by scanning: for n from maxN down to minN, the most recent earlier
 * occurrence of the last n tokens (one that ends before the last token), and the `want` tokens after
 * it, reading on into the draft itself where the context ends.
 */
function bruteForce(context: readonly number[], minN: number, maxN: number, want: number): number[] {
  const length = context.length;
  for (let n = Math.min(maxN, length - 1); n >= minN; n--) {
    for (let end = length - 2; end >= n - 1; end--) {
      let match = true;
      for (let j = 0; j < n; j++) if (context[end - j] !== context[length - 1 - j]) match = false;
      if (!match) continue;
      const virtual = [...context];
      const out: number[] = [];
      for (let i = 1; i <= want; i++) {
        // The draft continues the sequence: virtual = context ++ draft.
        const token = virtual[end + i]!;
        out.push(token);
        virtual.push(token);
      }
      return out;
    }
  }
  return [];
}

// A fresh size record has the prior 3/4: round(16 · 0.75²) = 9 tokens per draft until verdicts arrive.
const FRESH_LENGTH = Math.round(NGRAM_MAX_DRAFT * 0.75 ** 2);

describe("createNgramDrafter", () => {
  it("describes itself and defaults to sizes 2-4", () => {
    const drafter = createNgramDrafter();
    expect(drafter.kind).toBe("ngram");
    expect(drafter.label).toBe(`ngram ${NGRAM_DEFAULTS.minN}-${NGRAM_DEFAULTS.maxN}`);
    expect(drafter.needsHidden).toBe(false);
    expect(drafter.maxDraftTokens).toBe(NGRAM_MAX_DRAFT);
    expect(createNgramDrafter({ minN: 5 }).label).toBe("ngram 5-5");
    expect(createNgramDrafter({ maxN: 1 }).label).toBe("ngram 1-1");
    expect(createNgramDrafter({ minN: 1, maxN: 8 }).label).toBe("ngram 1-8");
    drafter.dispose();
    drafter.dispose();
  });

  it("refuses sizes out of range and unknown keys with SPECULATIVE_BAD_OPTION naming the field", () => {
    const cases: [unknown, string][] = [
      [{ minN: 0 }, "ngram.minN"],
      [{ minN: 2.5 }, "ngram.minN"],
      [{ minN: 4, maxN: 3 }, "ngram.minN"],
      [{ maxN: 9 }, "ngram.maxN"],
      [{ maxN: 0 }, "ngram.maxN"],
      [{ minN: 9 }, "ngram.maxN"],
      [{ min: 2 }, "ngram.min"],
      [null, "ngram"],
      ["2-4", "ngram"],
    ];
    for (const [options, field] of cases) {
      let error: unknown;
      try {
        createNgramDrafter(options as never);
      } catch (caught) {
        error = caught;
      }
      expect(isHaloError(error) && error.code, JSON.stringify(options)).toBe(SpeculativeErrorCode.SPECULATIVE_BAD_OPTION);
      expect(isHaloError(error) && error.field, JSON.stringify(options)).toBe(field);
    }
  });
});

describe("prompt lookup", () => {
  it("drafts the tokens after the most recent earlier occurrence of the suffix", () => {
    const sequence = createNgramDrafter().openSequence();
    // [1, 2] occurs followed by 5, then by 6: the most recent wins.
    expect(draft(sequence, [1, 2, 5, 9, 1, 2, 6, 9, 1, 2], 2)).toEqual([6, 9]);
    // The doc example.
    expect(draft(createNgramDrafter().openSequence(), [5, 6, 7, 8, 5, 6], 2)).toEqual([7, 8]);
  });

  it("tries the longest suffix first", () => {
    // The 3-gram [1, 2, 3] last occurred followed by 9; the 2-gram [2, 3] more recently, followed by 8.
    const context = [1, 2, 3, 9, 7, 2, 3, 8, 4, 1, 2, 3];
    expect(draft(createNgramDrafter({ minN: 2, maxN: 4 }).openSequence(), context, 1)).toEqual([9]);
    // Allowed only 2-grams, the most recent 2-gram wins.
    expect(draft(createNgramDrafter({ minN: 2, maxN: 2 }).openSequence(), context, 1)).toEqual([8]);
  });

  it("drafts nothing without a match, and never matches the suffix with itself", () => {
    const sequence = createNgramDrafter().openSequence();
    expect(draft(sequence, [1, 2, 3, 4, 5], 4)).toEqual([]);
    expect(draft(sequence, [7], 4)).toEqual([]);
    expect(draft(createNgramDrafter({ minN: 1, maxN: 1 }).openSequence(), [3, 4, 5], 4)).toEqual([]);
    // A single token matches once sizes of 1 are allowed.
    expect(draft(createNgramDrafter({ minN: 1, maxN: 1 }).openSequence(), [3, 4, 5, 3], 2)).toEqual([4, 5]);
  });

  it("continues a repeating pattern into the draft itself", () => {
    const sequence = createNgramDrafter().openSequence();
    // [1, 2] last occurred at the start; its continuation runs into the suffix and then into the draft.
    expect(draft(sequence, [1, 2, 1, 2], 4)).toEqual([1, 2, 1, 2]);
    expect(draft(createNgramDrafter({ minN: 1, maxN: 1 }).openSequence(), [4, 4], 3)).toEqual([4, 4, 4]);
    expect(draft(createNgramDrafter().openSequence(), [9, 1, 2, 3, 1, 2, 3, 1, 2], 4)).toEqual([3, 1, 2, 3]);
  });

  it("drafts at most maxTokens, and FRESH_LENGTH before any verdict", () => {
    const context = Array.from({ length: 40 }, (_, i) => i % 5);
    for (let maxTokens = 1; maxTokens <= 8; maxTokens++) {
      expect(draft(createNgramDrafter().openSequence(), context, maxTokens)).toHaveLength(Math.min(maxTokens, FRESH_LENGTH));
    }
  });

  it("drafts fewer tokens from a size whose drafts were rejected, more from one whose drafts were accepted", () => {
    const context = Array.from({ length: 40 }, (_, i) => i % 5);
    const rejected = createNgramDrafter({ minN: 2, maxN: 2 }).openSequence();
    const lengths: number[] = [];
    for (let round = 0; round < 6; round++) {
      const tokens = draft(rejected, context, 16);
      lengths.push(tokens.length);
      rejected.verified?.(tokens.length, 0);
    }
    expect(lengths[0]).toBe(FRESH_LENGTH);
    for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeLessThanOrEqual(lengths[i - 1]!);
    expect(lengths.at(-1)).toBe(1);

    const accepted = createNgramDrafter({ minN: 2, maxN: 2 }).openSequence();
    const grown: number[] = [];
    for (let round = 0; round < 12; round++) {
      const tokens = draft(accepted, context, 16);
      grown.push(tokens.length);
      accepted.verified?.(tokens.length, tokens.length);
    }
    for (let i = 1; i < grown.length; i++) expect(grown[i]).toBeGreaterThanOrEqual(grown[i - 1]!);
    expect(grown.at(-1)).toBeGreaterThan(12);
    // A verdict on a round that drafted nothing teaches nothing.
    const idle = createNgramDrafter().openSequence();
    expect(draft(idle, [1, 2, 3], 16)).toEqual([]);
    idle.verified?.(4, 0);
    expect(draft(idle, context, 16)).toHaveLength(FRESH_LENGTH);
  });

  it("keeps one length record per size: rejections of 3-gram drafts leave the 2-gram length alone", () => {
    const sequence = createNgramDrafter({ minN: 2, maxN: 3 }).openSequence();
    // Suffix [1, 2, 3] matches as a 3-gram.
    const three = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3];
    for (let round = 0; round < 8; round++) sequence.verified?.(draft(sequence, three, 16).length, 0);
    expect(draft(sequence, three, 16)).toEqual([4]);
    // A context that only matches as a 2-gram (rewound: the index starts over).
    // Its fresh 2-gram record drafts FRESH_LENGTH tokens, the repeating continuation included.
    expect(draft(sequence, [9, 8, 1, 2, 9, 8], 16)).toEqual(Array.from({ length: FRESH_LENGTH }, (_, i) => [1, 2, 9, 8][i % 4]));
  });

  it("gives the brute-force lookup's draft for growing contexts, rewinds and restarts (incremental index)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 30 }),
        fc.array(
          fc.record({
            cut: fc.nat(),
            extra: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 6 }),
            maxTokens: fc.integer({ min: 1, max: 8 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (minN, spread, start, rounds) => {
          const maxN = minN + spread;
          const sequence = createNgramDrafter({ minN, maxN }).openSequence();
          let context = start;
          for (const { cut, extra, maxTokens } of rounds) {
            // Mostly extend (as decoding does); sometimes cut back first (a session's rewound prefix).
            const keep = cut % 4 === 0 ? Math.max(1, context.length - (cut % 7)) : context.length;
            context = [...context.slice(0, keep), ...extra];
            expect(draft(sequence, context, maxTokens)).toEqual(bruteForce(context, minN, maxN, Math.min(maxTokens, FRESH_LENGTH)));
          }
          sequence.close();
          // After close the sequence starts over and still drafts correctly.
          expect(draft(sequence, context, 3)).toEqual(bruteForce(context, minN, maxN, 3));
        },
      ),
      { numRuns: 200 },
    );
  });
});
