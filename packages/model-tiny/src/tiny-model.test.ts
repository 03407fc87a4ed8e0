// The shipped paths are absolute and name the package's models/ folder; a missing file is a typed error naming it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isHaloError } from "@halo/errors";
import { afterAll, describe, expect, it } from "vitest";
import { ModelTinyErrorCode } from "./errors.js";
import { requireFiles, tinyDraftModelPath, tinyMedusaPath, tinyModelPath } from "./tiny-model.js";

const modelsDir = join(dirname(dirname(fileURLToPath(import.meta.url))), "models");

describe("shipped paths", () => {
  it("are absolute paths in the package's models/ folder", () => {
    for (const [path, name] of [
      [tinyModelPath, "halo-tiny.halo"],
      [tinyDraftModelPath, "halo-tiny-draft.halo"],
      [tinyMedusaPath, "halo-tiny.h1b-medusa"],
    ] as const) {
      expect(isAbsolute(path)).toBe(true);
      expect(path).toBe(join(modelsDir, name));
    }
  });
});

describe("requireFiles", () => {
  const dir = mkdtempSync(join(tmpdir(), "model-tiny-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts regular files and refuses a missing one or a directory with MODEL_TINY_FILE_MISSING naming it", () => {
    const present = join(dir, "present.halo");
    writeFileSync(present, "x");
    expect(() => requireFiles([present])).not.toThrow();
    for (const [path, found] of [
      [join(dir, "absent.halo"), "ENOENT"],
      [dir, "not a regular file"],
    ] as const) {
      let error: unknown;
      try {
        requireFiles([present, path]);
      } catch (caught) {
        error = caught;
      }
      expect(isHaloError(error) && error.code).toBe(ModelTinyErrorCode.MODEL_TINY_FILE_MISSING);
      expect(isHaloError(error) && error.path).toBe(path);
      expect(String((error as Error).message)).toContain(found);
    }
  });
});
