// `halo --version`: the CLI's own version and those of the @halo packages it runs with, as installed.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import packageJson from "../package.json" with { type: "json" };

/** Versions `halo --version` reports. */
export interface VersionReport {
  /** `@halo/cli`'s version (its package.json). */
  readonly cli: string;
  /** Every `@halo/*` package the CLI reaches through its dependencies, by name: a version, or `"not installed"`. */
  readonly packages: Readonly<Record<string, string>>;
  readonly node: string;
}

interface Manifest {
  readonly version?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
}

function haloDependencies(manifest: Manifest): string[] {
  return Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies }).filter((name) => name.startsWith("@halo/"));
}

/**
 * The CLI's version and, walking `dependencies` and `optionalDependencies` from the CLI's own
 * package, the installed version of each `@halo/*` package — each resolved from the package that
 * depends on it, as Node resolves it at run time (an optional one that is absent is `"not installed"`).
 *
 * @example
 * ```ts
 * const { cli, packages } = versionReport();
 * console.log(cli, packages["@halo/engine"]);
 * ```
 */
export function versionReport(): VersionReport {
  const packages: Record<string, string> = {};
  const queue: { name: string; from: string }[] = haloDependencies(packageJson as Manifest).map((name) => ({ name, from: import.meta.url }));
  while (queue.length > 0) {
    const { name, from } = queue.shift()!;
    if (packages[name] !== undefined) continue;
    let manifestPath: string;
    try {
      manifestPath = createRequire(from).resolve(`${name}/package.json`);
    } catch {
      packages[name] = "not installed";
      continue;
    }
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    packages[name] = manifest.version ?? "unknown";
    for (const dependency of haloDependencies(manifest)) queue.push({ name: dependency, from: `${dirname(manifestPath)}/` });
  }
  const sorted = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => a.localeCompare(b)));
  return { cli: packageJson.version, packages: sorted, node: process.versions.node };
}

/**
 * `halo --version` output: `halo <version>` on the first line (for scripts), then one line per
 * `@halo/*` package and Node's version.
 *
 * @example
 * ```ts
 * process.stdout.write(versionText()); // "halo 0.2.0\n  @halo/engine 0.2.0\n…"
 * ```
 */
export function versionText(report: VersionReport = versionReport()): string {
  const width = Math.max(...Object.keys(report.packages).map((n) => n.length), 4) + 2;
  const lines = [`halo ${report.cli}`];
  for (const [name, version] of Object.entries(report.packages)) lines.push(`  ${name.padEnd(width)}${version}`);
  lines.push(`  ${"node".padEnd(width)}${report.node}`);
  return `${lines.join("\n")}\n`;
}
