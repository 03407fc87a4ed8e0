// Tests for argmax: lowest id on ties, NaN never chosen, −1 when nothing is finite.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { argmax } from "./greedy.js";
import { hostileRow, logitRow, rankOrder } from "../test/arbitraries.js";

describe("argmax", () => {
  it("picks the lowest id among exact ties", () => {
    expect(argmax(new Float32Array([1, 3, 2, 3, 3]))).toBe(1);
    expect(argmax(new Float64Array([7, 7]))).toBe(0);
  });

  it("never picks NaN and returns -1 when nothing is above -Infinity", () => {
    expect(argmax(new Float32Array([Number.NaN, 0, Number.NaN]))).toBe(1);
    expect(argmax(new Float32Array([Number.NaN, Number.NEGATIVE_INFINITY]))).toBe(-1);
    expect(argmax(new Float32Array([]))).toBe(-1);
  });

  it("agrees with the first entry of a full rank sort", () => {
    fc.assert(
      fc.property(logitRow, (row) => {
        const expected = rankOrder(row)[0] ?? -1;
        return argmax(row) === expected;
      }),
    );
  });

  it("returns an index of a maximal non-NaN value on hostile rows", () => {
    fc.assert(
      fc.property(hostileRow, (row) => {
        const id = argmax(row);
        if (id === -1) return row.every((v) => Number.isNaN(v) || v === Number.NEGATIVE_INFINITY);
        for (let i = 0; i < row.length; i++) {
          if (row[i]! > row[id]!) return false;
          if (i < id && row[i] === row[id]) return false;
        }
        return !Number.isNaN(row[id]!);
      }),
    );
  });
});
