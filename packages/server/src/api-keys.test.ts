import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createApiKeyCheck, parseKeyList, readApiKeyFile } from "./api-keys.js";

describe("API keys", () => {
  it("accepts exactly the configured Bearer keys", () => {
    const check = createApiKeyCheck(["k1", "k-two"]);
    expect(check("Bearer k1")).toBe(true);
    expect(check("bearer k-two")).toBe(true);
    expect(check("Bearer k")).toBe(false);
    expect(check("Bearer k1x")).toBe(false);
    expect(check("k1")).toBe(false);
    expect(check("Bearer ")).toBe(false);
    expect(check(undefined)).toBe(false);
  });

  it("lets everything through when no key is configured", () => {
    expect(createApiKeyCheck([])(undefined)).toBe(true);
  });

  it("reads key files and lists, skipping blanks and comments; an empty file is an error", () => {
    expect(parseKeyList(["a,b", " c ", "", "# x"])).toEqual(["a", "b", "c"]);
    const dir = mkdtempSync(join(tmpdir(), "halo-keys-"));
    writeFileSync(join(dir, "keys"), "# keys\nsk-1\n\nsk-2\n");
    expect(readApiKeyFile(join(dir, "keys"))).toEqual(["sk-1", "sk-2"]);
    writeFileSync(join(dir, "empty"), "# none\n");
    expect(() => readApiKeyFile(join(dir, "empty"))).toThrow(expect.objectContaining({ code: "SERVER_BAD_OPTION" }));
    expect(() => readApiKeyFile(join(dir, "missing"))).toThrow(expect.objectContaining({ code: "SERVER_BAD_OPTION" }));
  });
});
