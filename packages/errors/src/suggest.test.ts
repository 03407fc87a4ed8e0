import { describe, expect, it } from "vitest";
import { closestMatch, editDistance } from "./index.js";

describe("closestMatch", () => {
  it("maps snake_case, kebab-case and other-case spellings to the known name", () => {
    expect(closestMatch("top_p", ["temperature", "topK", "topP"])).toBe("topP");
    expect(closestMatch("max_tokens", ["maxTokens", "stop"])).toBe("maxTokens");
    expect(closestMatch("max-tokens", ["maxTokens", "stop"])).toBe("maxTokens");
  });

  it("suggests near typos and nothing for unrelated words", () => {
    expect(closestMatch("rn", ["generate", "run", "chat"])).toBe("run");
    expect(closestMatch("temprature", ["temperature", "topP"])).toBe("temperature");
    expect(closestMatch("servre", ["serve", "pull"])).toBe("serve");
    expect(closestMatch("frobnicate", ["run", "chat", "serve"])).toBeUndefined();
    expect(closestMatch("x", ["run", "chat"])).toBeUndefined();
  });

  it("computes Levenshtein distances", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
  });
});
