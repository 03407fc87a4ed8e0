// Sharded safetensors models: model.safetensors.index.json (weight_map) or a single model.safetensors.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { openSafetensors, type SafetensorsFile, type SafetensorsTensorInfo } from "./read-safetensors.js";

/** File name of the shard index Hugging Face writes next to sharded weights. */
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";
/** File name of an unsharded Hugging Face model. */
export const SAFETENSORS_SINGLE_FILE = "model.safetensors";

/** A tensor of a (possibly sharded) model and the shard that holds it. */
export interface SafetensorsTensorRef {
  readonly file: SafetensorsFile;
  readonly info: SafetensorsTensorInfo;
}

/** Every tensor of a model directory across its shards. */
export interface SafetensorsModelFiles {
  readonly dir: string;
  /** Open shards, in index order (one file when unsharded). */
  readonly files: readonly SafetensorsFile[];
  readonly tensors: ReadonlyMap<string, SafetensorsTensorRef>;
  /** The tensor `name`, or `H1B_MISSING_TENSOR`. */
  tensor(name: string): SafetensorsTensorRef;
  /** Closes every shard. */
  close(): void;
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot read file", { path, actual: (cause as NodeJS.ErrnoException).code, cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "file is not valid JSON", {
      path,
      actual: (cause as Error).message,
      hint: "Download the file again",
      cause,
    });
  }
}

/** Reads a JSON file that must hold an object; `H1B_BAD_METADATA` otherwise. @internal */
export function readJsonObject(path: string): Record<string, unknown> {
  const value = readJsonFile(path);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "JSON file does not hold an object", {
      path,
      expected: "a JSON object",
      actual: Array.isArray(value) ? "an array" : String(value),
    });
  }
  return value as Record<string, unknown>;
}

/**
 * Opens the weights of a Hugging Face model directory: through `model.safetensors.index.json`
 * when present (every shard it names must exist, `H1B_MISSING_FILE` names the missing one, and
 * every tensor it maps must be in its shard), else `model.safetensors`. Shards are opened lazily
 * (headers only).
 *
 * @example
 * ```ts
 * const weights = openSafetensorsModel("./bitnet-b1.58-2B-4T");
 * const { file, info } = weights.tensor("model.norm.weight");
 * weights.close();
 * ```
 */
export function openSafetensorsModel(dir: string): SafetensorsModelFiles {
  const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
  const files: SafetensorsFile[] = [];
  const tensors = new Map<string, SafetensorsTensorRef>();
  const close = (): void => {
    for (const file of files) file.close();
  };
  try {
    if (existsSync(indexPath)) {
      const index = readJsonObject(indexPath);
      const weightMap = index["weight_map"];
      if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
        throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "shard index has no weight_map object", {
          path: indexPath,
          field: "weight_map",
          expected: "an object mapping tensor names to shard file names",
          actual: weightMap === undefined ? "missing" : typeof weightMap,
        });
      }
      const shards = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
        if (typeof shard !== "string" || shard === "" || /[\\/]/.test(shard) || shard === "." || shard === "..") {
          throw new HaloError(H1bErrorCode.H1B_BAD_METADATA, "shard index maps a tensor to an invalid file name", {
            path: indexPath,
            field: `weight_map.${name}`,
            expected: "a file name in the same directory",
            actual: typeof shard === "string" ? shard : typeof shard,
          });
        }
        let file = shards.get(shard);
        if (file === undefined) {
          const shardPath = join(dir, shard);
          if (!existsSync(shardPath)) {
            throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, `shard ${shard} listed in ${SAFETENSORS_INDEX_FILE} does not exist`, {
              path: shardPath,
              field: `weight_map.${name}`,
              expected: `the file ${shard}`,
              actual: "no such file",
              hint: "Download every shard of the model into the same directory",
            });
          }
          file = openSafetensors(shardPath);
          shards.set(shard, file);
          files.push(file);
        }
        const info = file.tensors.get(name);
        if (info === undefined) {
          throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `tensor ${name} is not in the shard the index names`, {
            path: file.path,
            field: name,
            expected: `${name} in ${shard}`,
            actual: `${file.tensors.size} other tensors`,
            hint: "The index and the shards come from different downloads; download the model again",
          });
        }
        tensors.set(name, { file, info });
      }
    } else {
      const singlePath = join(dir, SAFETENSORS_SINGLE_FILE);
      if (!existsSync(singlePath)) {
        throw new HaloError(H1bErrorCode.H1B_MISSING_FILE, "no safetensors weights in the directory", {
          path: dir,
          expected: `${SAFETENSORS_SINGLE_FILE} or ${SAFETENSORS_INDEX_FILE}`,
          actual: "neither file",
          hint: "Point at a Hugging Face model snapshot directory",
        });
      }
      const file = openSafetensors(singlePath);
      files.push(file);
      for (const [name, info] of file.tensors) tensors.set(name, { file, info });
    }
  } catch (error) {
    close();
    throw error;
  }
  return {
    dir,
    files,
    tensors,
    tensor(name: string): SafetensorsTensorRef {
      const ref = tensors.get(name);
      if (ref === undefined) {
        throw new HaloError(H1bErrorCode.H1B_MISSING_TENSOR, `tensor ${name} is not in the model`, {
          path: dir,
          field: name,
          expected: "a tensor of that name",
          actual: `${tensors.size} other tensors`,
          hint: "The snapshot is incomplete or not a BitNet checkpoint",
        });
      }
      return ref;
    },
    close,
  };
}
