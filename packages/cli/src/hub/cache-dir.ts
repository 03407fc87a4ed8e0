// Where pulled models live: $HALO_CACHE_DIR, else ~/.cache/halo/models (XDG_CACHE_HOME respected).
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The model cache root: `$HALO_CACHE_DIR` when set, else `$XDG_CACHE_HOME/halo/models`, else
 * `~/.cache/halo/models`.
 *
 * @example
 * ```ts
 * modelCacheDir({ HALO_CACHE_DIR: "/data/models" }); // "/data/models"
 * ```
 */
export function modelCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  const explicit = env["HALO_CACHE_DIR"];
  if (explicit !== undefined && explicit !== "") return explicit;
  const xdg = env["XDG_CACHE_HOME"];
  const base = xdg !== undefined && xdg !== "" ? xdg : join(env["HOME"] ?? homedir(), ".cache");
  return join(base, "halo", "models");
}

/**
 * The directory of one repository revision in the cache: `<root>/<owner>/<name>/<revision>`.
 *
 * @example
 * ```ts
 * snapshotDir("/c", "microsoft/bitnet-b1.58-2B-4T", "main"); // "/c/microsoft/bitnet-b1.58-2B-4T/main"
 * ```
 */
export function snapshotDir(root: string, repo: string, revision: string): string {
  return join(root, ...repo.split("/"), revision);
}

/**
 * Name of the marker written into a snapshot directory once every file is downloaded and checked.
 *
 * @example
 * ```ts
 * const complete = existsSync(join(snapshotDir(root, repo, "main"), COMPLETE_MARKER));
 * ```
 */
export const COMPLETE_MARKER = ".halo-complete.json";
