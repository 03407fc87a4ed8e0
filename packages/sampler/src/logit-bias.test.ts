// Tests for logit bias: OpenAI-style keys and range, −Infinity bans, float32 clamping.
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { FLOAT32_MAX } from "./float-limits.js";
import { applyLogitBias, compileLogitBias } from "./logit-bias.js";

describe("compileLogitBias", () => {
  it("accepts OpenAI's string keys and maps of ids", () => {
    expect([...compileLogitBias({ "2": -100, "0": 5 }, 3)]).toEqual([
      [0, 5],
      [2, -100],
    ]);
    expect([...compileLogitBias(new Map([[1, Number.NEGATIVE_INFINITY]]), 3)]).toEqual([[1, Number.NEGATIVE_INFINITY]]);
  });

  it("refuses non-integer, negative, padded and out-of-range keys with SAMPLER_VOCAB_MISMATCH", () => {
    for (const key of ["1.5", "-1", "01", "abc", "3", " 1"]) {
      try {
        compileLogitBias({ [key]: 1 }, 3);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && error.code).toBe("SAMPLER_VOCAB_MISMATCH");
        expect(isHaloError(error) && error.expected).toBe("an integer token id in [0, 3)");
      }
    }
  });

  it("refuses values outside [-100, 100] other than -Infinity", () => {
    for (const value of [100.5, -101, Number.NaN, Number.POSITIVE_INFINITY]) {
      try {
        compileLogitBias({ "1": value }, 3);
        expect.unreachable();
      } catch (error) {
        expect(isHaloError(error) && [error.code, error.field]).toEqual(["SAMPLER_BAD_OPTION", "logitBias[1]"]);
      }
    }
  });
});

describe("applyLogitBias", () => {
  it("adds biases, bans with -Infinity even on a float32-max logit, clamps overflow", () => {
    const row = new Float32Array([0, FLOAT32_MAX, FLOAT32_MAX, Number.NEGATIVE_INFINITY]);
    applyLogitBias(
      row,
      new Map([
        [0, 5],
        [1, Number.NEGATIVE_INFINITY],
        [2, 100],
        [3, 100],
      ]),
    );
    expect(Array.from(row)).toEqual([5, Number.NEGATIVE_INFINITY, FLOAT32_MAX, Number.NEGATIVE_INFINITY]);
  });
});
