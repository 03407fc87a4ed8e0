// The paths of halo-tiny's shipped files (main model, draft model, Medusa heads), what the model is, and the check that the files are there.
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { HaloError } from "@halo/errors";
import { ModelTinyErrorCode } from "./errors.js";

// Resolved against this module: src/tiny-model.ts in the repository and dist/index.js once built both sit one folder below
// the package root, beside models/.
function shipped(name: string): string {
  return fileURLToPath(new URL(`../models/${name}`, import.meta.url));
}

/**
 * Absolute path of `models/halo-tiny.halo`, the main model (a `.halo` container with its tokenizer and chat
 * template inside).
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * import { tinyModelPath } from "@halo/model-tiny";
 * const engine = await loadModel(tinyModelPath);
 * ```
 */
export const tinyModelPath: string = shipped("halo-tiny.halo");

/**
 * Absolute path of `models/halo-tiny-draft.halo`, a 2-layer draft model with the main model's tokenizer, for
 * speculative decoding with a draft model.
 *
 * @example
 * ```ts
 * import { loadModel } from "@halo/engine";
 * import { tinyDraftModelPath } from "@halo/model-tiny";
 * const draft = await loadModel(tinyDraftModelPath);
 * ```
 */
export const tinyDraftModelPath: string = shipped("halo-tiny-draft.halo");

/**
 * Absolute path of `models/halo-tiny.h1b-medusa`: four Medusa heads (fp16) trained on the main model's final
 * hidden states; head `i` predicts the token `i + 2` positions ahead.
 *
 * @example
 * ```ts
 * import { readMedusa } from "@halo/h1b-format";
 * import { TINY_MODEL, tinyMedusaPath } from "@halo/model-tiny";
 * const heads = readMedusa(tinyMedusaPath, { hiddenDim: TINY_MODEL.hiddenSize });
 * ```
 */
export const tinyMedusaPath: string = shipped("halo-tiny.h1b-medusa");

/** What halo-tiny is: the fields of {@link TINY_MODEL}. */
export interface TinyModelInfo {
  /** Model id, as a model list shows it. */
  readonly id: string;
  /** Id of the draft model. */
  readonly draftId: string;
  /** One line for a user: what the model is, and that it is not BitNet b1.58-2B-4T. */
  readonly label: string;
  /** Residual width of the main model (the hidden size the Medusa heads take). */
  readonly hiddenSize: number;
  /** Decoder layers of the main model. */
  readonly numLayers: number;
  /** Vocabulary size (byte-level BPE trained on the same text). */
  readonly vocabSize: number;
  /** Where the weights come from. */
  readonly source: string;
  /** Licence of the weights, and of the text they were trained on. */
  readonly licence: string;
}

/**
 * What halo-tiny is. It is a demonstration model: small enough to ship in an npm package and to run anywhere, real
 * enough (trained, not random) that its perplexity and its speculative-decoding acceptance mean something.
 *
 * @example
 * ```ts
 * import { TINY_MODEL } from "@halo/model-tiny";
 * console.log(TINY_MODEL.label); // halo-tiny: a 4-layer demo model trained on Python's documentation (not …)
 * ```
 */
export const TINY_MODEL: TinyModelInfo = Object.freeze({
  id: "halo-tiny",
  draftId: "halo-tiny-draft",
  label: "halo-tiny: a 4-layer demo model trained on Python's documentation (not microsoft/bitnet-b1.58-2B-4T)",
  hiddenSize: 256,
  numLayers: 4,
  vocabSize: 4096,
  source: "trained from scratch as a ternary (BitNet b1.58) model by packages/model-tiny/train/train.py in the halo repository",
  licence:
    "weights: MIT, as the package; training text: the Python 3.11 documentation, under the PSF License Agreement (its code examples also under Zero-Clause BSD); see data/SOURCE.md",
});

/** The absolute paths of halo-tiny's shipped files, each checked to be on disk. */
export interface TinyModelFiles {
  /** {@link tinyModelPath}. */
  readonly model: string;
  /** {@link tinyDraftModelPath}. */
  readonly draft: string;
  /** {@link tinyMedusaPath}. */
  readonly medusa: string;
}

/**
 * The paths of the three shipped files after checking each is a file on disk; throws `MODEL_TINY_FILE_MISSING`
 * (naming the path) when one is not, so a broken install says so instead of failing later inside a model reader.
 *
 * @example
 * ```ts
 * import { tinyModelFiles } from "@halo/model-tiny";
 * const { model, draft, medusa } = tinyModelFiles();
 * ```
 */
export function tinyModelFiles(): TinyModelFiles {
  const files: TinyModelFiles = { model: tinyModelPath, draft: tinyDraftModelPath, medusa: tinyMedusaPath };
  requireFiles(Object.values(files));
  return files;
}

/**
 * Throws `MODEL_TINY_FILE_MISSING` for the first of `paths` that is not a regular file.
 * @internal
 */
export function requireFiles(paths: readonly string[]): void {
  for (const path of paths) {
    let found: string;
    try {
      found = statSync(path).isFile() ? "file" : "not a regular file";
    } catch (cause) {
      found = (cause as NodeJS.ErrnoException).code ?? "unreadable";
    }
    if (found !== "file") {
      throw new HaloError(ModelTinyErrorCode.MODEL_TINY_FILE_MISSING, "a file of @halo/model-tiny is missing", {
        path,
        expected: "a model file shipped in the package",
        actual: found,
        hint: "Reinstall @halo/model-tiny (npm install @halo/model-tiny); in the halo repository the files are committed under packages/model-tiny/models/",
      });
    }
  }
}
