import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { decodePathSegment, parseRequestTarget } from "./request-target.js";

describe("parseRequestTarget", () => {
  it("keeps origin-form paths as sent and splits off the query", () => {
    expect(parseRequestTarget("/v1/models?x=1#f")).toEqual({ path: "/v1/models", query: "x=1" });
    expect(parseRequestTarget("//x/metrics")).toEqual({ path: "//x/metrics", query: "" });
    expect(parseRequestTarget("/a/../metrics")).toEqual({ path: "/a/../metrics", query: "" });
    expect(parseRequestTarget(undefined)).toEqual({ path: "/", query: "" });
  });
  it("routes the path of an absolute-form target without parsing its authority", () => {
    expect(parseRequestTarget("http://a:99999/health")).toEqual({ path: "/health", query: "" });
    expect(parseRequestTarget("http://[/")).toEqual({ path: "/", query: "" });
    expect(parseRequestTarget("http://host")).toEqual({ path: "/", query: "" });
  });
  it("throws only SERVER_BAD_REQUEST, whatever the bytes (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (raw) => {
        try {
          const { path } = parseRequestTarget(raw);
          return path === "*" || path.startsWith("/");
        } catch (error) {
          return isHaloError(error) && error.code === "SERVER_BAD_REQUEST";
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("decodePathSegment", () => {
  it("decodes escapes and refuses malformed ones with a 400 naming the field", () => {
    expect(decodePathSegment("a%2Fb", "model")).toBe("a/b");
    for (const bad of ["%E0", "%", "%zz", "%C3%28"])
      expect(() => decodePathSegment(bad, "model"), bad).toThrow(expect.objectContaining({ code: "SERVER_BAD_REQUEST", field: "model" }));
  });
});
