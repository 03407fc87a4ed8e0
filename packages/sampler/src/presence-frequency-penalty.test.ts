// Tests for applyPresenceFrequencyPenalty: OpenAI's l −= c·frequency + (c > 0)·presence.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isHaloError } from "@halo/errors";
import { applyPresenceFrequencyPenalty } from "./presence-frequency-penalty.js";
import { createSamplerScratch } from "./scratch.js";
import { logitRow } from "../test/arbitraries.js";

describe("applyPresenceFrequencyPenalty", () => {
  it("matches a hand-computed example", () => {
    // token 2 twice: 1 − 2·0.25 − 0.5 = 0; token 0 once: 1 − 0.25 − 0.5 = 0.25; token 1 untouched.
    const row = new Float32Array([1, 1, 1]);
    applyPresenceFrequencyPenalty(row, [2, 2, 0], 0.5, 0.25);
    expect(Array.from(row)).toEqual([0.25, 1, 0]);
  });

  it("negative penalties encourage repeats", () => {
    const row = new Float32Array([0, 0]);
    applyPresenceFrequencyPenalty(row, Int32Array.from([1, 1, 1]), -1, -0.5);
    expect(Array.from(row)).toEqual([0, 2.5]);
  });

  it("equals the formula for every token and keeps bans", () => {
    const scratch = createSamplerScratch(64);
    fc.assert(
      fc.property(
        logitRow,
        fc.array(fc.nat(), { maxLength: 50 }),
        fc.double({ min: -2, max: 2, noNaN: true }),
        fc.double({ min: -2, max: 2, noNaN: true }),
        (row, raw, presence, frequency) => {
          const history = raw.map((t) => t % row.length);
          const before = Float32Array.from(row);
          applyPresenceFrequencyPenalty(row, history, presence, frequency, scratch);
          for (let i = 0; i < row.length; i++) {
            const count = history.filter((t) => t === i).length;
            const v = before[i]!;
            const expected = count === 0 || v === Number.NEGATIVE_INFINITY ? v : Math.fround(v - count * frequency - (count > 0 ? presence : 0));
            if (row[i] !== expected) return false;
          }
          return true;
        },
      ),
    );
  });

  it("rejects non-finite penalties and bad tokens", () => {
    const cases: Array<[() => void, string, string]> = [
      [() => applyPresenceFrequencyPenalty(new Float32Array(2), [0], Number.POSITIVE_INFINITY, 0), "SAMPLER_BAD_OPTION", "presencePenalty"],
      [() => applyPresenceFrequencyPenalty(new Float32Array(2), [0], 0, Number.NaN), "SAMPLER_BAD_OPTION", "frequencyPenalty"],
      [() => applyPresenceFrequencyPenalty(new Float32Array(2), [-1], 0.1, 0), "SAMPLER_BAD_TOKEN", "history[0]"],
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
