// `halo serve` on a model whose weights are mapped from its file: the file truncated, then rewritten, under a streaming
// request. The process must keep running (no SIGBUS), the request end with a model error, and /health keep answering.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo } from "@halo/h1b-format";
import { installedPackings } from "../installed-packings.js";
import { bundleBin } from "../../test/built-bin.js";
import { childReadyUrl } from "../../test/ready-url.js";

let dir: string;
let modelPath: string;
let otherBytes: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-serve-file-change-"));
  modelPath = join(dir, "model.halo");
  // Stored in the installed cpu backend's own layout, so its matrices are mapped from the file (the case under test), not repacked.
  const codecs = await installedPackings();
  expect(codecs.map((c) => c.packing)).toContain("halo-i2x256");
  await writeHalo(synthModel({ shape: "tiny", seed: 1 }), modelPath, { codecs });
  const other = join(dir, "other.halo");
  await writeHalo(synthModel({ shape: "tiny", seed: 2 }), other, { codecs });
  otherBytes = readFileSync(other);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads an SSE body's `data:` payloads; `onRecord` sees each as it arrives. */
async function readRecords(response: Response, onRecord: (record: string) => void): Promise<string[]> {
  const records: string[] = [];
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let end = pending.indexOf("\n\n");
    while (end >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        records.push(line.slice(6));
        onRecord(line.slice(6));
      }
      end = pending.indexOf("\n\n");
    }
  }
  return records;
}

describe("halo serve while its model file changes", () => {
  it("keeps running: the in-flight stream ends with model_error, later requests get 500 model_error, /health reports the failure", async () => {
    // The command as users run it: bin.ts bundled on its own, in a child process (a SIGBUS there fails this test).
    const built = bundleBin("serve-file-change-test");
    // --backend cpu: the native backend maps the .halo file's weights (the reference backend would copy them).
    const child = spawn(
      process.execPath,
      [built.bin, "serve", "--model", modelPath, "--backend", "cpu", "--threads", "2", "--port", "0", "--parallel", "1", "--log-level", "info"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      const url = await childReadyUrl(child, 60_000, () => stderr);
      expect((await fetch(`${url}/health`)).status).toBe(200);

      const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Go", max_tokens: 100_000, temperature: 0, ignore_eos: true, stream: true }),
      });
      expect(response.status).toBe(200);
      // Once tokens stream, the file is cut to nothing and then rewritten in place with another model's bytes (what a
      // partial, then complete, `cp other.halo model.halo` does), while the request keeps stepping.
      let changed = false;
      let rewritten: Promise<void> = Promise.resolve();
      const records = await readRecords(response, () => {
        if (changed) return;
        changed = true;
        truncateSync(modelPath, 0);
        // Awaited below: the stream may end before the rewrite, which must still happen inside this test.
        rewritten = new Promise((resolve, reject) =>
          setTimeout(() => {
            try {
              writeFileSync(modelPath, otherBytes);
              resolve();
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          }, 20),
        );
      });
      await rewritten;
      expect(changed).toBe(true);
      expect(records.at(-1)).toBe("[DONE]");
      const last = JSON.parse(records.at(-2)!) as { error?: { code: string; halo_code: string; message: string } };
      expect(last.error).toMatchObject({ code: "model_error", halo_code: "SERVER_MODEL_FAILED" });
      expect(last.error!.message).toContain(modelPath);
      expect(last.error!.message).toMatch(/changed while the model was loaded/);

      // A new request is refused the same way: the model never steps on the swapped weights.
      const again = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "Go", max_tokens: 4 }),
      });
      expect(again.status).toBe(500);
      expect(((await again.json()) as { error: { code: string } }).error.code).toBe("model_error");

      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(500);
      const healthBody = (await health.json()) as { error: { code: string; halo_code: string; message: string } };
      expect(healthBody.error).toMatchObject({ code: "model_error", halo_code: "SERVER_MODEL_FAILED" });
      expect(healthBody.error.message).toContain(modelPath);
      expect(stderr).toMatch(/"model-failed"/);
      expect(child.exitCode).toBeNull();
      expect(child.signalCode).toBeNull();
    } finally {
      child.kill("SIGKILL");
      built.remove();
    }
  }, 120_000);
});
