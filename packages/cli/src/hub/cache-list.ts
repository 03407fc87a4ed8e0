// What is in the model caches (halo's own and, read-only, the Hugging Face hub cache), and deleting from halo's.
import { existsSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { HaloError } from "@halo/errors";
import { VERIFIED_DIR_NAME } from "@halo/h1b-format";
import { CliErrorCode } from "../errors.js";
import { COMPLETE_MARKER, modelCacheDir } from "./cache-dir.js";
import { hfHubCacheDir, listHfCache } from "./hf-cache.js";

/** One cached model (a repository revision, or a file pulled by URL). */
export interface CachedModel {
  /** How commands name it: `owner/name`, `owner/name@revision`, or `urls/<host>/<path>` for a file pulled by URL. */
  readonly name: string;
  /** `halo`: in halo's cache (`halo rm` deletes it); `huggingface`: in the Hugging Face hub cache (read-only to halo). */
  readonly source: "halo" | "huggingface";
  /** `complete`; `partial` (pulled with --include: only some files); `incomplete` (a pull that did not finish, or a hub snapshot halo cannot load). */
  readonly status: "complete" | "partial" | "incomplete";
  readonly path: string;
  readonly bytes: number;
}

/** Both caches' directories and what they hold. */
export interface CacheListing {
  readonly haloCache: string;
  readonly hfCache: string;
  readonly models: readonly CachedModel[];
}

function sizeOf(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.size;
  let total = 0;
  for (const entry of readdirSync(path)) total += sizeOf(join(path, entry));
  return total;
}

/** The directories in `path`, dot-directories left out: they are halo's own records (`.verified/`), never models. */
function subdirectories(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith("."))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

function filesUnder(root: string, prefix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, prefix), { withFileTypes: true })) {
    const path = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(root, path));
    else if (!entry.name.endsWith(".part")) out.push(path);
  }
  return out.sort();
}

/**
 * Models in halo's cache: `<root>/<owner>/<name>/<revision>/` snapshots (complete once
 * `.halo-complete.json` is written) and files pulled by URL under `<root>/urls/`. Dot-directories
 * (`.verified/`, the verified-files records) are not models.
 *
 * @example
 * ```ts
 * listHaloCache(modelCacheDir(process.env)).map((m) => m.name); // ["microsoft/bitnet-b1.58-2B-4T"]
 * ```
 */
export function listHaloCache(root: string): CachedModel[] {
  const out: CachedModel[] = [];
  for (const owner of subdirectories(root)) {
    if (owner === "urls") {
      for (const file of filesUnder(root, "urls")) {
        const path = join(root, ...file.split("/"));
        out.push({ name: file, source: "halo", status: "complete", path, bytes: statSync(path).size });
      }
      continue;
    }
    for (const name of subdirectories(join(root, owner))) {
      for (const revision of subdirectories(join(root, owner, name))) {
        const path = join(root, owner, name, revision);
        let status: CachedModel["status"] = "incomplete";
        try {
          const marker = JSON.parse(readFileSync(join(path, COMPLETE_MARKER), "utf8")) as { include?: string[] };
          status = (marker.include ?? []).length > 0 ? "partial" : "complete";
        } catch {
          // no marker: the pull did not finish
        }
        out.push({ name: `${owner}/${name}${revision === "main" ? "" : `@${revision}`}`, source: "halo", status, path, bytes: sizeOf(path) });
      }
    }
  }
  return out;
}

/**
 * Everything cached: halo's cache ({@link modelCacheDir}) and the Hugging Face hub cache
 * (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`), whose complete snapshots `run`,
 * `chat` and `serve` use instead of downloading.
 *
 * @example
 * ```ts
 * const { models } = listCachedModels(process.env);
 * ```
 */
export function listCachedModels(env: Readonly<Record<string, string | undefined>>): CacheListing {
  const haloCache = modelCacheDir(env);
  const hfCache = hfHubCacheDir(env);
  const hf: CachedModel[] = listHfCache(hfCache).map((s) => ({
    name: s.revisions.includes("main") ? s.repo : `${s.repo}@${s.revisions[0] ?? s.commit}`,
    source: "huggingface",
    status: s.loadable !== null ? "complete" : "incomplete",
    path: s.path,
    bytes: s.bytes,
  }));
  return { haloCache, hfCache, models: [...listHaloCache(haloCache), ...hf] };
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

/** Removes empty directories from `dir` up to (not including) `root`. */
function pruneEmptyParents(root: string, dir: string): void {
  let current = dir;
  while (inside(root, current)) {
    try {
      if (readdirSync(current).length > 0) return;
      rmdirSync(current);
    } catch {
      return;
    }
    current = dirname(current);
  }
}

/**
 * Deletes a model from halo's cache and returns what went: `owner/name` removes every cached
 * revision of it, `owner/name@revision` one, `urls/<host>/<path>` one file pulled by URL, and a
 * path removes that file or directory if it lies inside the cache. Refuses (`CLI_USAGE`) a path
 * outside halo's cache or in one of its dot-directories (halo's records, such as `.verified/`) and (`CLI_MODEL_NOT_CACHED`) a name that is not cached — saying when it
 * is in the Hugging Face cache, which halo never deletes from — listing what is cached.
 *
 * @example
 * ```ts
 * removeCachedModel(process.env, "microsoft/bitnet-b1.58-2B-4T"); // [{ name: "microsoft/bitnet-b1.58-2B-4T", … }]
 * ```
 */
export function removeCachedModel(env: Readonly<Record<string, string | undefined>>, target: string): CachedModel[] {
  const listing = listCachedModels(env);
  const root = existsSync(listing.haloCache) ? realpathSync(listing.haloCache) : resolve(listing.haloCache);
  const halo = listing.models.filter((m) => m.source === "halo");
  const byName = halo.filter((m) => m.name === target || m.name.split("@")[0] === target);
  let chosen: CachedModel[] = byName;
  if (chosen.length === 0 && (existsSync(target) || isAbsolute(target) || target.startsWith("."))) {
    const path = existsSync(target) ? realpathSync(target) : resolve(target);
    if (!inside(root, path)) {
      throw new HaloError(CliErrorCode.CLI_USAGE, "refusing to delete a path outside halo's model cache", {
        path,
        expected: `a model name (\`halo models\` lists them) or a path inside ${root}`,
        hint: "halo rm deletes only what halo pulled; remove other files yourself",
      });
    }
    const hidden = relative(root, path)
      .split(sep)
      .find((part) => part.startsWith("."));
    if (hidden !== undefined) {
      throw new HaloError(CliErrorCode.CLI_USAGE, `refusing to delete ${hidden}: it holds halo's own records, not a model`, {
        path,
        expected: "a model name (`halo models` lists them) or a model's path in the cache",
        hint:
          hidden === VERIFIED_DIR_NAME
            ? `Deleting it only makes the next loads verify their weights again; do it yourself if you mean to`
            : "Remove it yourself if you mean to",
      });
    }
    if (!existsSync(path)) chosen = [];
    else {
      const cached = halo.find((m) => realpathSync(m.path) === path);
      chosen = [cached ?? { name: relative(root, path).split(sep).join("/"), source: "halo", status: "complete", path, bytes: sizeOf(path) }];
    }
  }
  if (chosen.length === 0) {
    const inHf = listing.models.find((m) => m.source === "huggingface" && (m.name === target || m.name.split("@")[0] === target));
    const cachedNames = halo.map((m) => m.name);
    throw new HaloError(
      CliErrorCode.CLI_MODEL_NOT_CACHED,
      inHf !== undefined ? `${target} is in the Hugging Face cache, not halo's; halo only reads that cache` : `${target} is not in halo's model cache`,
      {
        ...(inHf !== undefined ? { path: inHf.path } : {}),
        expected: cachedNames.length > 0 ? `one of ${cachedNames.join(", ")}` : `a cached model (the cache at ${listing.haloCache} is empty)`,
        hint:
          inHf !== undefined
            ? "Delete it with the Hugging Face tools (`hf cache delete` / `huggingface-cli delete-cache`)"
            : "`halo models` lists what is cached",
      },
    );
  }
  for (const model of chosen) {
    const parent = realpathSync(dirname(model.path));
    rmSync(model.path, { recursive: true, force: true });
    pruneEmptyParents(root, parent);
  }
  return chosen;
}
