// Checks that every repository path the docs name exists: backticked paths and relative links in README.md,
// docs/**/*.md and packages/*/README.md. Run by check-packages.mjs (so by test:ci); alone: node scripts/check-doc-paths.mjs
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** File extensions that make a backticked word with a slash a path to check even when its first segment names no directory. */
const PATH_EXTENSIONS = /\.(md|ts|mts|mjs|cjs|js|json|c|cc|cpp|h|hpp|inc|gyp|sh|yml|yaml|toml|txt)$/;
/** Segments of build outputs and installs: named in docs, absent from a fresh clone. */
const GENERATED = new Set(["dist", "build", "prebuilds", "node_modules", ".artifacts", ".turbo"]);
const GENERATED_PATHS = ["docs/api"];
/** First segments that always mean a path in this repository (or a package of it), even where no such directory is near the doc. */
const REPO_DIRECTORIES = new Set(["src", "test", "native", "dev", "scripts", "bench", "docs", "packages", ".ci", "research"]);

function markdownFiles() {
  const files = ["README.md"];
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory() && !GENERATED_PATHS.includes(path)) walk(path);
      else if (entry.isFile() && entry.name.endsWith(".md")) files.push(path);
    }
  };
  walk("docs");
  for (const name of readdirSync(join(root, "packages"))) {
    if (existsSync(join(root, "packages", name, "README.md"))) files.push(`packages/${name}/README.md`);
  }
  return files;
}

/** Directories a path in `file` may be relative to: the file's own, its package's, the repository root. */
function bases(file) {
  const list = [dirname(file)];
  const match = /^packages\/[^/]+/.exec(file);
  if (match !== null) list.push(match[0]);
  list.push(".");
  return [...new Set(list)];
}

function isDirectory(path) {
  return existsSync(path) && statSync(path).isDirectory();
}

/** Words of a backticked span that look like repository paths (`packages/x/src/y.ts`, `native/halo_cpu.h`, `bench/`). */
function candidatePaths(span, file) {
  const out = [];
  for (let word of span.split(/\s+/)) {
    word = word
      .replace(/^[("'[]+|[)"',;:\]]+$/g, "")
      .replace(/:\d+(-\d+)?$/, "")
      .replace(/#.*$/, "");
    if (!word.includes("/") || /^(\/|~|\$|https?:|[a-z]+:\/\/)/.test(word) || /[…<>*{}|=@?]/.test(word)) continue;
    if (word.startsWith("-")) continue;
    const segments = word
      .replace(/^\.\//, "")
      .split("/")
      .filter((s) => s !== "");
    if (segments.length === 0 || segments.some((s) => GENERATED.has(s))) continue;
    const first = segments[0];
    const namesDirectory = first === "." || first === ".." || REPO_DIRECTORIES.has(first) || bases(file).some((base) => isDirectory(join(root, base, first)));
    if (namesDirectory || PATH_EXTENSIONS.test(word)) out.push(word);
  }
  return out;
}

/** Every path a doc names that does not exist, as `file: path`. */
export function missingDocPaths() {
  const missing = [];
  for (const file of markdownFiles()) {
    const text = readFileSync(join(root, file), "utf8").replace(/^```[\s\S]*?^```/gm, "");
    const paths = new Set();
    for (const match of text.matchAll(/`([^`\n]+)`/g)) for (const path of candidatePaths(match[1], file)) paths.add(path);
    // Links resolve against the doc's own directory only, as a Markdown viewer resolves them.
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1].replace(/#.*$/, "");
      if (target !== "" && !/^[a-z]+:/.test(target) && !existsSync(join(root, dirname(file), target))) missing.push(`${file}: ${target} (link)`);
    }
    for (const path of paths) {
      if (GENERATED_PATHS.some((g) => path.replace(/^\.\//, "").startsWith(g)) || path.split("/").some((s) => GENERATED.has(s))) continue;
      const found = path.startsWith(".") ? existsSync(join(root, dirname(file), path)) : bases(file).some((base) => existsSync(join(root, base, path)));
      if (!found) missing.push(`${file}: ${path}`);
    }
  }
  return missing;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const missing = missingDocPaths();
  for (const line of missing) console.error(`missing: ${line}`);
  console.log(missing.length === 0 ? "ok   every path named in the docs exists" : `check-doc-paths: ${missing.length} path(s) named in the docs do not exist`);
  process.exit(missing.length === 0 ? 0 : 1);
}
