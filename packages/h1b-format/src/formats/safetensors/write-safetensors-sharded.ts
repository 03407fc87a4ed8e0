// Writes a model's tensors as one model.safetensors or as size-capped shards plus an index.
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { SAFETENSORS_INDEX_FILE, SAFETENSORS_SINGLE_FILE } from "./safetensors-index.js";
import { safetensorsEntryBytes, writeSafetensors, type SafetensorsWriteEntry } from "./write-safetensors.js";

/** Options of {@link writeSafetensorsModel}. */
export interface ShardOptions {
  /**
   * Largest tensor payload per shard in bytes; a tensor bigger than this gets a shard of its
   * own. Default: no limit (one `model.safetensors`, no index).
   */
  readonly maxShardBytes?: number;
  /** `__metadata__` of every shard. Default `{ format: "pt" }`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * Writes tensors in order into `dir`: one `model.safetensors` when they fit in `maxShardBytes`,
 * else `model-0000i-of-0000n.safetensors` shards filled greedily plus
 * `model.safetensors.index.json` (`metadata.total_size`, `weight_map`), the layout
 * `transformers` writes. Returns the file names written.
 *
 * @example
 * ```ts
 * writeSafetensorsModel("./out", entries, { maxShardBytes: 2 ** 30 });
 * ```
 */
export function writeSafetensorsModel(dir: string, entries: readonly SafetensorsWriteEntry[], options: ShardOptions = {}): string[] {
  const max = options.maxShardBytes ?? Infinity;
  if (!(max > 0)) {
    throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "maxShardBytes must be positive", {
      field: "maxShardBytes",
      expected: "> 0",
      actual: max,
    });
  }
  const metadata = options.metadata ?? { format: "pt" };
  const shards: SafetensorsWriteEntry[][] = [];
  let current: SafetensorsWriteEntry[] = [];
  let currentBytes = 0;
  let total = 0;
  for (const entry of entries) {
    const size = safetensorsEntryBytes(entry);
    if (current.length > 0 && currentBytes + size > max) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += size;
    total += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  if (shards.length === 1) {
    // A stale index from an earlier sharded write would shadow the new file.
    rmSync(join(dir, SAFETENSORS_INDEX_FILE), { force: true });
    writeSafetensors(join(dir, SAFETENSORS_SINGLE_FILE), shards[0]!, metadata);
    return [SAFETENSORS_SINGLE_FILE];
  }
  const width = Math.max(5, String(shards.length).length);
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(width, "0")}-of-${String(shards.length).padStart(width, "0")}.safetensors`);
  const weightMap: Record<string, string> = {};
  rmSync(join(dir, SAFETENSORS_SINGLE_FILE), { force: true });
  shards.forEach((shard, i) => {
    writeSafetensors(join(dir, names[i]!), shard, metadata);
    for (const entry of shard) weightMap[entry.name] = names[i]!;
  });
  writeFileSync(join(dir, SAFETENSORS_INDEX_FILE), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  return [...names, SAFETENSORS_INDEX_FILE];
}
