import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readHalo, synthModel, writeHfSnapshot } from "@halo/h1b-format";
import { isHaloError } from "@halo/errors";
import { startFakeHub, type FakeHub } from "../../test/fake-hub.js";
import { COMPLETE_MARKER, modelCacheDir, snapshotDir } from "./cache-dir.js";
import type { OpenWriter } from "./download-file.js";
import { hubOptionsFromEnv, type HubOptions } from "./hub-client.js";
import { parsePullSpec, pull } from "./pull.js";
import { DEFAULT_MODEL_REPO, resolveModel } from "./resolve-model.js";

let dir: string;
let snapshot: string;
let hub: FakeHub;
let options: HubOptions;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "halo-hub-"));
  snapshot = join(dir, "snapshot");
  await writeHfSnapshot(synthModel({ seed: 3 }), snapshot);
  const weights = readFileSync(join(snapshot, "model.safetensors"));
  const corrupted = Uint8Array.from(weights);
  corrupted[corrupted.length - 1] = (corrupted[corrupted.length - 1] ?? 0) ^ 0xff;
  hub = await startFakeHub({
    "acme/tiny": { dir: snapshot },
    "acme/bad": { dir: snapshot, corrupt: { "model.safetensors": corrupted } },
    "acme/gated": { dir: snapshot, token: "secret" },
    "acme/broken": { dir: snapshot, status: 500 },
    [DEFAULT_MODEL_REPO]: { dir: snapshot },
  });
  options = { endpoint: hub.endpoint };
});
afterAll(async () => {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
});

function cache(name: string): string {
  return join(dir, name);
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isHaloError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  return "no error";
}

describe("parsePullSpec", () => {
  it("reads repos, revisions, hub URLs and plain URLs", () => {
    expect(parsePullSpec("microsoft/bitnet-b1.58-2B-4T")).toEqual({ kind: "repo", repo: "microsoft/bitnet-b1.58-2B-4T", revision: "main" });
    expect(parsePullSpec("hf:a/b@v1.0")).toEqual({ kind: "repo", repo: "a/b", revision: "v1.0" });
    expect(parsePullSpec("https://huggingface.co/a/b")).toEqual({ kind: "repo", repo: "a/b", revision: "main", endpoint: "https://huggingface.co" });
    expect(parsePullSpec("https://h.co/a/b/resolve/main/x/y.gguf")).toEqual({
      kind: "hub-file",
      repo: "a/b",
      revision: "main",
      file: "x/y.gguf",
      endpoint: "https://h.co",
    });
    expect(parsePullSpec("https://example.com/m.gguf")).toEqual({ kind: "url", url: "https://example.com/m.gguf" });
    for (const bad of ["", "noslash", "a/b/c", "a/b@", "../x/y"]) expect(() => parsePullSpec(bad)).toThrow(/CLI_USAGE|repository/);
  });

  it("takes HF_ENDPOINT, HF_TOKEN and HALO_CACHE_DIR from the environment", () => {
    expect(hubOptionsFromEnv({ HF_ENDPOINT: "http://m/", HF_TOKEN: "t" })).toEqual({ endpoint: "http://m", token: "t" });
    expect(hubOptionsFromEnv({})).toEqual({ endpoint: "https://huggingface.co" });
    expect(modelCacheDir({ HALO_CACHE_DIR: "/x" })).toBe("/x");
    expect(modelCacheDir({ HOME: "/home/u" })).toBe("/home/u/.cache/halo/models");
    expect(snapshotDir("/c", "a/b", "main")).toBe("/c/a/b/main");
  });
});

describe("pull from a hub on 127.0.0.1", () => {
  it("downloads every file byte-identical, checked, with a completion marker; a second pull fetches nothing", async () => {
    const root = cache("c1");
    const result = await pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root });
    const out = snapshotDir(root, "acme/tiny", "main");
    for (const file of ["config.json", "model.safetensors", "tokenizer.json"]) {
      expect(readFileSync(join(out, file)).equals(readFileSync(join(snapshot, file)))).toBe(true);
    }
    expect(result.files.find((f) => f.path.endsWith("model.safetensors"))?.verified).toBe("sha256");
    expect(result.files.find((f) => f.path.endsWith("config.json"))?.verified).toBe("git-sha1");
    expect(existsSync(join(out, COMPLETE_MARKER))).toBe(true);
    const again = await pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root });
    expect(again.files.every((f) => f.cached && f.fetchedBytes === 0)).toBe(true);
  });

  it("resumes an interrupted download with a Range request and ends byte-identical", async () => {
    const root = cache("c2");
    const size = statSync(join(snapshot, "model.safetensors")).size;
    const cut = Math.floor(size / 3);
    hub.cutNext("model.safetensors", cut);
    const failure = await codeOf(pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, retries: 0, include: ["*.safetensors"] }));
    expect(failure).toMatch(/^CLI_DOWNLOAD_INTERRUPTED: .*Run the same command again/);
    const part = join(snapshotDir(root, "acme/tiny", "main"), "model.safetensors.part");
    expect(statSync(part).size).toBe(cut);
    const before = hub.requests.length;
    const result = await pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, include: ["*.safetensors"] });
    expect(hub.requests.slice(before).some((r) => r.range === `bytes=${cut}-`)).toBe(true);
    expect(result.files[0]).toMatchObject({ resumedFrom: cut, fetchedBytes: size - cut, verified: "sha256" });
    expect(readFileSync(result.files[0]!.path).equals(readFileSync(join(snapshot, "model.safetensors")))).toBe(true);
    expect(existsSync(part)).toBe(false);
  });

  it("resumes by itself when retries are allowed", async () => {
    const root = cache("c3");
    hub.cutNext("tokenizer.json", 100);
    const result = await pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, include: ["tokenizer.json"] });
    expect(result.files[0]).toMatchObject({ resumedFrom: 100, verified: "git-sha1" });
  });

  it("deletes a file whose sha256 does not match and keeps no marker", async () => {
    const root = cache("c4");
    const failure = await codeOf(pull(parsePullSpec("acme/bad"), { hub: options, cacheDir: root }));
    expect(failure).toMatch(/^CLI_DOWNLOAD_CHECKSUM: model.safetensors does not match the hub's sha256/);
    const out = snapshotDir(root, "acme/bad", "main");
    expect(existsSync(join(out, "model.safetensors"))).toBe(false);
    expect(existsSync(join(out, "model.safetensors.part"))).toBe(false);
    expect(existsSync(join(out, COMPLETE_MARKER))).toBe(false);
  });

  it("maps 401, 403, 404, 500 and unknown repos to one-line errors that say what to do", async () => {
    const root = cache("c5");
    expect(await codeOf(pull(parsePullSpec("acme/gated"), { hub: options, cacheDir: root }))).toMatch(/^CLI_HUB_AUTH: .*HTTP 401.*set HF_TOKEN/);
    expect(await codeOf(pull(parsePullSpec("acme/gated"), { hub: { ...options, token: "wrong" }, cacheDir: root }))).toMatch(
      /^CLI_HUB_AUTH: .*HTTP 403.*HF_TOKEN was sent but refused/,
    );
    const ok = await pull(parsePullSpec("acme/gated"), { hub: { ...options, token: "secret" }, cacheDir: root, include: ["config.json"] });
    expect(ok.files).toHaveLength(1);
    expect(hub.requests.at(-1)?.auth).toBe("Bearer secret");
    expect(await codeOf(pull(parsePullSpec("acme/nope"), { hub: options, cacheDir: root }))).toMatch(/^CLI_HUB_NOT_FOUND: .*HTTP 404.*Check the spelling/);
    expect(await codeOf(pull(parsePullSpec(`${hub.endpoint}/acme/tiny/resolve/main/missing.bin`), { hub: options, cacheDir: root }))).toMatch(
      /^CLI_HUB_NOT_FOUND: .*has no file missing.bin/,
    );
    expect(await codeOf(pull(parsePullSpec("acme/broken"), { hub: options, cacheDir: root }))).toMatch(/^CLI_HUB_HTTP: .*HTTP 500/);
    expect(await codeOf(pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, include: ["*.gguf"] }))).toMatch(/^CLI_HUB_NOT_FOUND: no file/);
    expect(await codeOf(pull(parsePullSpec("acme/tiny"), { hub: { endpoint: "http://127.0.0.1:1" }, cacheDir: root }))).toMatch(
      /^CLI_HUB_UNREACHABLE: .*--model <file>.*HF_ENDPOINT/,
    );
  });

  it("reports a full disk (ENOSPC from the writer) as CLI_DISK_FULL and keeps the partial file", async () => {
    const root = cache("c6");
    let written = 0;
    const fullAfter = 1000;
    const openWriter: OpenWriter = async () => ({
      async write(chunk) {
        written += chunk.length;
        if (written > fullAfter) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
      },
      async close() {},
    });
    const failure = await codeOf(pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, include: ["model.safetensors"], openWriter }));
    expect(failure).toMatch(/^CLI_DISK_FULL: the disk is full .*HALO_CACHE_DIR/);
  });

  it("pulls a single file by plain URL, checks its length, and converts a snapshot to .halo", async () => {
    const root = cache("c7");
    const single = await pull(parsePullSpec(`${hub.endpoint}/acme/tiny/resolve/main/config.json`), { hub: options, cacheDir: root });
    expect(JSON.parse(readFileSync(single.path, "utf8"))).toEqual(JSON.parse(readFileSync(join(snapshot, "config.json"), "utf8")));
    const converted = await pull(parsePullSpec("acme/tiny"), { hub: options, cacheDir: root, convert: true });
    expect(converted.converted).toBeDefined();
    expect(readFileSync(converted.converted!).subarray(0, 4).toString("latin1")).toBe("\x89HAL");
    // Stored in the best installed backend's own layout (the CPU backend's, installed in this workspace).
    expect(readHalo(converted.converted!).layers[0]!.q.packing).toBe("halo-i2x256");
  });

  it("resolves no --model to the default repo, pulling it once, and says what to do offline", async () => {
    const err: string[] = [];
    const ctx = {
      stdout: { write: () => true },
      stderr: { write: (t: string) => err.push(t) },
      env: { HALO_CACHE_DIR: cache("c8"), HF_ENDPOINT: hub.endpoint },
    };
    const path = await resolveModel(undefined, ctx, { progress: false });
    expect(path).toBe(snapshotDir(cache("c8"), DEFAULT_MODEL_REPO, "main"));
    expect(err.join("")).toMatch(/pulling it once/);
    const count = hub.requests.length;
    expect(await resolveModel(undefined, ctx, { progress: false })).toBe(path);
    expect(hub.requests.length).toBe(count);
    const partial = { ...ctx, env: { HALO_CACHE_DIR: cache("c10"), HF_ENDPOINT: hub.endpoint } };
    await pull(parsePullSpec(DEFAULT_MODEL_REPO), { hub: options, cacheDir: cache("c10"), include: ["config.json"] });
    await resolveModel(undefined, partial, { progress: false });
    expect(existsSync(join(snapshotDir(cache("c10"), DEFAULT_MODEL_REPO, "main"), "model.safetensors"))).toBe(true);
    const offline = { ...ctx, env: { HALO_CACHE_DIR: cache("c9"), HF_ENDPOINT: "http://127.0.0.1:1" } };
    const failure = await codeOf(resolveModel(undefined, offline, { progress: false }));
    expect(failure).toMatch(
      /^CLI_NO_MODEL: no --model given, the default model microsoft\/bitnet-b1.58-2B-4T is not cached and the hub at http:\/\/127.0.0.1:1 cannot be reached/,
    );
    expect(failure).toMatch(/--model <file>.*halo serve --demo/);
    expect(failure).not.toMatch(/\n/);
    writeFileSync(join(dir, "given.halo"), "x");
    expect(await resolveModel(join(dir, "given.halo"), offline, { progress: false })).toBe(join(dir, "given.halo"));
  });
});
