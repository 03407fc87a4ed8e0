// `pull`: a Hugging Face repository revision (or one file by URL) into the cache, checked, resumable, optionally converted.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HaloError, isHaloError } from "@halo/errors";
import { convertModel, openModel } from "@halo/h1b-format";
import { installedPackings } from "../installed-packings.js";
import { CliErrorCode } from "../errors.js";
import { COMPLETE_MARKER, snapshotDir } from "./cache-dir.js";
import { downloadFile, type DownloadResult, type OpenWriter } from "./download-file.js";
import { hubHeaders, listRepoFiles, resolveUrl, type HubFile, type HubOptions } from "./hub-client.js";

/** What `halo pull` was asked for. */
export type PullSpec =
  | { readonly kind: "repo"; readonly repo: string; readonly revision: string; readonly endpoint?: string }
  | { readonly kind: "hub-file"; readonly repo: string; readonly revision: string; readonly file: string; readonly endpoint: string }
  | { readonly kind: "url"; readonly url: string };

const REPO = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Parses `owner/name`, `owner/name@revision`, `hf:owner/name`, a hub repository URL
 * (`https://huggingface.co/owner/name`), a hub file URL (`…/owner/name/resolve/rev/file`) or any
 * other http(s) URL (one file). Anything else is a usage error.
 *
 * @example
 * ```ts
 * parsePullSpec("microsoft/bitnet-b1.58-2B-4T@main"); // { kind: "repo", repo: "microsoft/bitnet-b1.58-2B-4T", revision: "main" }
 * ```
 */
export function parsePullSpec(spec: string): PullSpec {
  if (/^https?:\/\//.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new HaloError(CliErrorCode.CLI_USAGE, "not a valid URL", { actual: spec, hint: "Give owner/name or a full http(s) URL" });
    }
    const parts = url.pathname
      .split("/")
      .filter((p) => p !== "")
      .map(decodeURIComponent);
    if (parts.length >= 5 && parts[2] === "resolve") {
      return { kind: "hub-file", repo: `${parts[0]}/${parts[1]}`, revision: parts[3]!, file: parts.slice(4).join("/"), endpoint: url.origin };
    }
    if (parts.length === 2 && REPO.test(`${parts[0]}/${parts[1]}`) && url.search === "") {
      return { kind: "repo", repo: `${parts[0]}/${parts[1]}`, revision: "main", endpoint: url.origin };
    }
    return { kind: "url", url: spec };
  }
  const bare = spec.startsWith("hf:") ? spec.slice(3) : spec;
  const at = bare.indexOf("@");
  const repo = at >= 0 ? bare.slice(0, at) : bare;
  const revision = at >= 0 ? bare.slice(at + 1) : "main";
  if (!REPO.test(repo) || revision === "" || revision.includes("..")) {
    throw new HaloError(CliErrorCode.CLI_USAGE, "not a Hugging Face repository or URL", {
      expected: "owner/name[@revision] or an http(s) URL",
      actual: spec,
      hint: "e.g. `halo pull microsoft/bitnet-b1.58-2B-4T`",
    });
  }
  return { kind: "repo", repo, revision };
}

/** Options of {@link pull}. */
export interface PullOptions {
  readonly hub: HubOptions;
  /** Cache root (see `modelCacheDir`). */
  readonly cacheDir: string;
  /** Glob patterns (`*`, `?`) of repository files to fetch; default all. */
  readonly include?: readonly string[];
  /** Write `model.halo` next to the snapshot after pulling. */
  readonly convert?: boolean;
  /** Automatic resumes after an interrupted transfer, per file (default 3). */
  readonly retries?: number;
  /** Called when a file starts (`onFile`) and as its bytes arrive (`onProgress`). */
  readonly onFile?: (file: string, size: number | undefined) => void;
  readonly onProgress?: (file: string, done: number, total: number | undefined, fetched: number) => void;
  readonly onFileDone?: (file: string, result: DownloadResult) => void;
  readonly openWriter?: OpenWriter;
  readonly signal?: AbortSignal;
}

/** What {@link pull} fetched. */
export interface PullResult {
  /** The snapshot directory (repositories) or the file (URLs). */
  readonly path: string;
  /** The converted `.halo` file, when `convert` was asked. */
  readonly converted?: string;
  readonly commit?: string;
  readonly files: readonly DownloadResult[];
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

async function withRetries(retries: number, attempt: () => Promise<DownloadResult>): Promise<DownloadResult> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(isHaloError(error) && error.code === CliErrorCode.CLI_DOWNLOAD_INTERRUPTED) || tries >= retries) throw error;
    }
  }
}

function fileTarget(hub: HubOptions, repo: string, revision: string, dir: string, file: HubFile): Parameters<typeof downloadFile>[0] {
  return {
    url: resolveUrl(hub, repo, revision, file.path),
    dest: join(dir, ...file.path.split("/")),
    label: file.path,
    ...(file.size !== undefined ? { size: file.size } : {}),
    ...(file.sha256 !== undefined ? { sha256: file.sha256 } : {}),
    ...(file.gitBlobId !== undefined ? { gitBlobId: file.gitBlobId } : {}),
  };
}

/**
 * Reads a complete snapshot's marker, or undefined when the snapshot is missing or unfinished.
 *
 * @example
 * ```ts
 * if (await readMarker(dir)) console.log("cached");
 * ```
 */
export async function readMarker(dir: string): Promise<{ repo: string; revision: string; commit: string; files: string[]; include: string[] } | undefined> {
  try {
    const marker = JSON.parse(await readFile(join(dir, COMPLETE_MARKER), "utf8")) as {
      repo: string;
      revision: string;
      commit: string;
      files: string[];
      include?: string[];
    };
    return { ...marker, include: marker.include ?? [] };
  } catch {
    return undefined;
  }
}

/**
 * Pulls a repository revision (every file, or those matching `include`) into
 * `<cacheDir>/<owner>/<name>/<revision>/`, or one file by URL into `<cacheDir>/urls/<host>/<path>`.
 * Files are checked against the hub's sizes and sha256; interrupted transfers resume. A marker
 * file records a complete snapshot. With `convert`, the snapshot is also written as `model.halo`, in
 * the own layout of the best installed backend that runs here (see `installedPackings`).
 *
 * @example
 * ```ts
 * const { path } = await pull(parsePullSpec("microsoft/bitnet-b1.58-2B-4T"), { hub: hubOptionsFromEnv(process.env), cacheDir: modelCacheDir(process.env) });
 * ```
 */
export async function pull(spec: PullSpec, options: PullOptions): Promise<PullResult> {
  const retries = options.retries ?? 3;
  const common = {
    headers: {},
    ...(options.openWriter !== undefined ? { openWriter: options.openWriter } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  };
  if (spec.kind === "url") {
    const url = new URL(spec.url);
    const parts = url.pathname
      .split("/")
      .filter((p) => p !== "" && p !== "..")
      .map(decodeURIComponent);
    const dest = join(options.cacheDir, "urls", url.host.replace(/[^\w.-]/g, "_"), ...(parts.length > 0 ? parts : ["index"]));
    const label = parts.at(-1) ?? url.host;
    options.onFile?.(label, undefined);
    const result = await withRetries(retries, () =>
      downloadFile(
        { url: spec.url, dest, label },
        { ...common, hub: options.hub, headers: { "user-agent": "halo-cli" }, onProgress: (d, t, f) => options.onProgress?.(label, d, t, f) },
      ),
    );
    options.onFileDone?.(label, result);
    return { path: dest, files: [result] };
  }
  const hub: HubOptions = spec.endpoint !== undefined ? { ...options.hub, endpoint: spec.endpoint } : options.hub;
  const listing = await listRepoFiles(hub, spec.repo, spec.revision);
  const dir = snapshotDir(options.cacheDir, spec.repo, spec.revision);
  let wanted: HubFile[];
  if (spec.kind === "hub-file") {
    const file = listing.files.find((f) => f.path === spec.file);
    if (file === undefined) {
      throw new HaloError(CliErrorCode.CLI_HUB_NOT_FOUND, `${spec.repo}@${spec.revision} has no file ${spec.file}`, {
        expected: listing.files.map((f) => f.path).join(", "),
        actual: spec.file,
        hint: "Check the file name on the hub",
      });
    }
    wanted = [file];
  } else {
    const patterns = (options.include ?? []).map(globToRegExp);
    wanted = patterns.length === 0 ? [...listing.files] : listing.files.filter((f) => patterns.some((p) => p.test(f.path)));
    if (wanted.length === 0) {
      throw new HaloError(CliErrorCode.CLI_HUB_NOT_FOUND, `no file of ${spec.repo}@${spec.revision} matches --include`, {
        expected: listing.files.map((f) => f.path).join(", "),
        actual: (options.include ?? []).join(", "),
        hint: "Adjust the --include patterns",
      });
    }
  }
  const headers = hubHeaders(hub);
  const results: DownloadResult[] = [];
  for (const file of wanted) {
    options.onFile?.(file.path, file.size);
    const result = await withRetries(retries, () =>
      downloadFile(fileTarget(hub, spec.repo, spec.revision, dir, file), {
        ...common,
        hub,
        headers,
        onProgress: (d, t, f) => options.onProgress?.(file.path, d, t, f),
      }),
    );
    options.onFileDone?.(file.path, result);
    results.push(result);
  }
  await mkdir(dir, { recursive: true });
  if (spec.kind === "repo") {
    const marker = { repo: spec.repo, revision: spec.revision, commit: listing.commit, files: wanted.map((f) => f.path), include: options.include ?? [] };
    await writeFile(join(dir, COMPLETE_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
  }
  let converted: string | undefined;
  if (options.convert === true) {
    converted = join(dir, "model.halo");
    // The installed backends' layouts: a snapshot in one opens decodable, and "auto" stores that of the best one that runs here.
    const codecs = await installedPackings();
    const model = await openModel(spec.kind === "hub-file" ? join(dir, ...spec.file.split("/")) : dir, { codecs });
    try {
      await convertModel(model, converted, { format: "halo", codecs });
    } finally {
      model.close();
    }
  }
  return {
    path: spec.kind === "hub-file" ? join(dir, ...spec.file.split("/")) : dir,
    commit: listing.commit,
    files: results,
    ...(converted !== undefined ? { converted } : {}),
  };
}
