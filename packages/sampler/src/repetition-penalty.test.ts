// Tests for applyRepetitionPenalty: ÷p for positive, ×p otherwise, once per distinct token in the window.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyRepetitionPenalty } from "./repetition-penalty.js";
import { createSamplerScratch } from "./scratch.js";
import { hasNaN, logitRow } from "../test/arbitraries.js";

describe("applyRepetitionPenalty", () => {
  it("divides positive and multiplies non-positive logits, once per distinct token", () => {
    const row = new Float32Array([2, -2, 2, 0]);
    applyRepetitionPenalty(row, [0, 1, 1, 1, 3], 2, 64);
    expect(Array.from(row)).toEqual([1, -4, 2, 0]);
  });

  it("reads only the last N tokens; -1 reads all; 0 and penalty 1 are no-ops", () => {
    const window = new Float32Array([3, 3, 3]);
    applyRepetitionPenalty(window, [0, 1, 2], 1.5, 2);
    expect(Array.from(window)).toEqual([3, 2, 2]);
    const all = new Float32Array([3, 3, 3]);
    applyRepetitionPenalty(all, [0, 1, 2], 1.5, -1);
    expect(Array.from(all)).toEqual([2, 2, 2]);
    const off = new Float32Array([3, 3, 3]);
    applyRepetitionPenalty(off, [0, 1, 2], 1.5, 0);
    applyRepetitionPenalty(off, [0, 1, 2], 1, 64);
    expect(Array.from(off)).toEqual([3, 3, 3]);
  });

  it("penalises each distinct token exactly once even across repeated calls sharing scratch", () => {
    const scratch = createSamplerScratch(4);
    fc.assert(
      fc.property(logitRow, fc.array(fc.nat(), { maxLength: 40 }), fc.double({ min: 0.1, max: 3, noNaN: true }), (row, raw, penalty) => {
        const history = raw.map((t) => t % row.length);
        const before = Float32Array.from(row);
        applyRepetitionPenalty(row, history, penalty, -1, row.length <= 4 ? scratch : undefined);
        const seen = new Set(history);
        for (let i = 0; i < row.length; i++) {
          const v = before[i]!;
          const expected = seen.has(i) ? Math.fround(v > 0 ? v / penalty : v * penalty) : v;
          if (row[i] !== expected) return false;
        }
        return !hasNaN(row);
      }),
    );
  });

  it("rejects a non-positive penalty, a bad window and out-of-range tokens", () => {
    const cases: Array<[() => void, string, string]> = [
      [() => applyRepetitionPenalty(new Float32Array(3), [0], 0, 64), "SAMPLER_BAD_OPTION", "repeatPenalty"],
      [() => applyRepetitionPenalty(new Float32Array(3), [0], Number.NaN, 64), "SAMPLER_BAD_OPTION", "repeatPenalty"],
      [() => applyRepetitionPenalty(new Float32Array(3), [0], 1.1, -2), "SAMPLER_BAD_OPTION", "repeatLastN"],
      [() => applyRepetitionPenalty(new Float32Array(3), [0, 3], 1.1, 64), "SAMPLER_BAD_TOKEN", "history[1]"],
      [() => applyRepetitionPenalty(new Float32Array(3), [0.5], 1.1, 64), "SAMPLER_BAD_TOKEN", "history[0]"],
    ];
    for (const [run, code, field] of cases) {
      try {
        run();
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field]).toEqual([code, field]);
      }
    }
  });
});
