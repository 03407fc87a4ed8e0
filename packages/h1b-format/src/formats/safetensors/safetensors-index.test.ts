// Tests of sharded safetensors: greedy shard writing, the index, and missing shards or tensors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isHaloError } from "@halo/errors";
import { openSafetensorsModel, SAFETENSORS_INDEX_FILE } from "./safetensors-index.js";
import { writeSafetensorsModel } from "./write-safetensors-sharded.js";
import type { SafetensorsWriteEntry } from "./write-safetensors.js";

const root = mkdtempSync(join(tmpdir(), "halo-shards-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function entries(): SafetensorsWriteEntry[] {
  return [10, 20, 30, 5, 50].map((n, i) => ({
    name: `t${i}`,
    dtype: "U8" as const,
    shape: [n],
    chunks: function* () {
      // Two chunks, so the writer's streaming path is used.
      yield Uint8Array.from({ length: Math.floor(n / 2) }, (_, j) => (i * 31 + j) & 0xff);
      yield Uint8Array.from({ length: n - Math.floor(n / 2) }, (_, j) => (i * 31 + Math.floor(n / 2) + j) & 0xff);
    },
  }));
}

function caught(fn: () => unknown): { code: string; path: string | undefined } {
  try {
    fn();
  } catch (error) {
    if (isHaloError(error)) return { code: error.code, path: error.path };
    throw error;
  }
  return { code: "no error", path: undefined };
}

describe("sharded safetensors", () => {
  it("writes one model.safetensors without a limit", () => {
    const dir = mkdtempSync(join(root, "single-"));
    expect(writeSafetensorsModel(dir, entries())).toEqual(["model.safetensors"]);
    const model = openSafetensorsModel(dir);
    expect(model.files.length).toBe(1);
    expect([...model.tensor("t2").file.read("t2")]).toEqual(Array.from({ length: 30 }, (_, j) => (62 + j) & 0xff));
    model.close();
  });

  it("fills shards greedily, writes the index, and reads every tensor back", () => {
    const dir = mkdtempSync(join(root, "sharded-"));
    const names = writeSafetensorsModel(dir, entries(), { maxShardBytes: 40 });
    // 10+20 | 30+5 | 50 (alone: bigger than the cap)
    expect(names).toEqual(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", SAFETENSORS_INDEX_FILE]);
    const index = JSON.parse(readFileSync(join(dir, SAFETENSORS_INDEX_FILE), "utf8"));
    expect(index.metadata.total_size).toBe(115);
    expect(index.weight_map).toEqual({
      t0: names[0],
      t1: names[0],
      t2: names[1],
      t3: names[1],
      t4: names[2],
    });
    const model = openSafetensorsModel(dir);
    expect(model.files.length).toBe(3);
    for (const [i, n] of [10, 20, 30, 5, 50].entries()) {
      const ref = model.tensor(`t${i}`);
      expect([...ref.file.read(`t${i}`)]).toEqual(Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff));
    }
    expect(caught(() => model.tensor("t9")).code).toBe("H1B_MISSING_TENSOR");
    model.close();
  });

  it("names a missing shard", () => {
    const dir = mkdtempSync(join(root, "missing-"));
    const names = writeSafetensorsModel(dir, entries(), { maxShardBytes: 40 });
    unlinkSync(join(dir, names[1]!));
    const error = caught(() => openSafetensorsModel(dir));
    expect(error.code).toBe("H1B_MISSING_FILE");
    expect(error.path).toBe(join(dir, names[1]!));
  });

  it("refuses an index that maps a tensor to the wrong shard, a bad file name, or no weight_map", () => {
    const dir = mkdtempSync(join(root, "bad-index-"));
    const names = writeSafetensorsModel(dir, entries(), { maxShardBytes: 40 });
    const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
    const index = JSON.parse(readFileSync(indexPath, "utf8"));
    writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, t4: names[0] } }));
    expect(caught(() => openSafetensorsModel(dir)).code).toBe("H1B_MISSING_TENSOR");
    writeFileSync(indexPath, JSON.stringify({ weight_map: { t0: "../elsewhere.safetensors" } }));
    expect(caught(() => openSafetensorsModel(dir)).code).toBe("H1B_BAD_METADATA");
    writeFileSync(indexPath, JSON.stringify({ metadata: {} }));
    expect(caught(() => openSafetensorsModel(dir)).code).toBe("H1B_BAD_METADATA");
    writeFileSync(indexPath, "{not json");
    expect(caught(() => openSafetensorsModel(dir)).code).toBe("H1B_BAD_METADATA");
  });

  it("reports a directory without weights, and a rewrite replaces a stale index", () => {
    const dir = mkdtempSync(join(root, "empty-"));
    expect(caught(() => openSafetensorsModel(dir)).code).toBe("H1B_MISSING_FILE");
    writeSafetensorsModel(dir, entries(), { maxShardBytes: 40 });
    writeSafetensorsModel(dir, entries());
    expect(existsSync(join(dir, SAFETENSORS_INDEX_FILE))).toBe(false);
    const model = openSafetensorsModel(dir);
    expect(model.files.length).toBe(1);
    model.close();
  });
});
