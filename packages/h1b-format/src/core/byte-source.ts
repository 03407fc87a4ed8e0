// ByteSource: random access to a model file's bytes without reading the whole file into the JS heap.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { resolve } from "node:path";
import { HaloError } from "@halo/errors";
import { H1bErrorCode } from "../errors.js";
// eslint-disable-next-line @typescript-eslint/no-unused-vars -- in scope for the {@link TensorFileRange} in the TSDoc below
import type { TensorFileRange } from "./model.js";

/**
 * Random-access bytes of a file or buffer. Readers keep offsets and ask for bytes only when a
 * tensor is used, so opening a 2 GB model costs its header, not its size.
 */
export interface ByteSource {
  /** The file path, or `"<memory>"` for buffers. Used in error messages. */
  readonly path: string;
  /**
   * The absolute path of the file whose bytes `read` returns verbatim (`read(o, n)` is bytes
   * `[o, o + n)` of that file), or null / absent when the bytes are not a file's (memory sources,
   * wrappers). Lets tensors report {@link TensorFileRange}s so a backend can map the file.
   */
  readonly filePath?: string | null;
  /** Total size in bytes. */
  readonly byteLength: number;
  /**
   * Bytes `[offset, offset + length)`. Memory sources return a view (no copy); file sources
   * read into a fresh buffer. Throws `H1B_TRUNCATED` when the range passes the end.
   */
  read(offset: number, length: number): Uint8Array;
  /** Releases the file descriptor. Idempotent. */
  close(): void;
}

/** Throws `H1B_TRUNCATED` unless `[offset, offset + length)` lies inside a source of `byteLength` bytes. */
export function checkRange(path: string, byteLength: number, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new HaloError(H1bErrorCode.H1B_BAD_OFFSET, `invalid byte range for ${what}`, {
      path,
      offset,
      expected: "non-negative whole numbers",
      actual: `offset ${offset}, length ${length}`,
    });
  }
  if (offset + length > byteLength) {
    throw new HaloError(H1bErrorCode.H1B_TRUNCATED, `file ends inside ${what}`, {
      path,
      offset,
      expected: `${length} bytes`,
      actual: `${Math.max(0, byteLength - offset)} bytes before end of file (size ${byteLength})`,
      hint: "The file is truncated or corrupt; download or convert it again",
    });
  }
}

/**
 * A {@link ByteSource} over bytes already in memory. `read` returns views, never copies. `path`
 * only names the bytes in error messages: `filePath` is null even when they were read from a file.
 *
 * @example
 * ```ts
 * const model = readHalo(memorySource(readFileSync("m.halo"), "m.halo")); // fileRange() → null
 * ```
 */
export function memorySource(bytes: Uint8Array, path = "<memory>"): ByteSource {
  return {
    path,
    filePath: null,
    byteLength: bytes.byteLength,
    read(offset: number, length: number): Uint8Array {
      checkRange(path, bytes.byteLength, offset, length, "requested range");
      return bytes.subarray(offset, offset + length);
    },
    close(): void {},
  };
}

/**
 * A {@link ByteSource} over a file, read lazily with positioned reads. The file stays open
 * until `close()`. Its `filePath` is `path` made absolute, so tensors read through it report
 * where their bytes lie ({@link TensorFileRange}).
 *
 * @example
 * ```ts
 * const model = readHalo(fileSource("m.halo"));
 * model.layers[0]!.q.fileRange(); // { path: "/abs/m.halo", offset, length }
 * ```
 */
export function fileSource(path: string): ByteSource {
  let fd: number | null;
  let size: number;
  try {
    fd = openSync(path, "r");
    size = fstatSync(fd).size;
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new HaloError(
      code === "ENOENT" ? H1bErrorCode.H1B_MISSING_FILE : H1bErrorCode.H1B_IO,
      code === "ENOENT" ? "file does not exist" : "cannot open file",
      { path, actual: code ?? String(cause), hint: "Check the path and its permissions", cause },
    );
  }
  return {
    path,
    filePath: resolve(path),
    byteLength: size,
    read(offset: number, length: number): Uint8Array {
      checkRange(path, size, offset, length, "requested range");
      if (fd === null) {
        throw new HaloError(H1bErrorCode.H1B_IO, "file source used after close", { path, hint: "Open the model again" });
      }
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) {
          throw new HaloError(H1bErrorCode.H1B_TRUNCATED, "file shrank while reading", {
            path,
            offset: offset + done,
            expected: `${length - done} more bytes`,
            actual: "end of file",
          });
        }
        done += n;
      }
      return new Uint8Array(out.buffer, out.byteOffset, length);
    },
    close(): void {
      if (fd !== null) {
        closeSync(fd);
        fd = null;
      }
    },
  };
}
