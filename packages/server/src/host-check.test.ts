import { describe, expect, it } from "vitest";
import { createHostCheck, hostNameOf } from "./host-check.js";

describe("hostNameOf", () => {
  it("takes the name out of a Host header: port, brackets, case and a trailing dot removed; malformed is null", () => {
    expect(hostNameOf("LocalHost:8080")).toBe("localhost");
    expect(hostNameOf("[::1]:8080")).toBe("::1");
    expect(hostNameOf("example.com.")).toBe("example.com");
    for (const bad of ["", "[", "[::1", "a:99x", "a b", "user@host", "host/path", "[zz]", "::1"]) expect(hostNameOf(bad), bad).toBeNull();
  });
});

describe("createHostCheck", () => {
  const check = createHostCheck(["halo.example.com", ".corp.example"]);
  it("passes loopback names and addresses, and the address the request arrived at", () => {
    for (const host of ["localhost", "localhost:1", "app.localhost", "127.0.0.1", "127.8.9.1:80", "[::1]:9", "[::ffff:127.0.0.1]"])
      expect(check(host, "127.0.0.1"), host).toBe(true);
    expect(check("192.168.1.5:8080", "192.168.1.5")).toBe(true);
    expect(check("192.168.1.5:8080", "::ffff:192.168.1.5")).toBe(true);
    expect(check("192.168.1.6:8080", "192.168.1.5")).toBe(false);
  });
  it("passes listed names and subdomains of a .domain entry, refuses the rest", () => {
    expect(check("halo.example.com", "127.0.0.1")).toBe(true);
    expect(check("corp.example", "127.0.0.1")).toBe(true);
    expect(check("a.b.corp.example:443", "127.0.0.1")).toBe(true);
    expect(check("evilcorp.example", "127.0.0.1")).toBe(false);
    expect(check("attacker.example", "127.0.0.1")).toBe(false);
    expect(check("localhost.attacker.example", "127.0.0.1")).toBe(false);
  });
  it("passes a request without Host, and anything with *", () => {
    expect(check(undefined, "127.0.0.1")).toBe(true);
    expect(createHostCheck(["*"])("attacker.example", "127.0.0.1")).toBe(true);
  });
});
