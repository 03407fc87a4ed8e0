// halo's cache directory, one rule for the model cache (`halo pull`) and the verified-files records inside it.
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The folder inside the model cache where {@link verifyModelWeights} remembers verified files. A
 * dot-directory: `halo models` lists no dot-directory as a model and `halo rm` refuses them.
 */
export const VERIFIED_DIR_NAME = ".verified";

/**
 * halo's model cache: `$HALO_CACHE_DIR` when set, else `$XDG_CACHE_HOME/halo/models`, else
 * `~/.cache/halo/models`. Pulled models live in it, and the records of verified files in its
 * {@link VERIFIED_DIR_NAME} folder.
 *
 * @example
 * ```ts
 * modelCacheDir({ HALO_CACHE_DIR: "/data/models" }); // "/data/models"
 * modelCacheDir({ HOME: "/home/u" }); // "/home/u/.cache/halo/models"
 * ```
 */
export function modelCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const explicit = env["HALO_CACHE_DIR"];
  if (explicit !== undefined && explicit !== "") return explicit;
  const xdg = env["XDG_CACHE_HOME"];
  const base = xdg !== undefined && xdg !== "" ? xdg : join(env["HOME"] ?? homedir(), ".cache");
  return join(base, "halo", "models");
}
