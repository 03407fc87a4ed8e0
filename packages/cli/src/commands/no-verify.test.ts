// --no-verify: the commands that load a model check its weights unless told not to (issue 15's eval probe).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readHaloHeader, synthModel, writeHalo } from "@halo/h1b-format";
import { main } from "../index.js";
import { captureOutput } from "../../test/capture.js";

let dir: string;
let flipped: string;
const previousCacheDir = process.env.HALO_CACHE_DIR;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-no-verify-"));
  process.env.HALO_CACHE_DIR = join(dir, "cache");
  const sound = join(dir, "tiny.halo");
  await writeHalo(synthModel({ seed: 11 }), sound);
  const embd = readHaloHeader(sound).header.tensors.find((t) => t.name === "token_embd")!;
  const bytes = new Uint8Array(readFileSync(sound));
  for (let i = 0; i < 8; i++) bytes[embd.offset + 2 * 256 * 84 + i]! ^= 0xff;
  flipped = join(dir, "flipped.halo");
  writeFileSync(flipped, bytes);
});

afterAll(() => {
  if (previousCacheDir === undefined) delete process.env.HALO_CACHE_DIR;
  else process.env.HALO_CACHE_DIR = previousCacheDir;
  rmSync(dir, { recursive: true, force: true });
});

function capture() {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "cache"), HF_ENDPOINT: "http://127.0.0.1:1" });
}

describe("--no-verify", () => {
  it("halo eval refuses a .halo whose token_embd does not match its checksum, and --no-verify runs it", async () => {
    const logits = join(dir, "logits.bin");
    const refused = capture();
    expect(await main(["eval", "--model", flipped, "--tokens", "84,104", "--logits-out", logits, "--backend", "reference"], refused.ctx)).not.toBe(0);
    expect(refused.err.join("")).toMatch(/H1B_CHECKSUM_MISMATCH|checksum/);
    expect(refused.err.join("")).toMatch(/token_embd/);
    const forced = capture();
    expect(await main(["eval", "--model", flipped, "--tokens", "84,104", "--logits-out", logits, "--backend", "reference", "--no-verify"], forced.ctx)).toBe(0);
    expect(readFileSync(logits).byteLength).toBe(2 * 512 * 4);
  });

  it("halo ppl and halo run take --no-verify too", async () => {
    const text = join(dir, "text.txt");
    writeFileSync(text, "the cat sat on the mat and the dog sat on the log");
    const ppl = capture();
    expect(await main(["ppl", "--model", flipped, "--text-file", text, "--backend", "reference"], ppl.ctx)).not.toBe(0);
    expect(await main(["ppl", "--model", flipped, "--text-file", text, "--backend", "reference", "--no-verify"], capture().ctx)).toBe(0);
    expect(await main(["run", "--model", flipped, "--backend", "reference", "-t", "0", "-n", "2", "hi"], capture().ctx)).not.toBe(0);
    expect(await main(["run", "--model", flipped, "--backend", "reference", "-t", "0", "-n", "2", "--no-verify", "hi"], capture().ctx)).toBe(0);
  });

  it("halo generate takes --no-verify too", async () => {
    const refused = capture();
    expect(await main(["generate", "--model", flipped, "--backend", "reference", "-t", "0", "-n", "2", "--prompt", "hi"], refused.ctx)).not.toBe(0);
    expect(refused.err.join("")).toMatch(/token_embd/);
    const forced = capture();
    expect(await main(["generate", "--model", flipped, "--backend", "reference", "-t", "0", "-n", "2", "--no-verify", "--prompt", "hi"], forced.ctx)).toBe(0);
  });
});
