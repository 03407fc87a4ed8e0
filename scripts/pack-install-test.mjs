// Packs every public package, installs the tarballs into an empty app the way a user does (`npm install`, install
// scripts on) with no compiler, make or python reachable, and checks that halo runs on the native CPU backend from the
// prebuilt addon. Then removes the prebuild and checks that the fallback to the reference backend is announced with a
// fix an npm user can run. Fails when the @halo/kernels-cpu tarball carries no prebuild for this platform.
// Usage: node scripts/pack-install-test.mjs [--prebuild] [--keep]   (--prebuild: write the prebuild from the build first)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const keep = process.argv.includes("--keep");
const work = mkdtempSync(join(tmpdir(), "halo-pack-"));
const tarballs = join(work, "tarballs");
const app = join(work, "app");
const bin = join(work, "bin");
const home = join(work, "home");
for (const dir of [tarballs, app, bin, home]) mkdirSync(dir);
const platform = `${process.platform}-${process.arch}`;

function step(text) {
  console.log(`pack-install-test: ${text}`);
}

function fail(text) {
  console.error(`pack-install-test: FAILED: ${text}`);
  console.error(`  (work directory kept: ${work})`);
  process.exit(1);
}

// 0. With --prebuild (CI): write @halo/kernels-cpu's prebuild from the Release build, so the tarball carries it.
const cpuDir = join(root, "packages", "kernels-cpu");
if (process.argv.includes("--prebuild")) {
  step("writing the @halo/kernels-cpu prebuild (scripts/make-prebuilds.mjs)");
  const built = spawnSync(process.execPath, [join(cpuDir, "scripts", "make-prebuilds.mjs")], { cwd: cpuDir, stdio: "inherit" });
  if (built.status !== 0) fail("make-prebuilds failed");
}

// 1. pnpm pack every public package (workspace:* becomes the real version in the tarball).
const packages = readdirSync(join(root, "packages")).filter((p) => existsSync(join(root, "packages", p, "package.json")));
let cpuTarball = null;
for (const name of packages) {
  const dir = join(root, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (manifest.private === true) continue;
  if (!existsSync(join(dir, "dist"))) fail(`${manifest.name} has no dist/: run \`corepack pnpm build\` first`);
  const before = new Set(readdirSync(tarballs));
  execFileSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  const added = readdirSync(tarballs).filter((f) => !before.has(f));
  if (manifest.name === "@halo/kernels-cpu") cpuTarball = join(tarballs, added[0]);
}
const files = readdirSync(tarballs)
  .filter((f) => f.endsWith(".tgz"))
  .map((f) => join(tarballs, f));
step(`packed ${files.length} packages: ${readdirSync(tarballs).join(", ")}`);
if (cpuTarball === null) fail("@halo/kernels-cpu was not packed");
const listing = execFileSync("tar", ["-tzf", cpuTarball], { encoding: "utf8" }).split("\n");
const prebuilt = listing.filter((f) => f.startsWith(`package/prebuilds/${platform}/`) && f.endsWith(".node"));
if (prebuilt.length === 0) fail(`${cpuTarball} carries no prebuilds/${platform}/*.node: an npm install would need a compiler (run with --prebuild)`);
step(`@halo/kernels-cpu tarball carries ${prebuilt.map((f) => f.slice("package/".length)).join(", ")}`);

// 2. A PATH with node and sh alone (npm runs install scripts through sh): no cc, gcc, g++, make, python.
// A scratch HOME: no user npmrc or caches.
symlinkSync(process.execPath, join(bin, "node"));
symlinkSync("/bin/sh", join(bin, "sh"));
const npmCli = (() => {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, "npm");
    if (existsSync(candidate)) {
      const real = realpathSync(candidate);
      const cli = real.endsWith(".js") ? real : join(dirname(real), "npm-cli.js");
      if (existsSync(cli)) return cli;
    }
  }
  const beside = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
  if (existsSync(beside)) return beside;
  return fail("cannot find npm-cli.js");
})();
const env = { HOME: home, PATH: bin, HALO_CACHE_DIR: join(work, "cache"), HF_ENDPOINT: "http://127.0.0.1:9", npm_config_update_notifier: "false" };
for (const tool of ["cc", "gcc", "g++", "c++", "clang", "make", "python3", "python"]) {
  const found = spawnSync("/bin/sh", ["-c", `command -v ${tool}`], { env, encoding: "utf8" });
  if (found.error !== undefined || found.status === null) fail(`cannot run /bin/sh to look for ${tool}: ${found.error?.message}`);
  if (found.status === 0) fail(`${tool} is on the stripped PATH (${found.stdout.trim()})`);
}
step(`PATH=${bin} holds only node and sh; no compiler, make or python is reachable; HOME=${home}`);

// 3. npm install the tarballs into an empty project, as a user does: install scripts run.
writeFileSync(join(app, "package.json"), JSON.stringify({ name: "halo-pack-install-test", private: true, type: "module" }));
const npm = (args) => spawnSync(process.execPath, [npmCli, ...args], { cwd: app, env, encoding: "utf8" });
const install = npm(["install", "--no-audit", "--no-fund", "--loglevel=error", ...files]);
if (install.status !== 0) fail(`npm install exited ${install.status}:\n${install.stdout}\n${install.stderr}`);
if (/building from source|NOT built|node-gyp/i.test(install.stdout + install.stderr))
  fail(`npm install tried to compile:\n${install.stdout}\n${install.stderr}`);
step("npm install of every tarball (install scripts on, no compiler): ok, nothing compiled");

function run(args, options = {}) {
  const result = spawnSync(join(app, "node_modules", ".bin", args[0]), args.slice(1), { cwd: app, env, encoding: "utf8", timeout: 120_000, ...options });
  if (result.status !== 0) fail(`${args.join(" ")} exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

// 4. halo doctor and halo run must use the native backend from the prebuild.
const report = JSON.parse(run(["halo", "doctor", "--json"]).stdout);
const cpu = report.backends.find((b) => b.name === "cpu");
if (cpu?.available !== true) fail(`halo doctor: the CPU backend is not available from the prebuild: ${cpu?.detail}`);
step(`halo doctor: cpu backend available (${cpu.detail}); kernel path ${cpu.details?.kernelPath}`);
if (typeof cpu.details?.kernelPath !== "string") fail(`halo doctor: the cpu backend's probe names no kernel path: ${JSON.stringify(cpu)}`);
run(["h1b", "synth", "--shape", "tiny", "--seed", "1", "-o", "tiny.halo"]);
const answer = run(["halo", "run", "--model", "tiny.halo", "--temperature", "0", "--max-tokens", "8", "--stats", "Hello"]);
if (answer.stdout.trim() === "") fail("halo run printed nothing");
if (!answer.stderr.includes("(cpu backend)")) fail(`halo run did not use the native CPU backend: ${answer.stderr}`);
if (answer.stderr.includes("was not used")) fail(`halo run announced a fallback on the native path: ${answer.stderr}`);
step(`halo run on the prebuild: ${JSON.stringify(answer.stdout.trim().slice(0, 60))}; ${answer.stderr.trim().split("\n").at(-1)}`);

// 5. Without the prebuild (a platform with none, or a broken install) halo still runs, and says why and how to fix it.
rmSync(join(app, "node_modules", "@halo", "kernels-cpu", "prebuilds"), { recursive: true, force: true });
const fallback = run(["halo", "run", "--model", "tiny.halo", "--temperature", "0", "--max-tokens", "4", "--stats", "Hello"]);
if (!fallback.stderr.includes("(reference backend)")) fail(`without the prebuild halo run should run on the reference backend: ${fallback.stderr}`);
if (!/the cpu backend was not used: .*npm rebuild @halo\/kernels-cpu/.test(fallback.stderr)) {
  fail(`the fallback to the reference backend was not announced with the npm fix:\n${fallback.stderr}`);
}
step(`without the prebuild: ${fallback.stderr.split("\n").find((l) => l.includes("was not used"))}`);
// The fix the notice names, run without a compiler: it must not fail the install, and must say what is missing.
const rebuild = npm(["rebuild", "@halo/kernels-cpu", "--foreground-scripts"]);
if (rebuild.status !== 0) fail(`npm rebuild @halo/kernels-cpu without a compiler exited ${rebuild.status}:\n${rebuild.stdout}\n${rebuild.stderr}`);
if (!/C\+\+17 compiler/.test(rebuild.stdout + rebuild.stderr))
  fail(`npm rebuild without a compiler did not say what is missing:\n${rebuild.stdout}\n${rebuild.stderr}`);
step("npm rebuild @halo/kernels-cpu without a compiler: exit 0 and names the missing toolchain");

const offline = spawnSync(join(app, "node_modules", ".bin", "halo"), ["run", "hi"], { cwd: app, env, encoding: "utf8" });
if (offline.status !== 1 || !/CLI_NO_MODEL/.test(offline.stderr))
  fail(`offline halo run without --model: expected exit 1 and CLI_NO_MODEL, got ${offline.status}: ${offline.stderr}`);
step("offline halo run without --model: one-line CLI_NO_MODEL error, exit 1");

if (!keep) rmSync(work, { recursive: true, force: true });
step("passed");
