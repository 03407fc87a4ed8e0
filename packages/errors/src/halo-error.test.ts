import { describe, expect, it } from "vitest";
import { HaloError, isHaloError, defineErrorCodes } from "./index.js";

describe("HaloError", () => {
  it("formats location, expected, actual and hint into one line", () => {
    const error = new HaloError("H1B_BAD_MAGIC", "not an .h1b file", {
      path: "m.h1b",
      offset: 0,
      expected: "48 31 42",
      actual: "47 47 55",
      hint: "Pass a .h1b file or convert it with `h1b convert`",
    });
    expect(error.message).toBe("not an .h1b file (m.h1b, offset 0); expected 48 31 42; found 47 47 55. Pass a .h1b file or convert it with `h1b convert`");
    expect(error.code).toBe("H1B_BAD_MAGIC");
    expect(error.offset).toBe(0);
    expect(isHaloError(error)).toBe(true);
    expect(isHaloError(new Error("x"))).toBe(false);
    expect(error.toJSON()).toMatchObject({ code: "H1B_BAD_MAGIC", path: "m.h1b", offset: 0 });
  });

  it("keeps the cause", () => {
    const cause = new Error("inner");
    expect(new HaloError("X", "outer", { cause }).cause).toBe(cause);
  });

  it("defines codes as their own names and lists them", () => {
    const codes = defineErrorCodes({ A_ONE: "first", A_TWO: "second" });
    expect(codes.A_ONE).toBe("A_ONE");
    expect(codes.describe().map((c) => c.code)).toEqual(["A_ONE", "A_TWO"]);
  });
});
