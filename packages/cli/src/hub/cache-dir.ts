// Where pulled models live: $HALO_CACHE_DIR, else ~/.cache/halo/models (XDG_CACHE_HOME respected).
import { join } from "node:path";

// One rule for the model cache and the verified-files records inside it (`.verified/`): @halo/h1b-format's.
export { modelCacheDir } from "@halo/h1b-format";

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
