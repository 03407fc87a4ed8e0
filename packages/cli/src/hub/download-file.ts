// One file from a URL into the cache: a `.part` file resumed with HTTP Range, size and hash checks, atomic rename.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { HaloError } from "@halo/errors";
import { CliErrorCode } from "../errors.js";
import { statusError, unreachable, type HubOptions } from "./hub-client.js";

/** Where writes go (tests inject one that fails with ENOSPC). */
export interface FileWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens `path` for writing, appending when `append`, truncating otherwise. */
export type OpenWriter = (path: string, append: boolean) => Promise<FileWriter>;

/**
 * The default writer: a file handle.
 *
 * @example
 * ```ts
 * const writer = await openFileWriter("/tmp/x.part", false);
 * await writer.write(new Uint8Array([1, 2]));
 * await writer.close();
 * ```
 */
export const openFileWriter: OpenWriter = async (path, append) => {
  const handle = await open(path, append ? "a" : "w");
  return {
    async write(chunk) {
      let done = 0;
      while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
    },
    close: () => handle.close(),
  };
};

/** What to download and how to check it. */
export interface DownloadTarget {
  readonly url: string;
  /** Final path; the download goes to `<dest>.part` first. */
  readonly dest: string;
  /** Expected size in bytes (from the hub), else the server's Content-Length is used. */
  readonly size?: number;
  /** Expected sha256 (hex). */
  readonly sha256?: string;
  /** Expected git blob id (sha1 of `blob <size>\0` + content), checked when there is no sha256. */
  readonly gitBlobId?: string;
  /** Name shown in messages. */
  readonly label: string;
}

/** How a download went. */
export interface DownloadResult {
  readonly path: string;
  readonly bytes: number;
  /** Bytes fetched over the network by this call. */
  readonly fetchedBytes: number;
  /** Bytes taken over from an earlier `.part` file. */
  readonly resumedFrom: number;
  /** True when the file was already complete in the cache. */
  readonly cached: boolean;
  /** Which check was made: `sha256`, `git-sha1` or `size` (no hash known). */
  readonly verified: "sha256" | "git-sha1" | "size";
}

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  readonly hub: HubOptions;
  readonly headers: Readonly<Record<string, string>>;
  /** Called as bytes arrive: bytes of the file present so far, total (when known), bytes fetched in this call. */
  readonly onProgress?: (done: number, total: number | undefined, fetched: number) => void;
  readonly openWriter?: OpenWriter;
  readonly signal?: AbortSignal;
}

async function hashExisting(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

function fileError(error: unknown, path: string): HaloError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new HaloError(CliErrorCode.CLI_DISK_FULL, "the disk is full", {
      path,
      hint: "Free space there or set HALO_CACHE_DIR to a disk with room, then pull again (the partial file resumes)",
    });
  }
  return new HaloError(CliErrorCode.CLI_DISK_FULL, `cannot write the model cache (${code ?? (error as Error).message})`, {
    path,
    hint: "Make the directory writable or set HALO_CACHE_DIR to one that is",
  });
}

/**
 * Downloads `target.url` to `target.dest`: resumes `<dest>.part` with an HTTP Range request,
 * checks the size and sha256 (or git blob sha1) against the expected values, deletes the file on a
 * mismatch, and renames `.part` to `dest` only when every check passed. A file already at `dest`
 * with the expected size is kept (it was checked when it was written).
 *
 * @example
 * ```ts
 * await downloadFile({ url, dest: "/cache/x/model.safetensors", size, sha256, label: "model.safetensors" }, { hub, headers: hubHeaders(hub) });
 * ```
 */
export async function downloadFile(target: DownloadTarget, options: DownloadOptions): Promise<DownloadResult> {
  const verified = target.sha256 !== undefined ? "sha256" : target.gitBlobId !== undefined && target.size !== undefined ? "git-sha1" : "size";
  const existing = await stat(target.dest).catch(() => undefined);
  if (existing !== undefined && existing.isFile() && (target.size === undefined || existing.size === target.size)) {
    return { path: target.dest, bytes: existing.size, fetchedBytes: 0, resumedFrom: 0, cached: true, verified };
  }
  try {
    await mkdir(dirname(target.dest), { recursive: true });
  } catch (error) {
    throw fileError(error, dirname(target.dest));
  }
  const part = `${target.dest}.part`;
  let offset = (await stat(part).catch(() => undefined))?.size ?? 0;
  if (target.size !== undefined && offset > target.size) {
    await rm(part, { force: true });
    offset = 0;
  }
  const headers: Record<string, string> = { ...options.headers };
  if (offset > 0) headers["range"] = `bytes=${offset}-`;
  const doFetch = options.hub.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(target.url, { headers, ...(options.signal !== undefined ? { signal: options.signal } : {}) });
  } catch (cause) {
    throw unreachable(options.hub, target.url, cause);
  }
  if (response.status === 416 && offset > 0) {
    // The part file is at least as long as the file: start over.
    await response.body?.cancel();
    await rm(part, { force: true });
    return downloadFile(target, options);
  }
  if (!response.ok) throw statusError(response.status, `file ${target.label}`, target.url, options.hub);
  const append = offset > 0 && response.status === 206;
  if (!append) offset = 0;
  const lengthHeader = response.headers.get("content-length");
  const total = target.size ?? (lengthHeader !== null && /^\d+$/.test(lengthHeader) ? offset + Number(lengthHeader) : undefined);
  const hash = createHash(verified === "git-sha1" ? "sha1" : "sha256");
  if (verified === "git-sha1") hash.update(`blob ${target.size}\0`);
  if (append) await hashExisting(part, hash);
  const openWriter = options.openWriter ?? openFileWriter;
  let writer: FileWriter;
  try {
    writer = await openWriter(part, append);
  } catch (error) {
    throw fileError(error, part);
  }
  let done = offset;
  let fetched = 0;
  let interruption: unknown;
  try {
    if (response.body === null) throw new Error("empty body");
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        try {
          await writer.write(chunk);
        } catch (error) {
          throw fileError(error, part);
        }
        hash.update(chunk);
        done += chunk.length;
        fetched += chunk.length;
        options.onProgress?.(done, total, fetched);
      }
    } catch (error) {
      if (error instanceof HaloError) throw error;
      interruption = error;
    }
  } finally {
    await writer.close().catch(() => undefined);
  }
  if (options.signal?.aborted === true) throw options.signal.reason;
  if (interruption !== undefined || (total !== undefined && done < total)) {
    throw new HaloError(CliErrorCode.CLI_DOWNLOAD_INTERRUPTED, `download of ${target.label} stopped at ${done} of ${total ?? "?"} bytes`, {
      path: part,
      expected: total,
      actual: done,
      hint: "Run the same command again: it resumes from the partial file",
    });
  }
  const digest = hash.digest("hex");
  const expectedHash = verified === "sha256" ? target.sha256 : verified === "git-sha1" ? target.gitBlobId : undefined;
  if ((total !== undefined && done !== total) || (expectedHash !== undefined && digest !== expectedHash)) {
    await rm(part, { force: true });
    throw new HaloError(
      CliErrorCode.CLI_DOWNLOAD_CHECKSUM,
      `${target.label} does not match the hub's ${done !== total ? "size" : verified}; the download was deleted`,
      {
        path: target.dest,
        expected: done !== total ? total : expectedHash,
        actual: done !== total ? done : digest,
        hint: "Pull again; if it fails again the mirror (HF_ENDPOINT) or a proxy is serving a different file",
      },
    );
  }
  try {
    await rename(part, target.dest);
  } catch (error) {
    throw fileError(error, target.dest);
  }
  return { path: target.dest, bytes: done, fetchedBytes: fetched, resumedFrom: append ? offset : 0, cached: false, verified };
}
