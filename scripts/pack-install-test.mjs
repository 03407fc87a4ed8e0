// Packs every package, installs the tarballs into an empty directory with --ignore-scripts and no compiler on PATH, runs `halo doctor` and a tiny `halo run`.
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
mkdirSync(tarballs);
mkdirSync(app);
mkdirSync(bin);

function step(text) {
  console.log(`pack-install-test: ${text}`);
}

function fail(text) {
  console.error(`pack-install-test: FAILED: ${text}`);
  console.error(`  (work directory kept: ${work})`);
  process.exit(1);
}

// 0. With --prebuild (CI): build the CPU package's N-API prebuilds first when they are missing, so the tarball carries them.
const cpuDir = join(root, "packages", "kernels-cpu");
if (process.argv.includes("--prebuild") && existsSync(cpuDir) && !existsSync(join(cpuDir, "prebuilds"))) {
  step("building @halo/kernels-cpu prebuilds (prebuildify --napi --strip)");
  const built = spawnSync("pnpm", ["--filter", "@halo/kernels-cpu", "run", "prebuild"], { cwd: root, stdio: "inherit" });
  if (built.status !== 0) fail("prebuildify failed");
}

// 1. pnpm pack every package (workspace:* becomes the real version in the tarball).
const packages = readdirSync(join(root, "packages")).filter((p) => existsSync(join(root, "packages", p, "package.json")));
for (const name of packages) {
  const dir = join(root, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (manifest.private === true) continue;
  if (!existsSync(join(dir, "dist"))) fail(`${manifest.name} has no dist/: run \`pnpm build\` first`);
  execFileSync("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
}
const files = readdirSync(tarballs).filter((f) => f.endsWith(".tgz")).map((f) => join(tarballs, f));
step(`packed ${files.length} packages: ${readdirSync(tarballs).join(", ")}`);

// 2. A PATH with node alone: no cc, gcc, g++, make, python.
symlinkSync(process.execPath, join(bin, "node"));
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
const env = { HOME: process.env.HOME ?? work, PATH: bin, HALO_CACHE_DIR: join(work, "cache"), HF_ENDPOINT: "http://127.0.0.1:9", npm_config_update_notifier: "false" };
for (const tool of ["cc", "gcc", "g++", "c++", "clang", "make", "python3", "python"]) {
  const found = spawnSync("/bin/sh", ["-c", `command -v ${tool}`], { env, encoding: "utf8" });
  if (found.error !== undefined || found.status === null) fail(`cannot run /bin/sh to look for ${tool}: ${found.error?.message}`);
  if (found.status === 0) fail(`${tool} is on the stripped PATH (${found.stdout.trim()})`);
}
step(`PATH=${bin} holds only node; no compiler, make or python is reachable`);

// 3. npm install the tarballs into an empty project, scripts off.
writeFileSync(join(app, "package.json"), JSON.stringify({ name: "halo-pack-install-test", private: true, type: "module" }));
const install = spawnSync(process.execPath, [npmCli, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", ...files], { cwd: app, env, encoding: "utf8" });
if (install.status !== 0) fail(`npm install exited ${install.status}:\n${install.stdout}\n${install.stderr}`);
step("npm install --ignore-scripts of every tarball: ok");

function run(args, options = {}) {
  const result = spawnSync(join(app, "node_modules", ".bin", args[0]), args.slice(1), { cwd: app, env, encoding: "utf8", timeout: 120_000, ...options });
  if (result.status !== 0) fail(`${args.join(" ")} exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

// 4. halo doctor, then a tiny model and halo run.
const doctor = run(["halo", "doctor", "--json"]);
const report = JSON.parse(doctor.stdout);
const cpu = report.backends.find((b) => b.name === "cpu");
step(`halo doctor: cpu backend ${cpu.available ? "available" : "NOT available"} (${cpu.detail}); kernel path ${report.cpu.kernelPath}`);
const prebuilds = existsSync(join(app, "node_modules", "@halo", "kernels-cpu", "prebuilds"));
if (prebuilds && !cpu.available) fail("the kernels-cpu tarball carries prebuilds but the CPU backend did not load from them");
if (!existsSync(join(app, "node_modules", "@halo", "kernels-cpu"))) step("@halo/kernels-cpu is not among the packages: pure-JS packages only");
else if (!prebuilds) step("@halo/kernels-cpu has no prebuilds in its tarball: covered the pure-JS path only");
run(["h1b", "synth", "--shape", "tiny", "--seed", "1", "-o", "tiny.halo"]);
const answer = run(["halo", "run", "--model", "tiny.halo", "--temperature", "0", "--max-tokens", "8", "--stats", "Hello"]);
if (answer.stdout.trim() === "") fail("halo run printed nothing");
if (prebuilds && !answer.stderr.includes("(cpu backend)")) fail(`halo run did not use the native CPU backend: ${answer.stderr}`);
step(`halo run: ${JSON.stringify(answer.stdout.trim().slice(0, 60))}; ${answer.stderr.trim().split("\n").at(-1)}`);
const offline = spawnSync(join(app, "node_modules", ".bin", "halo"), ["run", "hi"], { cwd: app, env, encoding: "utf8" });
if (offline.status !== 1 || !/CLI_NO_MODEL/.test(offline.stderr)) fail(`offline halo run without --model: expected exit 1 and CLI_NO_MODEL, got ${offline.status}: ${offline.stderr}`);
step("offline halo run without --model: one-line CLI_NO_MODEL error, exit 1");

if (!keep) rmSync(work, { recursive: true, force: true });
step("passed");
