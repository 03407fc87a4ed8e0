// loadModel's speculative option and a request's override: every field checked, every refusal names its field.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { checkSpeculativeOptions, checkSpeculativeRequest, DEFAULT_MAX_DRAFT, DRAFTER_KINDS, MAX_DRAFT_LIMIT, type SpeculativeOptions } from "./options.js";
import { SpeculativeErrorCode } from "./errors.js";

function refusal(check: () => void): { code: string; field: string | undefined } | null {
  try {
    check();
  } catch (error) {
    if (!isHaloError(error)) throw error;
    return { code: error.code, field: error.field };
  }
  return null;
}

describe("checkSpeculativeOptions", () => {
  it("accepts each drafter with what it needs", () => {
    expect(DRAFTER_KINDS).toEqual(["ngram", "draft-model", "medusa"]);
    expect(DEFAULT_MAX_DRAFT).toBe(4);
    expect(MAX_DRAFT_LIMIT).toBe(16);
    const good: SpeculativeOptions[] = [
      { drafter: "ngram" },
      { drafter: "ngram", maxDraft: 1, policy: "always", ngram: { minN: 1, maxN: 3 } },
      { drafter: "ngram", maxDraft: 16, policy: "auto" },
      { drafter: "draft-model", draftModel: "draft.halo" },
      { drafter: "draft-model", draftModel: "draft.halo", draftBackend: "reference", maxDraft: 8 },
      { drafter: "medusa", medusa: "heads.h1b-medusa", maxDraft: 4 },
    ];
    for (const options of good)
      expect(
        refusal(() => checkSpeculativeOptions(options)),
        JSON.stringify(options),
      ).toBeNull();
  });

  it("refuses bad options with SPECULATIVE_BAD_OPTION naming the field", () => {
    const bad: [unknown, string][] = [
      [undefined, "speculative"],
      [null, "speculative"],
      ["ngram", "speculative"],
      [{}, "speculative.drafter"],
      [{ drafter: "lookahead" }, "speculative.drafter"],
      [{ drafter: "NGRAM" }, "speculative.drafter"],
      [{ drafter: "ngram", maxdraft: 4 }, "speculative.maxdraft"],
      [{ drafter: "ngram", draft_model: "x" }, "speculative.draft_model"],
      [{ drafter: "ngram", maxDraft: 0 }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxDraft: 17 }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxDraft: 2.5 }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxDraft: "4" }, "speculative.maxDraft"],
      [{ drafter: "ngram", maxDraft: Number.NaN }, "speculative.maxDraft"],
      [{ drafter: "ngram", policy: "never" }, "speculative.policy"],
      [{ drafter: "medusa" }, "speculative.medusa"],
      [{ drafter: "medusa", medusa: "" }, "speculative.medusa"],
      [{ drafter: "medusa", medusa: 3 }, "speculative.medusa"],
      [{ drafter: "draft-model" }, "speculative.draftModel"],
      [{ drafter: "ngram", medusa: "heads.h1b-medusa" }, "speculative.medusa"],
      [{ drafter: "medusa", medusa: "m", draftModel: "d.halo" }, "speculative.draftModel"],
      [{ drafter: "ngram", draftBackend: "cpu" }, "speculative.draftBackend"],
      [{ drafter: "draft-model", draftModel: "d.halo", draftBackend: 1 }, "speculative.draftBackend"],
      [{ drafter: "medusa", medusa: "m", ngram: { minN: 2 } }, "speculative.ngram"],
    ];
    for (const [options, field] of bad) {
      expect(
        refusal(() => checkSpeculativeOptions(options as SpeculativeOptions)),
        JSON.stringify(options) ?? "undefined",
      ).toEqual({
        code: SpeculativeErrorCode.SPECULATIVE_BAD_OPTION,
        field,
      });
    }
  });
});

describe("checkSpeculativeRequest", () => {
  it("accepts true, false and { maxDraft?, policy? }", () => {
    for (const value of [true, false, {}, { maxDraft: 1 }, { maxDraft: 16, policy: "always" }, { policy: "auto" }] as const) {
      expect(
        refusal(() => checkSpeculativeRequest(value)),
        JSON.stringify(value),
      ).toBeNull();
    }
  });

  it("refuses anything else with SPECULATIVE_BAD_OPTION naming the field", () => {
    const bad: [unknown, string][] = [
      [null, "speculative"],
      [1, "speculative"],
      ["ngram", "speculative"],
      [{ drafter: "ngram" }, "speculative.drafter"],
      [{ maxDraft: 0 }, "speculative.maxDraft"],
      [{ maxDraft: 17 }, "speculative.maxDraft"],
      [{ maxDraft: 1.5 }, "speculative.maxDraft"],
      [{ policy: "sometimes" }, "speculative.policy"],
    ];
    for (const [value, field] of bad) {
      expect(
        refusal(() => checkSpeculativeRequest(value as never)),
        JSON.stringify(value),
      ).toEqual({ code: SpeculativeErrorCode.SPECULATIVE_BAD_OPTION, field });
    }
  });
});
