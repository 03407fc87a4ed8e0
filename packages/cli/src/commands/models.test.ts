import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { synthModel, writeHalo, writeHfSnapshot } from "@halo/h1b-format";
import { COMPLETE_MARKER } from "../hub/cache-dir.js";
import { hfHubCacheDir } from "../hub/hf-cache.js";
import { resolveModel } from "../hub/resolve-model.js";
import { main } from "../main.js";
import { captureOutput } from "../../test/capture.js";

let dir: string;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** An unreachable hub: anything that is not found in a cache fails instead of downloading. */
function capture(env: Record<string, string> = {}) {
  return captureOutput({ HALO_CACHE_DIR: join(dir, "halo"), HF_HUB_CACHE: join(dir, "hf"), HF_ENDPOINT: "http://127.0.0.1:1", ...env });
}

/** A repository in huggingface_hub's layout: blobs/, refs/main, snapshots/<commit>/<file> → ../../blobs/<file>. */
async function hfRepo(repo: string, options: { drop?: string } = {}): Promise<string> {
  const repoDir = join(dir, "hf", `models--${repo.replace("/", "--")}`);
  const source = join(dir, `src-${repo.replace("/", "-")}`);
  await writeHfSnapshot(synthModel({ seed: 5 }), source);
  mkdirSync(join(repoDir, "blobs"), { recursive: true });
  mkdirSync(join(repoDir, "refs"), { recursive: true });
  const snapshot = join(repoDir, "snapshots", COMMIT);
  mkdirSync(snapshot, { recursive: true });
  writeFileSync(join(repoDir, "refs", "main"), COMMIT);
  for (const file of readdirSync(source)) {
    if (file === options.drop) continue;
    renameSync(join(source, file), join(repoDir, "blobs", `blob-${file}`));
    symlinkSync(join("..", "..", "blobs", `blob-${file}`), join(snapshot, file));
  }
  return snapshot;
}

function haloEntry(repo: string, revision: string, marker: boolean): string {
  const path = join(dir, "halo", ...repo.split("/"), revision);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "model.gguf"), Buffer.alloc(3000));
  if (marker) writeFileSync(join(path, COMPLETE_MARKER), JSON.stringify({ repo, revision, commit: COMMIT, files: ["model.gguf"], include: [] }));
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-models-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the Hugging Face cache", () => {
  it("is found where huggingface_hub puts it", () => {
    expect(hfHubCacheDir({ HF_HUB_CACHE: "/a" })).toBe("/a");
    expect(hfHubCacheDir({ HF_HOME: "/h" })).toBe(join("/h", "hub"));
    expect(hfHubCacheDir({ HOME: "/home/u" })).toBe(join("/home/u", ".cache", "huggingface", "hub"));
    expect(hfHubCacheDir({ HOME: "/home/u", XDG_CACHE_HOME: "/x" })).toBe(join("/x", "huggingface", "hub"));
  });

  it("resolveModel uses a complete snapshot from it instead of downloading, and says so; halo run runs it offline", async () => {
    const snapshot = await hfRepo("acme/hf-only");
    const c = capture();
    expect(await resolveModel("acme/hf-only", c.ctx, { progress: false })).toBe(snapshot);
    expect(c.err.join("")).toMatch(/using acme\/hf-only from the Hugging Face cache .*not downloading/);
    const run = capture();
    expect(await main(["run", "--model", "acme/hf-only", "--backend", "reference", "-t", "0", "-n", "3", "hi"], run.ctx)).toBe(0);
    expect(existsSync(join(dir, "halo", "acme", "hf-only"))).toBe(false);
  });

  it("is not used when the snapshot lacks a weight file (the pull is tried instead)", async () => {
    await hfRepo("acme/hf-partial", { drop: "model.safetensors" });
    const c = capture();
    await expect(resolveModel("acme/hf-partial", c.ctx, { progress: false })).rejects.toMatchObject({ code: "CLI_HUB_UNREACHABLE" });
    expect(c.err.join("")).not.toMatch(/Hugging Face cache/);
  });
});

describe("halo models / halo rm", () => {
  it("lists both caches with sizes and status, as text and JSON", async () => {
    haloEntry("acme/tiny", "main", true);
    haloEntry("acme/tiny", "v2", false);
    await hfRepo("acme/from-hf");
    const text = capture();
    expect(await main(["models"], text.ctx)).toBe(0);
    const out = text.out.join("");
    expect(out).toMatch(/^NAME +SIZE +STATUS +CACHE\n/);
    expect(out).toMatch(/\nacme\/tiny +3\.1 KiB +complete +halo\n/); // the model file and the pull's marker
    expect(out).toMatch(/\nacme\/tiny@v2 +2\.9 KiB +incomplete +halo\n/);
    expect(out).toMatch(/\nacme\/from-hf +[\d.]+ KiB +complete +huggingface \(read-only\)\n/);
    const json = capture();
    expect(await main(["models", "--json"], json.ctx)).toBe(0);
    const listing = JSON.parse(json.out.join("")) as { haloCache: string; models: { name: string; source: string; bytes: number; status: string }[] };
    expect(listing.haloCache).toBe(join(dir, "halo"));
    expect(listing.models.find((m) => m.name === "acme/tiny@v2")).toMatchObject({ source: "halo", bytes: 3000, status: "incomplete" });
    expect(listing.models.find((m) => m.name === "acme/from-hf")).toMatchObject({ source: "huggingface", status: "complete" });
  });

  it("rm deletes a cached model without asking; refuses outside paths, unknown names and the Hugging Face cache", async () => {
    const v2 = haloEntry("acme/other", "v2", true);
    haloEntry("acme/other", "main", true);
    const one = capture();
    expect(await main(["rm", "acme/other@v2"], one.ctx)).toBe(0);
    expect(one.out.join("")).toMatch(/^removed acme\/other@v2 \(/);
    expect(existsSync(v2)).toBe(false);
    expect(existsSync(join(dir, "halo", "acme", "other", "main"))).toBe(true);
    expect(await main(["rm", "acme/other"], capture().ctx)).toBe(0);
    expect(existsSync(join(dir, "halo", "acme", "other"))).toBe(false);

    const outside = capture();
    writeFileSync(join(dir, "precious.txt"), "keep me");
    expect(await main(["rm", join(dir, "precious.txt")], outside.ctx)).toBe(2);
    expect(outside.err.join("")).toMatch(/^halo rm: refusing to delete a path outside halo's model cache.*\[CLI_USAGE\]\n$/);
    expect(existsSync(join(dir, "precious.txt"))).toBe(true);
    expect(await main(["rm", join(dir, "halo", "..", "precious.txt")], capture().ctx)).toBe(2);

    haloEntry("acme/kept", "main", true);
    const unknown = capture();
    expect(await main(["rm", "acme/nope"], unknown.ctx)).toBe(1);
    expect(unknown.err.join("")).toMatch(
      /^halo rm: acme\/nope is not in halo's model cache; expected one of .*acme\/kept.*`halo models` lists what is cached \[CLI_MODEL_NOT_CACHED\]\n$/,
    );

    await hfRepo("acme/hf-keep");
    const hf = capture();
    expect(await main(["rm", "acme/hf-keep"], hf.ctx)).toBe(1);
    expect(hf.err.join("")).toMatch(/is in the Hugging Face cache, not halo's.*\[CLI_MODEL_NOT_CACHED\]/);
    expect(existsSync(join(dir, "hf", "models--acme--hf-keep", "snapshots", COMMIT, "config.json"))).toBe(true);

    const byPath = capture();
    const path = haloEntry("acme/by-path", "main", true);
    expect(await main(["rm", path], byPath.ctx)).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it("verified-file records live in HALO_CACHE_DIR/.verified: halo models does not list them and halo rm refuses them", async () => {
    const cache = join(dir, "halo");
    const model = join(dir, "verify-me.halo");
    await writeHalo(synthModel({ seed: 3 }), model);
    // Loading verifies the weights and remembers the file in the cache halo pulls into (the engine reads process.env).
    const previous = process.env.HALO_CACHE_DIR;
    process.env.HALO_CACHE_DIR = cache;
    try {
      expect(await main(["run", "--model", model, "--backend", "reference", "-t", "0", "-n", "1", "hi"], capture().ctx)).toBe(0);
    } finally {
      if (previous === undefined) delete process.env.HALO_CACHE_DIR;
      else process.env.HALO_CACHE_DIR = previous;
    }
    expect(readdirSync(join(cache, ".verified")).length).toBeGreaterThan(0);
    expect(existsSync(join(cache, "verified"))).toBe(false);
    // A dot-directory shaped like owner/name/revision is not a model either.
    mkdirSync(join(cache, ".hidden", "name", "main"), { recursive: true });
    const json = capture();
    expect(await main(["models", "--json"], json.ctx)).toBe(0);
    const names = (JSON.parse(json.out.join("")) as { models: { name: string }[] }).models.map((m) => m.name);
    expect(names.filter((n) => n.startsWith(".") || n.startsWith("verified"))).toEqual([]);
    for (const target of [join(cache, ".verified"), join(cache, ".verified", readdirSync(join(cache, ".verified"))[0]!)]) {
      const refused = capture();
      expect(await main(["rm", target], refused.ctx)).toBe(2);
      expect(refused.err.join("")).toMatch(/^halo rm: refusing to delete \.verified: it holds halo's own records, not a model.*\[CLI_USAGE\]\n$/);
    }
    expect(readdirSync(join(cache, ".verified")).length).toBeGreaterThan(0);
  });
});
