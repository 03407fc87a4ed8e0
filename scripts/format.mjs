// `corepack pnpm format` / `format:check`: prettier over the TypeScript, JavaScript and JSON, clang-format 19 over the
// C and C++ (what is formatted, and why 160 columns: docs/code-style.md).
//   node scripts/format.mjs           rewrites every file that is not formatted, and names it
//   node scripts/format.mjs --check   changes nothing; exits 1 naming each unformatted file (CI's "format" step)
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const check = process.argv.includes("--check");
const unknown = process.argv.slice(2).filter((arg) => arg !== "--check");
if (unknown.length > 0) fail(`unknown argument ${unknown.join(" ")}; the only one is --check (report, change nothing)`);

// clang-format's output differs between major versions, so one is pinned: 19, Debian's clang-format-19.
const CLANG_FORMAT_MAJOR = 19;
const NATIVE_SOURCES = ["*.c", "*.cc", "*.cpp", "*.h", "*.hpp", "*.inc"];

let failed = false;

// prettier: the files and settings are in .prettierrc.json and .prettierignore (plus .gitignore).
const prettier = run(join(root, "node_modules", ".bin", "prettier"), check ? ["--check", "."] : ["--write", "--list-different", "."]);
if (prettier.status !== 0) {
  failed = true;
  console.error(check ? "format: prettier found unformatted files (listed above)" : `format: prettier failed (exit ${prettier.status ?? prettier.signal})`);
}

// clang-format: every C/C++ file git knows of or would add (tracked or new, not ignored), in one call.
const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ...NATIVE_SOURCES], { cwd: root, encoding: "utf8" });
if (listed.status !== 0) fail(`cannot list the C/C++ files with git ls-files: ${listed.error?.message ?? listed.stderr.trim()}`);
const native = [...new Set(listed.stdout.split("\0").filter((path) => path !== "" && existsSync(join(root, path))))];
const clangFormat = findClangFormat();
const clang = run(clangFormat, check ? ["--dry-run", "--Werror", ...native] : ["-i", "--verbose", ...native]);
if (clang.status !== 0) {
  failed = true;
  console.error(
    check ? "format: clang-format found unformatted C/C++ (the warnings above)" : `format: clang-format failed (exit ${clang.status ?? clang.signal})`,
  );
}

if (failed) {
  console.error(check ? "format: FAILED. Run `corepack pnpm format` to rewrite these files, then commit them." : "format: FAILED (see above)");
  process.exit(1);
}
console.log(`format: ${check ? "checked" : "formatted"} prettier's files and ${native.length} C/C++ file(s) with ${clangFormat}`);

/** Runs a tool with inherited output; a tool that cannot start at all ends the script with the reason. */
function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.error !== undefined) fail(`cannot run ${command}: ${result.error.message}`);
  return result;
}

/** `$CLANG_FORMAT`, else `clang-format-19`, else `clang-format`; whichever it is must be major version 19. */
function findClangFormat() {
  const candidates = process.env.CLANG_FORMAT ? [process.env.CLANG_FORMAT] : [`clang-format-${CLANG_FORMAT_MAJOR}`, "clang-format"];
  const found = [];
  for (const candidate of candidates) {
    const version = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (version.error !== undefined || version.status !== 0) continue;
    const major = /version (\d+)\./.exec(version.stdout)?.[1];
    if (major === String(CLANG_FORMAT_MAJOR)) return candidate;
    found.push(`${candidate} is version ${major ?? `unknown (${version.stdout.trim()})`}`);
  }
  fail(
    `expected clang-format ${CLANG_FORMAT_MAJOR} (its output differs between major versions); found ${found.length > 0 ? found.join(", ") : "none on PATH"}. ` +
      `Install it: \`bash scripts/setup-system.sh\` (as root) or \`sudo apt-get install clang-format-${CLANG_FORMAT_MAJOR}\`, ` +
      `or point CLANG_FORMAT at a clang-format ${CLANG_FORMAT_MAJOR} binary`,
  );
}

function fail(message) {
  console.error(`format: ${message}`);
  process.exit(1);
}
