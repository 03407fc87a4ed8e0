// The Hugging Face hub API as halo uses it: the file list of a revision and file URLs, with HF_TOKEN and HF_ENDPOINT.
import { HaloError } from "@halo/errors";
import { CliErrorCode } from "../errors.js";

/** The hub halo talks to. */
export interface HubOptions {
  /** Base URL, `HF_ENDPOINT` or `https://huggingface.co`. */
  readonly endpoint: string;
  /** Bearer token (`HF_TOKEN`). */
  readonly token?: string;
  /** `fetch` to use (tests inject one; default the global). */
  readonly fetch?: typeof fetch;
}

/**
 * The default hub endpoint.
 *
 * @example
 * ```ts
 * const hub: HubOptions = { endpoint: process.env.HF_ENDPOINT ?? DEFAULT_HF_ENDPOINT };
 * ```
 */
export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

/** One file of a repository revision as the hub lists it. */
export interface HubFile {
  /** Path inside the repository (`model.safetensors`, `sub/x.json`). */
  readonly path: string;
  /** Size in bytes, when the hub reports it. */
  readonly size?: number;
  /** sha256 of the content (LFS files). */
  readonly sha256?: string;
  /** Git blob id (sha1 of `blob <size>\0<content>`) for files stored in git itself. */
  readonly gitBlobId?: string;
}

/** A revision's commit and file list. */
export interface RepoListing {
  readonly repo: string;
  readonly revision: string;
  /** Commit sha the revision resolved to. */
  readonly commit: string;
  readonly files: readonly HubFile[];
}

/**
 * Hub options from the environment: `HF_ENDPOINT` (trailing slash removed) and `HF_TOKEN`
 * (also `HUGGING_FACE_HUB_TOKEN`).
 *
 * @example
 * ```ts
 * const hub = hubOptionsFromEnv(process.env);
 * ```
 */
export function hubOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): HubOptions {
  const endpoint = (env["HF_ENDPOINT"] ?? "").replace(/\/+$/, "") || DEFAULT_HF_ENDPOINT;
  const token = env["HF_TOKEN"] ?? env["HUGGING_FACE_HUB_TOKEN"];
  return token !== undefined && token !== "" ? { endpoint, token } : { endpoint };
}

/** Request headers for the hub (the bearer token when there is one). */
export function hubHeaders(hub: HubOptions): Record<string, string> {
  return hub.token !== undefined ? { authorization: `Bearer ${hub.token}`, "user-agent": "halo-cli" } : { "user-agent": "halo-cli" };
}

/**
 * URL of one file of a revision: `{endpoint}/{repo}/resolve/{revision}/{file}`.
 *
 * @example
 * ```ts
 * resolveUrl(hub, "microsoft/bitnet-b1.58-2B-4T", "main", "config.json");
 * ```
 */
export function resolveUrl(hub: HubOptions, repo: string, revision: string, file: string): string {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${hub.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

/**
 * What to do when the hub cannot be reached (the one line users see offline).
 *
 * @example
 * ```ts
 * console.error(`cannot reach the hub. ${OFFLINE_HINT}`);
 * ```
 */
export const OFFLINE_HINT =
  "Pass --model <file> with a model you already have, or set HF_ENDPOINT to a reachable mirror, or check the network; `halo serve --demo` serves halo-tiny, a small demo model shipped with halo, offline";

/** Turns a failed `fetch` (network level) into a one-line HaloError. */
export function unreachable(hub: HubOptions, url: string, cause: unknown): HaloError {
  const reason = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause);
  return new HaloError(CliErrorCode.CLI_HUB_UNREACHABLE, `cannot reach the model hub at ${hub.endpoint} (${reason})`, {
    path: url,
    hint: OFFLINE_HINT,
  });
}

/** Turns a non-OK hub status into a one-line HaloError naming what to do. */
export function statusError(status: number, what: string, url: string, hub: HubOptions): HaloError {
  if (status === 401 || status === 403) {
    return new HaloError(CliErrorCode.CLI_HUB_AUTH, `the hub refused access to ${what} (HTTP ${status})`, {
      path: url,
      hint:
        hub.token === undefined
          ? "The repository is private or gated: accept its licence on the hub and set HF_TOKEN to an access token"
          : "HF_TOKEN was sent but refused: check the token, and accept the repository's licence on the hub if it is gated",
    });
  }
  if (status === 404) {
    return new HaloError(CliErrorCode.CLI_HUB_NOT_FOUND, `the hub has no ${what} (HTTP 404)`, {
      path: url,
      hint: "Check the spelling owner/name (and @revision), e.g. `halo pull microsoft/bitnet-b1.58-2B-4T`",
    });
  }
  return new HaloError(CliErrorCode.CLI_HUB_HTTP, `the hub answered HTTP ${status} for ${what}`, {
    path: url,
    expected: "HTTP 200",
    actual: status,
    hint: "Try again later; if it persists, check HF_ENDPOINT",
  });
}

interface RawSibling {
  rfilename?: unknown;
  size?: unknown;
  blobId?: unknown;
  lfs?: { sha256?: unknown; size?: unknown } | null;
}

/**
 * Lists the files of a repository revision with sizes and hashes:
 * `GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true`.
 *
 * @example
 * ```ts
 * const { commit, files } = await listRepoFiles(hubOptionsFromEnv(process.env), "microsoft/bitnet-b1.58-2B-4T", "main");
 * ```
 */
export async function listRepoFiles(hub: HubOptions, repo: string, revision: string): Promise<RepoListing> {
  const url = `${hub.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const doFetch = hub.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(url, { headers: hubHeaders(hub) });
  } catch (cause) {
    throw unreachable(hub, url, cause);
  }
  if (!response.ok) throw statusError(response.status, `repository ${repo} at revision ${revision}`, url, hub);
  let body: { sha?: unknown; siblings?: unknown };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    throw new HaloError(CliErrorCode.CLI_HUB_HTTP, "the hub's file list is not JSON", { path: url, hint: "Check HF_ENDPOINT points at a Hugging Face hub" });
  }
  if (!Array.isArray(body.siblings)) {
    throw new HaloError(CliErrorCode.CLI_HUB_HTTP, "the hub's answer has no file list", {
      path: url,
      field: "siblings",
      expected: "an array",
      actual: typeof body.siblings,
      hint: "Check HF_ENDPOINT points at a Hugging Face hub",
    });
  }
  const files: HubFile[] = [];
  for (const raw of body.siblings as RawSibling[]) {
    if (typeof raw.rfilename !== "string" || raw.rfilename === "" || raw.rfilename.split("/").some((p) => p === ".." || p === "")) {
      throw new HaloError(CliErrorCode.CLI_HUB_HTTP, "the hub listed a file with an unusable name", {
        path: url,
        field: "rfilename",
        actual: raw.rfilename,
        hint: "Check HF_ENDPOINT points at a Hugging Face hub",
      });
    }
    const lfsSize = raw.lfs?.size;
    const size = typeof lfsSize === "number" ? lfsSize : typeof raw.size === "number" ? raw.size : undefined;
    const sha256 = typeof raw.lfs?.sha256 === "string" ? raw.lfs.sha256.toLowerCase() : undefined;
    const gitBlobId = sha256 === undefined && typeof raw.blobId === "string" ? raw.blobId.toLowerCase() : undefined;
    files.push({
      path: raw.rfilename,
      ...(size !== undefined ? { size } : {}),
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(gitBlobId !== undefined ? { gitBlobId } : {}),
    });
  }
  return { repo, revision, commit: typeof body.sha === "string" ? body.sha : revision, files };
}
