// Packs every public package, installs the tarballs into an empty app the way a user does (`npm install`, install
// scripts on) with no compiler, make or python reachable, and checks that halo runs on the native CPU backend from the
// prebuilt addon, and that the GPU backend (@halo/kernels-hip) loads from its prebuilt addon and GPU code objects: it
// says why it cannot run on this GPU-less machine, and runs a model on its CPU emulator when asked. Then removes the
// prebuilds and checks that the fallback to the reference backend is announced with a fix an npm user can run. Fails
// when the @halo/kernels-cpu or @halo/kernels-hip tarball carries no prebuild for this platform, or the latter no
// code objects.
// Usage: node scripts/pack-install-test.mjs [--prebuild] [--keep]   (--prebuild: write the prebuilds from the build first)
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
// (pnpm pack runs each package's prepack too: @halo/kernels-hip's writes its prebuild and builds its GPU code objects
// there, once, rather than here and again at pack time.)
const NATIVE = ["kernels-cpu", "kernels-hip"];
const cpuDir = join(root, "packages", "kernels-cpu");
if (process.argv.includes("--prebuild")) {
  step("writing the @halo/kernels-cpu prebuild (scripts/make-prebuilds.mjs)");
  const built = spawnSync(process.execPath, [join(cpuDir, "scripts", "make-prebuilds.mjs")], { cwd: cpuDir, stdio: "inherit" });
  if (built.status !== 0) fail("make-prebuilds failed");
}

// 1. pnpm pack every public package (workspace:* becomes the real version in the tarball).
const packages = readdirSync(join(root, "packages")).filter((p) => existsSync(join(root, "packages", p, "package.json")));
const tarballOf = {};
for (const name of packages) {
  const dir = join(root, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (manifest.private === true) continue;
  if (!existsSync(join(dir, "dist"))) fail(`${manifest.name} has no dist/: run \`corepack pnpm build\` first`);
  const before = new Set(readdirSync(tarballs));
  // stdout is pnpm's file list; a prepack's own lines (and failures) go to stderr.
  const packed = spawnSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  if (packed.status !== 0)
    fail(`pnpm pack of ${manifest.name} exited ${packed.status ?? packed.signal}${packed.error ? ` (${packed.error.message})` : ""} (its prepack above)`);
  const added = readdirSync(tarballs).filter((f) => !before.has(f));
  tarballOf[manifest.name] = join(tarballs, added[0]);
}
const files = readdirSync(tarballs)
  .filter((f) => f.endsWith(".tgz"))
  .map((f) => join(tarballs, f));
step(`packed ${files.length} packages: ${readdirSync(tarballs).join(", ")}`);
const listings = {};
for (const name of NATIVE) {
  const tarball = tarballOf[`@halo/${name}`];
  if (tarball === undefined) fail(`@halo/${name} was not packed`);
  const listing = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n");
  listings[name] = listing;
  const prebuilt = listing.filter((f) => f.startsWith(`package/prebuilds/${platform}/`) && f.endsWith(".node"));
  if (prebuilt.length === 0) fail(`${tarball} carries no prebuilds/${platform}/*.node: an npm install would need a compiler (run with --prebuild)`);
  step(`@halo/${name} tarball carries ${prebuilt.map((f) => f.slice("package/".length)).join(", ")}`);
}
// The GPU backend's code objects are built from source in CI (clang-19, nvcc) and ship in the tarball: an npm user has
// no GPU compiler. Every target its manifest lists must be in the tarball, and every code object in the manifest.
const hipTarball = tarballOf["@halo/kernels-hip"];
const gpuListing = listings["kernels-hip"].filter((f) => f.startsWith("package/prebuilds/gpu/")).map((f) => f.slice("package/prebuilds/gpu/".length));
if (!gpuListing.includes("manifest.json")) fail(`${hipTarball} carries no prebuilds/gpu/manifest.json (its prepack builds it: scripts/build-kernels.mjs)`);
const gpuTargets = JSON.parse(execFileSync("tar", ["-xzOf", hipTarball, "package/prebuilds/gpu/manifest.json"], { encoding: "utf8" })).targets ?? {};
const gpuObjects = gpuListing.filter((f) => /^halo_kernels\.[^/]+\.(hsaco|cubin|ptx)$/.test(f));
const listed = Object.values(gpuTargets).map((t) => t.file);
const absent = listed.filter((f) => !gpuObjects.includes(f));
const unlisted = gpuObjects.filter((f) => !listed.includes(f));
if (!gpuObjects.some((f) => f.endsWith(".hsaco"))) fail(`${hipTarball} carries no AMD code object (prebuilds/gpu/*.hsaco)`);
if (absent.length > 0 || unlisted.length > 0)
  fail(
    `${hipTarball}: prebuilds/gpu/manifest.json and the code objects disagree (listed, absent: ${absent.join(", ") || "none"}; present, unlisted: ${unlisted.join(", ") || "none"})`,
  );
step(`@halo/kernels-hip tarball carries ${gpuObjects.length} GPU code objects for ${Object.keys(gpuTargets).join(", ")}, with their manifest`);

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
// The GPU backend: found, its prebuilt addon loaded (the probe reached the runtimes, not "addon missing"), its code
// objects found; on this machine (no GPU) unavailable with why.
const hip = report.backends.find((b) => b.name === "hip");
if (hip === undefined)
  fail(`halo doctor lists no hip backend: ${report.backends.map((b) => b.name).join(", ")}; refused: ${JSON.stringify(report.refusedBackends)}`);
if (/addon/i.test(hip.detail)) fail(`halo doctor: the hip backend's prebuilt addon did not load: ${hip.detail}`);
if (hip.details?.targets === undefined || hip.details.targets === "none built")
  fail(`halo doctor: the hip backend found no GPU code objects: ${JSON.stringify(hip)}`);
step(`halo doctor: hip backend ${hip.available ? "available" : "unavailable"} (${hip.detail.slice(0, 120)}…); targets ${hip.details.targets}`);
run(["h1b", "synth", "--shape", "tiny", "--seed", "1", "-o", "tiny.halo"]);
const answer = run(["halo", "run", "--model", "tiny.halo", "--temperature", "0", "--max-tokens", "8", "--stats", "Hello"]);
if (answer.stdout.trim() === "") fail("halo run printed nothing");
if (!answer.stderr.includes("(cpu backend)")) fail(`halo run did not use the native CPU backend: ${answer.stderr}`);
// The only backend passed over may be hip, which ranks above cpu and has no GPU here; its notice says why.
const notices = answer.stderr.split("\n").filter((l) => l.includes("was not used"));
if (notices.some((l) => !/the hip backend was not used: \S/.test(l)) || notices.length > (hip.available ? 0 : 1))
  fail(`halo run announced a fallback on the native path: ${answer.stderr}`);
step(`halo run on the prebuild: ${JSON.stringify(answer.stdout.trim().slice(0, 60))}; ${answer.stderr.trim().split("\n").at(-1)}`);
// The GPU backend's kernels on its CPU emulator, from the prebuilt addon: what other tools run (halo eval --backend hip).
const evaluated = run(["halo", "eval", "--model", "tiny.halo", "--backend", "hip", "--tokens", "1,2,3", "--logits-out", "hip.f32"], {
  env: { ...env, HALO_HIP_DEVICE: "emulator" },
});
const evalReport = JSON.parse(evaluated.stdout);
if (evalReport.backend !== "hip" || evalReport.rows !== 3) fail(`halo eval --backend hip on the emulator: ${evaluated.stdout}${evaluated.stderr}`);
step(`halo eval --backend hip (HALO_HIP_DEVICE=emulator) on the prebuild: ${evaluated.stdout.trim()}`);

// 5. Without the prebuilds (a platform with none, or a broken install) halo still runs, and says why and how to fix it.
rmSync(join(app, "node_modules", "@halo", "kernels-cpu", "prebuilds"), { recursive: true, force: true });
rmSync(join(app, "node_modules", "@halo", "kernels-hip", "prebuilds", platform), { recursive: true, force: true });
const hipGone = JSON.parse(run(["halo", "doctor", "--json"]).stdout).backends.find((b) => b.name === "hip");
if (hipGone?.available !== false || !/npm rebuild @halo\/kernels-hip/.test(hipGone.detail))
  fail(`without its prebuild the hip backend should be unavailable, naming the npm fix: ${JSON.stringify(hipGone)}`);
step(`without the hip prebuild: halo doctor says ${hipGone.detail.slice(0, 100)}…`);
const fallback = run(["halo", "run", "--model", "tiny.halo", "--temperature", "0", "--max-tokens", "4", "--stats", "Hello"]);
if (!fallback.stderr.includes("(reference backend)")) fail(`without the prebuild halo run should run on the reference backend: ${fallback.stderr}`);
if (!/the cpu backend was not used: .*npm rebuild @halo\/kernels-cpu/.test(fallback.stderr)) {
  fail(`the fallback to the reference backend was not announced with the npm fix:\n${fallback.stderr}`);
}
step(`without the prebuilds: ${fallback.stderr.split("\n").find((l) => l.includes("the cpu backend was not used"))}`);
// The fix the notice names, run without a compiler: it must not fail the install, and must say what is missing.
const rebuild = npm(["rebuild", "@halo/kernels-cpu", "--foreground-scripts"]);
if (rebuild.status !== 0) fail(`npm rebuild @halo/kernels-cpu without a compiler exited ${rebuild.status}:\n${rebuild.stdout}\n${rebuild.stderr}`);
if (!/C\+\+17 compiler/.test(rebuild.stdout + rebuild.stderr))
  fail(`npm rebuild without a compiler did not say what is missing:\n${rebuild.stdout}\n${rebuild.stderr}`);
step("npm rebuild @halo/kernels-cpu without a compiler: exit 0 and names the missing toolchain");
const hipRebuild = npm(["rebuild", "@halo/kernels-hip", "--foreground-scripts"]);
if (hipRebuild.status !== 0) fail(`npm rebuild @halo/kernels-hip without a compiler exited ${hipRebuild.status}:\n${hipRebuild.stdout}\n${hipRebuild.stderr}`);
if (!/C\+\+17 compiler/.test(hipRebuild.stdout + hipRebuild.stderr))
  fail(`npm rebuild @halo/kernels-hip without a compiler did not say what is missing:\n${hipRebuild.stdout}\n${hipRebuild.stderr}`);
step("npm rebuild @halo/kernels-hip without a compiler: exit 0 and names the missing toolchain");

const offline = spawnSync(join(app, "node_modules", ".bin", "halo"), ["run", "hi"], { cwd: app, env, encoding: "utf8" });
if (offline.status !== 1 || !/CLI_NO_MODEL/.test(offline.stderr))
  fail(`offline halo run without --model: expected exit 1 and CLI_NO_MODEL, got ${offline.status}: ${offline.stderr}`);
step("offline halo run without --model: one-line CLI_NO_MODEL error, exit 1");

if (!keep) rmSync(work, { recursive: true, force: true });
step("passed");
