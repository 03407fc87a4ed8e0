// Every model-tiny error code has a description and appears in docs/errors.md.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ModelTinyErrorCode } from "./errors.js";

describe("ModelTinyErrorCode", () => {
  it("documents every code in docs/errors.md", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../docs/errors.md", import.meta.url)), "utf8");
    const codes = ModelTinyErrorCode.describe();
    expect(codes.length).toBeGreaterThan(0);
    for (const { code, description } of codes) {
      expect(description.length).toBeGreaterThan(10);
      expect(doc).toContain(`| \`${code}\` | ${description} |`);
    }
  });
});
