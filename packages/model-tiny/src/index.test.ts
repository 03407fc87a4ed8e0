// The shipped model files: present, with the right magic bytes, and what TINY_MODEL says they are.
import { existsSync, readFileSync } from "node:fs";
import { hasHaloMagic, readHalo, readMedusa } from "@halo/h1b-format";
import { describe, expect, it } from "vitest";
import { TINY_MODEL, tinyDraftModelPath, tinyMedusaPath, tinyModelFiles, tinyModelPath } from "./index.js";

/** `MEDUSA1\0`, the .h1b-medusa magic (docs/formats/h1b-medusa.md). */
const MEDUSA_MAGIC = Buffer.from("MEDUSA1\0", "latin1");
const HOW_TO_MAKE = "the model files are made by packages/model-tiny/train/run.sh and committed under packages/model-tiny/models/";

function firstBytes(path: string): Uint8Array {
  expect(existsSync(path), `${path} is missing: ${HOW_TO_MAKE}`).toBe(true);
  return readFileSync(path).subarray(0, 8);
}

describe("shipped files", () => {
  it("tinyModelFiles() finds all three", () => {
    for (const path of [tinyModelPath, tinyDraftModelPath, tinyMedusaPath]) expect(existsSync(path), `${path} is missing: ${HOW_TO_MAKE}`).toBe(true);
    expect(tinyModelFiles()).toEqual({ model: tinyModelPath, draft: tinyDraftModelPath, medusa: tinyMedusaPath });
  });

  it("start with their formats' magic bytes", () => {
    expect(hasHaloMagic(firstBytes(tinyModelPath)), `${tinyModelPath} is not a .halo container`).toBe(true);
    expect(hasHaloMagic(firstBytes(tinyDraftModelPath)), `${tinyDraftModelPath} is not a .halo container`).toBe(true);
    expect(Buffer.from(firstBytes(tinyMedusaPath)).equals(MEDUSA_MAGIC), `${tinyMedusaPath} is not a .h1b-medusa file`).toBe(true);
  });

  it("are the model TINY_MODEL describes: its shape, names, one tokenizer for both models, heads of its hidden size", () => {
    const main = readHalo(tinyModelPath);
    const draft = readHalo(tinyDraftModelPath);
    try {
      expect(main.config).toMatchObject({ hiddenSize: TINY_MODEL.hiddenSize, numLayers: TINY_MODEL.numLayers, vocabSize: TINY_MODEL.vocabSize });
      expect(main.metadata["general.name"]).toBe(TINY_MODEL.id);
      expect(draft.metadata["general.name"]).toBe(TINY_MODEL.draftId);
      expect(draft.config.numLayers).toBeLessThan(main.config.numLayers);
      expect(draft.config.vocabSize).toBe(main.config.vocabSize);
      expect(draft.tokenizer).toEqual(main.tokenizer);
      expect(draft.chatTemplate).toBe(main.chatTemplate);
    } finally {
      main.close();
      draft.close();
    }
    const heads = readMedusa(tinyMedusaPath, { hiddenDim: TINY_MODEL.hiddenSize });
    try {
      expect(heads.heads).toHaveLength(4);
    } finally {
      heads.close();
    }
  });
});
