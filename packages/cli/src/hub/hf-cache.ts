// The Hugging Face hub cache (huggingface_hub's layout), read-only: models the user already downloaded with other tools.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The Hugging Face hub cache directory, as `huggingface_hub` picks it: `$HF_HUB_CACHE`, else
 * `$HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
 * `~/.cache/huggingface/hub`.
 *
 * @example
 * ```ts
 * hfHubCacheDir({ HF_HOME: "/data/hf" }); // "/data/hf/hub"
 * ```
 */
export function hfHubCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  const set = (name: string): string | undefined => (env[name] !== undefined && env[name] !== "" ? env[name] : undefined);
  const explicit = set("HF_HUB_CACHE") ?? set("HUGGINGFACE_HUB_CACHE");
  if (explicit !== undefined) return explicit;
  const home = set("HF_HOME") ?? join(set("XDG_CACHE_HOME") ?? join(env["HOME"] ?? homedir(), ".cache"), "huggingface");
  return join(home, "hub");
}

/**
 * The folder of a repository in the hub cache: `models--<owner>--<name>`.
 *
 * @example
 * ```ts
 * hfRepoDir("/c", "microsoft/bitnet-b1.58-2B-4T"); // "/c/models--microsoft--bitnet-b1.58-2B-4T"
 * ```
 */
export function hfRepoDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile(); // follows the snapshot's symlinks into blobs/; a dangling one is not a file
  } catch {
    return false;
  }
}

/** Files of a snapshot, relative paths, following symlinks; dangling links are left out. */
function snapshotFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(join(dir, prefix));
  } catch {
    return out;
  }
  for (const entry of entries.sort()) {
    const relative = prefix === "" ? entry : `${prefix}/${entry}`;
    const full = join(dir, relative);
    let stats;
    try {
      stats = statSync(full);
    } catch {
      continue;
    }
    if (stats.isDirectory()) out.push(...snapshotFiles(dir, relative));
    else if (stats.isFile()) out.push(relative);
  }
  return out;
}

/**
 * What halo would load from a snapshot directory, or null when the snapshot is incomplete: the
 * directory when it holds `config.json`, `tokenizer.json` and every safetensors weight file
 * (`model.safetensors`, or each shard `model.safetensors.index.json` names); else its only
 * `.gguf` file. huggingface_hub links a file into a snapshot only once it is fully downloaded,
 * so a file present here is whole.
 *
 * @example
 * ```ts
 * loadableSnapshot("/c/models--o--n/snapshots/abc…"); // "/c/models--o--n/snapshots/abc…" or null
 * ```
 */
export function loadableSnapshot(dir: string): string | null {
  if (isFile(join(dir, "config.json")) && isFile(join(dir, "tokenizer.json"))) {
    if (isFile(join(dir, "model.safetensors"))) return dir;
    const index = join(dir, "model.safetensors.index.json");
    if (isFile(index)) {
      try {
        const map = (JSON.parse(readFileSync(index, "utf8")) as { weight_map?: Record<string, string> }).weight_map ?? {};
        const shards = new Set(Object.values(map));
        if (shards.size > 0 && [...shards].every((shard) => isFile(join(dir, shard)))) return dir;
      } catch {
        return null;
      }
    }
  }
  const ggufs = snapshotFiles(dir).filter((f) => f.toLowerCase().endsWith(".gguf"));
  return ggufs.length === 1 ? join(dir, ggufs[0]!) : null;
}

/**
 * The snapshot directory of `repo` at `revision` (a branch or tag, read from `refs/`, or a commit
 * hash) in the hub cache, or null when it is not there.
 *
 * @example
 * ```ts
 * hfSnapshotDir(hfHubCacheDir(process.env), "microsoft/bitnet-b1.58-2B-4T", "main");
 * ```
 */
export function hfSnapshotDir(cacheDir: string, repo: string, revision: string): string | null {
  const repoDir = hfRepoDir(cacheDir, repo);
  let commit = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    try {
      commit = readFileSync(join(repoDir, "refs", ...revision.split("/")), "utf8").trim();
    } catch {
      return null;
    }
  }
  const dir = join(repoDir, "snapshots", commit);
  return existsSync(dir) ? dir : null;
}

/** One snapshot found in the hub cache. */
export interface HfCachedSnapshot {
  /** `owner/name`. */
  readonly repo: string;
  /** The refs (`main`, tags) pointing at it, else its commit. */
  readonly revisions: readonly string[];
  readonly commit: string;
  readonly path: string;
  /** Bytes of its files (blobs shared by several snapshots are counted in each). */
  readonly bytes: number;
  /** What halo would load from it; null when it is incomplete. */
  readonly loadable: string | null;
}

/**
 * Every model snapshot in the hub cache (datasets and spaces are skipped).
 *
 * @example
 * ```ts
 * for (const s of listHfCache(hfHubCacheDir(process.env))) console.log(s.repo, s.bytes);
 * ```
 */
export function listHfCache(cacheDir: string): HfCachedSnapshot[] {
  const out: HfCachedSnapshot[] = [];
  let repos: string[];
  try {
    repos = readdirSync(cacheDir)
      .filter((d) => d.startsWith("models--"))
      .sort();
  } catch {
    return out;
  }
  for (const folder of repos) {
    const parts = folder.slice("models--".length).split("--");
    if (parts.length < 2) continue;
    const repo = `${parts[0]}/${parts.slice(1).join("--")}`;
    const repoDir = join(cacheDir, folder);
    const refs = new Map<string, string[]>();
    const readRefs = (prefix: string): void => {
      let entries: string[];
      try {
        entries = readdirSync(join(repoDir, "refs", prefix));
      } catch {
        return;
      }
      for (const entry of entries) {
        const name = prefix === "" ? entry : `${prefix}/${entry}`;
        const full = join(repoDir, "refs", name);
        if (statSync(full).isDirectory()) readRefs(name);
        else {
          const commit = readFileSync(full, "utf8").trim();
          refs.set(commit, [...(refs.get(commit) ?? []), name]);
        }
      }
    };
    readRefs("");
    let commits: string[];
    try {
      commits = readdirSync(join(repoDir, "snapshots")).sort();
    } catch {
      continue;
    }
    for (const commit of commits) {
      const path = join(repoDir, "snapshots", commit);
      const seen = new Set<string>();
      let bytes = 0;
      for (const file of snapshotFiles(path)) {
        const real = realpathSync(join(path, file));
        if (seen.has(real)) continue;
        seen.add(real);
        bytes += statSync(real).size;
      }
      out.push({ repo, revisions: refs.get(commit) ?? [commit], commit, path, bytes, loadable: loadableSnapshot(path) });
    }
  }
  return out;
}
