import { spawn } from "node:child_process";
import { request } from "node:http";
import { describe, expect, it } from "vitest";
import { serveCommand } from "./serve.js";
import { bundleBin } from "../../test/built-bin.js";
import { childReadyUrl } from "../../test/ready-url.js";

/** The `data:` payloads of an SSE body read to its end (or until the connection is cut). */
async function readRecords(response: Response): Promise<{ records: string[]; cut: boolean }> {
  let text = "";
  let cut = false;
  try {
    text = await response.text();
  } catch {
    cut = true;
  }
  const records = text
    .split("\n\n")
    .map((r) =>
      r
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n"),
    )
    .filter((r) => r.length > 0);
  return { records, cut };
}

/** GET `path` with an explicit Host header (fetch does not let a caller set one). */
function getWithHost(url: string, path: string, host: string): Promise<number> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("halo serve --allowed-host", () => {
  it("without an API key, answers loopback and the names given with --allowed-host, and refuses other Host names (403)", async () => {
    const out: string[] = [];
    const ctx = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: () => {} }, env: {} };
    const stop = new AbortController();
    const running = serveCommand(["--demo", "--port", "0", "--allowed-host", "halo.example.com", "--allowed-host", ".internal.example"], ctx, stop.signal);
    const end = performance.now() + 20_000;
    let url: string | undefined;
    while (url === undefined && performance.now() < end) {
      url = /ready on (http:\/\/[^ ]+)/.exec(out.join(""))?.[1];
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    try {
      expect(url).toBeDefined();
      expect(await getWithHost(url!, "/v1/models", "localhost")).toBe(200);
      expect(await getWithHost(url!, "/v1/models", "halo.example.com")).toBe(200);
      expect(await getWithHost(url!, "/v1/models", "gpu.internal.example:8080")).toBe(200);
      expect(await getWithHost(url!, "/v1/models", "attacker.example")).toBe(403);
    } finally {
      stop.abort();
      expect(await running).toBe(0);
    }
  }, 60_000);

  it("refuses a value that is not a host name, in flag terms", async () => {
    const ctx = { stdout: { write: () => {} }, stderr: { write: () => {} }, env: {} };
    for (const bad of ["https://halo.example.com", "halo.example.com/v1", ""]) {
      await expect(serveCommand(["--demo", "--port", "0", "--allowed-host", bad], ctx)).rejects.toMatchObject({
        code: "CLI_USAGE",
        message: expect.stringContaining("--allowed-host"),
      });
    }
  });
});

describe("halo serve signals", () => {
  it("a second SIGTERM cancels running streams through the server: they end with an error record and [DONE], and the process exits 0", async () => {
    const built = bundleBin("serve-signal-test");
    // The reference backend: the stream must outlast both signals (600 ms) without filling the demo model's context,
    // which a native backend on a fast machine could do.
    const child = spawn(process.execPath, [built.bin, "serve", "--demo", "--backend", "reference", "--port", "0", "--parallel", "1", "--log-level", "error"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      const url = await childReadyUrl(child, 30_000);
      const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Go", max_tokens: 100_000, temperature: 0, ignore_eos: true, stream: true }),
      });
      expect(response.status).toBe(200);
      const body = readRecords(response);
      await new Promise((resolve) => setTimeout(resolve, 300));
      child.kill("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 300));
      child.kill("SIGTERM");
      const { records, cut } = await body;
      expect(cut).toBe(false);
      expect(records.at(-1)).toBe("[DONE]");
      expect(JSON.parse(records.at(-2)!)).toMatchObject({ error: { code: "shutting_down" } });
      expect(await exited).toBe(0);
      expect(stdout).toContain("second signal");
    } finally {
      child.kill("SIGKILL");
      built.remove();
    }
  }, 120_000);
});
