// safetensors writer: header first, then tensors streamed chunk by chunk to disk.
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../../errors.js";
import { SAFETENSORS_DTYPE_BYTES, type SafetensorsDType } from "./safetensors-dtype.js";

/** A tensor to write: its header entry and a producer of its bytes in order. */
export interface SafetensorsWriteEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /**
   * Yields the tensor's bytes in order, in as many chunks as it likes; called once, while the
   * file is written, so a producer may build each chunk on demand. The total must equal
   * `product(shape) × dtype size`.
   */
  readonly chunks: () => Iterable<Uint8Array>;
}

/**
 * Byte size of an entry's data: `product(shape) × dtype size`.
 *
 * @example
 * ```ts
 * safetensorsEntryBytes({ dtype: "BF16", shape: [2560] }); // 5120
 * ```
 */
export function safetensorsEntryBytes(entry: Pick<SafetensorsWriteEntry, "dtype" | "shape">): number {
  let count = 1;
  for (const d of entry.shape) count *= d;
  return count * SAFETENSORS_DTYPE_BYTES[entry.dtype];
}

/**
 * Builds the header bytes (length prefix + JSON, space-padded so the data starts 8-byte
 * aligned) for entries laid out in order.
 *
 * @example
 * ```ts
 * const header = safetensorsHeader([{ name: "w", dtype: "F32", shape: [4] }], { format: "pt" });
 * // header.length - 8 is a multiple of 8; the data (16 bytes) follows it
 * ```
 */
export function safetensorsHeader(
  entries: readonly Pick<SafetensorsWriteEntry, "name" | "dtype" | "shape">[],
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header["__metadata__"] = { ...metadata };
  let cursor = 0;
  for (const entry of entries) {
    if (entry.name === "__metadata__" || Object.prototype.hasOwnProperty.call(header, entry.name)) {
      throw new HaloError(H1bErrorCode.H1B_BAD_ARGUMENT, "safetensors tensor names must be unique and not __metadata__", {
        field: entry.name,
        actual: entry.name,
      });
    }
    const size = safetensorsEntryBytes(entry);
    header[entry.name] = { dtype: entry.dtype, shape: [...entry.shape], data_offsets: [cursor, cursor + size] };
    cursor += size;
  }
  let json = JSON.stringify(header);
  const encoded = new TextEncoder().encode(json);
  const padded = Math.ceil(encoded.length / 8) * 8;
  json += " ".repeat(padded - encoded.length);
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(new TextEncoder().encode(json), 8);
  return out;
}

/**
 * Writes a safetensors file, streaming each tensor's chunks straight to disk (the whole file is
 * never in memory). Writes `path + ".partial"` and renames it on success, so a failed write
 * leaves no half file. Returns the file size.
 *
 * @example
 * ```ts
 * writeSafetensors("norm.safetensors", [
 *   { name: "w", dtype: "F32", shape: [2], chunks: () => [new Uint8Array(new Float32Array([1, 2]).buffer)] },
 * ], { format: "pt" });
 * ```
 */
export function writeSafetensors(path: string, entries: readonly SafetensorsWriteEntry[], metadata?: Readonly<Record<string, string>>): number {
  const header = safetensorsHeader(entries, metadata);
  const partial = `${path}.partial`;
  let fd: number;
  try {
    fd = openSync(partial, "w");
  } catch (cause) {
    throw new HaloError(H1bErrorCode.H1B_IO, "cannot create file", { path: partial, actual: (cause as NodeJS.ErrnoException).code, cause });
  }
  let position = 0;
  let open = true;
  const put = (bytes: Uint8Array): void => {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
    position += bytes.length;
  };
  try {
    put(header);
    for (const entry of entries) {
      const expected = safetensorsEntryBytes(entry);
      let written = 0;
      for (const chunk of entry.chunks()) {
        written += chunk.length;
        if (written > expected) break;
        put(chunk);
      }
      if (written !== expected) {
        throw new HaloError(H1bErrorCode.H1B_BAD_TENSOR, `tensor ${entry.name} produced the wrong number of bytes`, {
          path,
          field: entry.name,
          expected,
          actual: written,
        });
      }
    }
    open = false;
    closeSync(fd);
    renameSync(partial, path);
  } catch (error) {
    if (open) closeSync(fd);
    rmSync(partial, { force: true });
    if (error instanceof HaloError) throw error;
    throw new HaloError(H1bErrorCode.H1B_IO, "writing the safetensors file failed", {
      path,
      actual: (error as NodeJS.ErrnoException).code ?? String(error),
      cause: error,
    });
  }
  return position;
}
