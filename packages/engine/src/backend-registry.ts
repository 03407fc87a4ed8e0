// Backend discovery: the installed @halo/kernels-* packages that declare a backend, plus the reference backend.
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { HaloError } from "@halo/errors";
import { CONTRACT_VERSION, referenceBackendFactory, type Backend, type BackendFactory } from "@halo/kernels";
import { EngineErrorCode } from "./errors.js";

/**
 * A backend package {@link discoverBackends} found but does not offer, and why: built for another
 * contract version, failed to import, no `backendFactory` export, not a factory, or a backend name
 * another package already claims.
 *
 * @example
 * ```ts
 * for (const r of (await discoverBackends()).refused) console.warn(`${r.packageName}: ${r.reason}`);
 * ```
 */
export interface RefusedBackend {
  /** The package (`@halo/kernels-foo`). */
  readonly packageName: string;
  /** Its directory (as found; symlinks not resolved). */
  readonly path: string;
  /** The backend name it claims when that is known (its factory's `name`), else null. */
  readonly name: string | null;
  /** Why it is not offered, ending with what to do. */
  readonly reason: string;
}

/** What {@link discoverBackends} found. */
export interface BackendDiscovery {
  /** Usable factories, highest {@link BackendFactory.priority} first (ties by name); always includes `reference`. */
  readonly factories: readonly BackendFactory[];
  /** Packages found but not offered, with why. */
  readonly refused: readonly RefusedBackend[];
  /** The `node_modules` directories searched, in order. */
  readonly searchPaths: readonly string[];
  /** The package each discovered factory came from, by backend name (`reference` and passed-in factories: none). */
  readonly packages: Readonly<Record<string, string>>;
}

/** Options of {@link discoverBackends}. */
export interface DiscoverBackendsOptions {
  /**
   * Factories to offer besides the installed ones (checked like them; one with an installed
   * backend's name replaces it).
   */
  readonly factories?: readonly BackendFactory[];
  /** `node_modules` directories to search as well, after the default ones. */
  readonly paths?: readonly string[];
  /**
   * The environment `HALO_BACKEND_PATH` is read from (default `process.env`): a list of
   * `node_modules` directories separated by the platform's path delimiter (`:` or `;`).
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Search again instead of answering from the cache (a package installed since the last call). */
  readonly refresh?: boolean;
}

/** The `package.json` marker of a backend package: `"halo": { "backend": true, "contractVersion": 2 }`. */
interface BackendMarker {
  readonly backend?: unknown;
  readonly contractVersion?: unknown;
}

interface PackageJson {
  readonly name?: unknown;
  readonly main?: unknown;
  readonly exports?: unknown;
  readonly halo?: BackendMarker;
}

/**
 * The `node_modules` directories discovery searches, in order: those on the module resolution
 * paths of `@halo/engine` itself (with npm and pnpm layouts they reach the app's own
 * `node_modules`, and a global install's siblings), then each entry of `HALO_BACKEND_PATH`, then
 * `options.paths`; only existing directories, each once. The current directory is not searched:
 * discovery imports the packages it finds, and running `halo` inside an untrusted checkout must not
 * run that checkout's code (name a directory in `HALO_BACKEND_PATH` to add it).
 *
 * @example
 * ```ts
 * backendSearchPaths({ env: { HALO_BACKEND_PATH: "/opt/halo/node_modules" } });
 * ```
 */
export function backendSearchPaths(options: Pick<DiscoverBackendsOptions, "env" | "paths"> = {}): string[] {
  const env = options.env ?? process.env;
  const own = createRequire(import.meta.url).resolve.paths("@halo/kernels") ?? [];
  const extra = (env["HALO_BACKEND_PATH"] ?? "")
    .split(delimiter)
    .filter((p) => p !== "")
    .map((p) => resolve(p));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const dir of [...own, ...extra, ...(options.paths ?? []).map((p) => resolve(p))]) {
    if (seen.has(dir)) continue;
    seen.add(dir);
    if (isDirectory(dir)) out.push(dir);
  }
  return out;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The file an `exports` value points an `import` of the package root at, per Node's conditions. */
function exportTarget(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (const entry of value) {
      const target = exportTarget(entry);
      if (target !== null) return target;
    }
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  if ("." in record) return exportTarget(record["."]);
  // Conditions in the object's order, as Node resolves them; only those an ESM import in Node matches.
  for (const [condition, target] of Object.entries(record)) {
    if (condition === "import" || condition === "node" || condition === "default") {
      const found = exportTarget(target);
      if (found !== null) return found;
    }
  }
  return null;
}

/** The entry file of a package directory: `exports["."]` (import conditions), else `main`, else `index.js`. */
function entryOf(dir: string, pkg: PackageJson): string | null {
  if (pkg.exports !== undefined) {
    const target = exportTarget(pkg.exports);
    return target === null ? null : join(dir, target);
  }
  return join(dir, typeof pkg.main === "string" ? pkg.main : "index.js");
}

/**
 * Why `value` is not a {@link BackendFactory} this engine can use, or null when it is. Checks the
 * shape (name, priority, probe, create) and `contractVersion === CONTRACT_VERSION`.
 *
 * @example
 * ```ts
 * factoryProblem({ contractVersion: 1, name: "old" }); // "built for backend contract 1; this engine speaks 2"
 * ```
 */
export function factoryProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return `backendFactory is ${value === null ? "null" : typeof value}, not a BackendFactory object`;
  const factory = value as Partial<BackendFactory>;
  if (factory.contractVersion !== CONTRACT_VERSION) {
    return `built for backend contract ${String(factory.contractVersion)}; this engine speaks ${CONTRACT_VERSION}`;
  }
  if (typeof factory.name !== "string" || !/^[a-z][a-z0-9-]*$/.test(factory.name))
    return `its name ${JSON.stringify(factory.name)} is not a short lower-case word`;
  if (typeof factory.priority !== "number" || !Number.isFinite(factory.priority)) return `its priority ${String(factory.priority)} is not a finite number`;
  if (typeof factory.probe !== "function" || typeof factory.create !== "function") return "it lacks probe() or create()";
  return null;
}

/** Every `@halo/kernels-*` directory under the search paths, each real package once. */
function candidatePackages(searchPaths: readonly string[]): { readonly dir: string; readonly real: string; readonly packageName: string }[] {
  const out: { dir: string; real: string; packageName: string }[] = [];
  const seen = new Set<string>();
  for (const nodeModules of searchPaths) {
    let names: string[];
    try {
      names = readdirSync(join(nodeModules, "@halo"))
        .filter((n) => n.startsWith("kernels-"))
        .sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = join(nodeModules, "@halo", name);
      let real: string;
      try {
        real = realpathSync(dir);
      } catch {
        continue; // A dangling link: nothing installed there.
      }
      if (seen.has(real)) continue;
      seen.add(real);
      out.push({ dir, real, packageName: `@halo/${name}` });
    }
  }
  return out;
}

async function searchInstalled(
  searchPaths: readonly string[],
): Promise<{ factories: { factory: BackendFactory; packageName: string; path: string }[]; refused: RefusedBackend[] }> {
  const factories: { factory: BackendFactory; packageName: string; path: string }[] = [];
  const refused: RefusedBackend[] = [];
  for (const { dir, real, packageName } of candidatePackages(searchPaths)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(join(real, "package.json"), "utf8"));
    } catch (cause) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `its package.json cannot be read (${(cause as Error).message.split("\n")[0]}). Fix: reinstall ${packageName}`,
      });
      continue;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `its package.json holds ${parsed === null ? "null" : Array.isArray(parsed) ? "an array" : typeof parsed}, not an object. Fix: reinstall ${packageName}`,
      });
      continue;
    }
    const pkg = parsed as PackageJson;
    const marker: unknown = pkg.halo;
    if (marker === undefined) continue; // Not a backend package (a helper sharing the prefix).
    if (typeof marker !== "object" || marker === null || Array.isArray(marker)) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `its package.json "halo" is ${marker === null ? "null" : Array.isArray(marker) ? "an array" : typeof marker}, not { "backend": true, "contractVersion": ${CONTRACT_VERSION} }. Fix: npm install ${packageName}@latest, or remove "halo" if it is not a backend`,
      });
      continue;
    }
    const { backend } = marker as BackendMarker;
    if (backend === undefined || backend === false) continue; // Declares no backend (a helper sharing the prefix).
    if (backend !== true) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `its package.json says "halo": { "backend": ${JSON.stringify(backend)} }, not true. Fix: npm install ${packageName}@latest (a backend package says "backend": true)`,
      });
      continue;
    }
    const declared = (marker as BackendMarker).contractVersion;
    if (declared !== CONTRACT_VERSION) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `declares backend contract ${String(declared)} in package.json; this engine speaks ${CONTRACT_VERSION}. Fix: npm install ${packageName}@latest (a version built for contract ${CONTRACT_VERSION})`,
      });
      continue;
    }
    const entry = entryOf(real, pkg);
    if (entry === null) {
      refused.push({ packageName, path: dir, name: null, reason: `its package.json "exports" has no entry for import. Fix: reinstall ${packageName}` });
      continue;
    }
    let module: { backendFactory?: unknown };
    try {
      module = (await import(pathToFileURL(entry).href)) as { backendFactory?: unknown };
    } catch (cause) {
      const message = cause instanceof Error ? cause.message.split("\n")[0] : String(cause);
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `failed to import (${message}). Fix: npm rebuild ${packageName}, or npm install ${packageName} again`,
      });
      continue;
    }
    if (!("backendFactory" in module) || module.backendFactory === undefined) {
      refused.push({
        packageName,
        path: dir,
        name: null,
        reason: `declares itself a backend but does not export backendFactory. Fix: npm install ${packageName}@latest (a version built for contract ${CONTRACT_VERSION})`,
      });
      continue;
    }
    const problem = factoryProblem(module.backendFactory);
    const name = typeof (module.backendFactory as { name?: unknown } | null)?.name === "string" ? (module.backendFactory as { name: string }).name : null;
    if (problem !== null) {
      refused.push({
        packageName,
        path: dir,
        name,
        reason: `its backendFactory is unusable: ${problem}. Fix: npm install ${packageName}@latest (a version built for contract ${CONTRACT_VERSION})`,
      });
      continue;
    }
    factories.push({ factory: module.backendFactory as BackendFactory, packageName, path: dir });
  }
  return { factories, refused };
}

const cache = new Map<string, Promise<{ factories: { factory: BackendFactory; packageName: string; path: string }[]; refused: RefusedBackend[] }>>();

function byPriority(a: BackendFactory, b: BackendFactory): number {
  return b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Finds the installed backends: every `@halo/kernels-*` package in a `node_modules/@halo`
 * directory of {@link backendSearchPaths} whose `package.json` says
 * `"halo": { "backend": true, "contractVersion": 2 }`, imported by its entry point, whose
 * `backendFactory` export is a {@link BackendFactory} of this contract version — plus the
 * reference backend (always) and `options.factories`. Adding a backend is installing its package.
 *
 * The first package found claims a backend name; a later one claiming the same name is refused.
 * Answers are cached per set of search paths (a new `HALO_BACKEND_PATH` searches again; `refresh`
 * searches again; a failed search is never cached).
 * Never throws for a bad package: it is listed in {@link BackendDiscovery.refused} with why.
 *
 * @example
 * ```ts
 * import { discoverBackends } from "@halo/engine";
 * const { factories, refused } = await discoverBackends();
 * for (const f of factories) console.log(f.name, f.priority, (await f.probe()).reason);
 * for (const r of refused) console.warn(`${r.packageName}: ${r.reason}`);
 * ```
 */
export async function discoverBackends(options: DiscoverBackendsOptions = {}): Promise<BackendDiscovery> {
  const searchPaths = backendSearchPaths(options);
  const key = searchPaths.join("\0");
  let search = options.refresh === true ? undefined : cache.get(key);
  if (search === undefined) {
    search = searchInstalled(searchPaths);
    cache.set(key, search);
    // A search that failed is not remembered: the next call searches again.
    search.catch(() => {
      if (cache.get(key) === search) cache.delete(key);
    });
  }
  const installed = await search;
  const refused = [...installed.refused];
  const chosen = new Map<string, BackendFactory>([[referenceBackendFactory.name, referenceBackendFactory]]);
  const packages: Record<string, string> = {};
  const paths: Record<string, string> = {};
  for (const { factory, packageName, path } of installed.factories) {
    if (chosen.has(factory.name)) {
      const otherPackage = packages[factory.name];
      const otherPath = paths[factory.name];
      let reason: string;
      if (otherPackage === undefined) {
        reason = `claims the backend name "${factory.name}", which is the built-in reference backend's. Fix: npm install ${packageName}@latest, or uninstall it`;
      } else if (otherPackage === packageName) {
        reason = `is a second copy of ${packageName}: ${otherPath ?? "?"} is used, ${path} is ignored. Fix: remove one copy (npm dedupe, or delete the node_modules directory of the one you do not want)`;
      } else {
        reason = `claims the backend name "${factory.name}", which ${otherPackage} at ${otherPath ?? "?"} already provides; ${path} is ignored. Fix: uninstall one of the two packages`;
      }
      refused.push({ packageName, path, name: factory.name, reason });
      continue;
    }
    chosen.set(factory.name, factory);
    packages[factory.name] = packageName;
    paths[factory.name] = path;
  }
  for (const factory of options.factories ?? []) {
    const problem = factoryProblem(factory);
    if (problem !== null) {
      throw new HaloError(EngineErrorCode.ENGINE_BAD_OPTION, "a backend factory passed in is unusable", {
        field: "factories",
        expected: `a BackendFactory of contract ${CONTRACT_VERSION}`,
        actual: problem,
        hint: "Pass the backendFactory export of a backend package built for this engine",
      });
    }
    chosen.set(factory.name, factory);
    delete packages[factory.name];
  }
  return { factories: [...chosen.values()].sort(byPriority), refused, searchPaths, packages };
}

/**
 * True when `value` looks like a {@link BackendFactory} (it has `create` and `contractVersion`),
 * as opposed to a {@link Backend} (which has `loadModel`).
 *
 * @example
 * ```ts
 * isBackendFactory(referenceBackendFactory); // true
 * isBackendFactory(referenceBackend()); // false
 * ```
 */
export function isBackendFactory(value: unknown): value is BackendFactory {
  return typeof value === "object" && value !== null && typeof (value as { create?: unknown }).create === "function" && "contractVersion" in value;
}

/** Whether `value` looks like a {@link Backend} object. @internal */
export function isBackendObject(value: unknown): value is Backend {
  return typeof value === "object" && value !== null && typeof (value as { loadModel?: unknown }).loadModel === "function";
}
