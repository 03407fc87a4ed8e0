// Runs the README's command 1 (install and start the server) word for word, waits until the server says it is ready,
// checks /health and a chat completion over HTTP, then stops it with SIGINT (Ctrl-C) and expects a graceful shutdown. .ci/run calls
// this after the test command, in the same scratch HOME and pnpm-free PATH. Usage: node scripts/check-start.mjs
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8").split("\n");
const at = readme.findIndex((line) => line.startsWith("# 1. install and start"));
const command = at >= 0 ? readme[at + 1]?.trim() : undefined;
if (command === undefined || !command.includes("corepack pnpm start")) {
  console.error(`check-start: README.md has no start command after "# 1. install and start" (found: ${command})`);
  process.exit(1);
}
const LIMIT_MS = 300_000;
console.log(`check-start: running README command 1: ${command}`);
// No hub: the command must then serve the labelled demo model (what README says it does offline). With a reachable hub
// it would pull the 1.2 GB default model, which is not what a CI check should depend on.
const env = { ...process.env, HF_ENDPOINT: "http://127.0.0.1:9" };
const child = spawn("bash", ["-c", command], { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
let output = "";
let url = null;
let finished = false;

function stop(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function fail(text) {
  if (finished) return;
  finished = true;
  console.error(`check-start: FAILED: ${text}\n--- output ---\n${output.slice(-4000)}`);
  stop("SIGKILL");
  process.exit(1);
}

const timer = setTimeout(() => fail(`no "ready on" line within ${LIMIT_MS / 1000} s`), LIMIT_MS);
for (const stream of [child.stdout, child.stderr]) {
  stream.setEncoding("utf8");
  stream.on("data", (text) => {
    output += text;
    const ready = /ready on (http:\/\/\S+?) /.exec(output);
    if (ready !== null && url === null) {
      url = ready[1];
      void probe(url).catch((error) => fail(error instanceof Error ? error.message : String(error)));
    }
  });
}
child.on("exit", (code, signal) => {
  if (url === null) fail(`the command ended (exit ${code ?? signal}) before the server was ready`);
});

async function probe(base) {
  const health = await fetch(`${base}/health`);
  if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
  const models = (await (await fetch(`${base}/v1/models`)).json()).data;
  const model = models?.[0]?.id;
  const answer = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Hello" }], max_tokens: 8, temperature: 0 }),
  });
  const body = await answer.json();
  if (answer.status !== 200 || typeof body?.choices?.[0]?.message?.content !== "string")
    throw new Error(`chat completion answered ${answer.status}: ${JSON.stringify(body)}`);
  console.log(
    `check-start: ${base} ready; /health 200; model ${model}; chat completion ${JSON.stringify(body.choices[0].message.content)} (${body.usage.completion_tokens} tokens)`,
  );
  const exited = new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  stop("SIGINT");
  const { code, signal } = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve({ code: "timeout" }), 30_000))]);
  clearTimeout(timer);
  // Ctrl-C reaches the whole process group, as here: pnpm then reports the interrupted script as failed, which is
  // pnpm's way; what matters is that halo finished its requests and said so, and that everything ended.
  if (code === "timeout") throw new Error("the command did not end within 30 s of SIGINT");
  if (!output.includes("halo serve: stopped")) throw new Error(`after SIGINT (exit ${code ?? signal}) halo serve did not say it stopped`);
  finished = true;
  console.log(`check-start: stopped on SIGINT (halo serve shut down gracefully; the command ended with ${code ?? signal}); README command 1 works`);
}
