import { describe, expect, it } from "vitest";
import { createCorsPolicy, preflightHeaders } from "./cors.js";

describe("CORS policy", () => {
  it("passes requests without Origin and same-origin requests without headers", () => {
    const cors = createCorsPolicy([]);
    expect(cors(undefined, "127.0.0.1:8080")).toEqual({ allowed: true, headers: {} });
    expect(cors("http://127.0.0.1:8080", "127.0.0.1:8080")).toEqual({ allowed: true, headers: {} });
    expect(cors("http://127.0.0.1:9999", "127.0.0.1:8080").allowed).toBe(false);
  });

  it("matches exact origins, * patterns and *", () => {
    const cors = createCorsPolicy(["https://app.example", "http://localhost:*", "chrome-extension://*"]);
    expect(cors("https://app.example", "h").headers["access-control-allow-origin"]).toBe("https://app.example");
    expect(cors("http://localhost:3000", "h").allowed).toBe(true);
    expect(cors("chrome-extension://abcdef", "h").allowed).toBe(true);
    expect(cors("https://app.example.evil", "h").allowed).toBe(false);
    expect(cors("http://localhost.evil:3000", "h").allowed).toBe(false);
    expect(createCorsPolicy(["*"])("https://anything", "h").allowed).toBe(true);
  });

  it("exposes the answer headers a browser client reads (request id, retry, context and ignored-field reports)", () => {
    const exposed = createCorsPolicy(["*"])("https://anything", "h").headers["access-control-expose-headers"]!.split(", ");
    expect(exposed).toEqual(expect.arrayContaining(["x-request-id", "retry-after", "x-halo-context-dropped", "x-halo-ignored-fields"]));
  });

  it("allows the headers a preflight asks for, when they are plain header names", () => {
    expect(preflightHeaders("authorization, x-stainless-os")["access-control-allow-headers"]).toBe("authorization, x-stainless-os");
    expect(preflightHeaders("a\r\nb")["access-control-allow-headers"]).toBe("authorization, content-type, x-request-id");
  });
});
